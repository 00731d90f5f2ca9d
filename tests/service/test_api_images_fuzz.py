"""Properties: no JSON body makes the Image API fail with a 5xx, on create (POST) or on
update (PATCH), and every refusal is a well-formed fault."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.api_fixtures import Api, open_api, run_property
from tests.service.test_api_images import IMAGES, PATCH

_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
            | st.text(max_size=20))
_JSON = st.recursive(_SCALARS, lambda children: st.lists(children, max_size=4)
                     | st.dictionaries(st.text(max_size=12), children, max_size=4),
                     max_leaves=12)
_NAMES = ["id", "name", "disk_format", "container_format", "visibility", "protected",
          "os_hidden", "min_disk", "min_ram", "owner", "tags", "status", "size", "checksum",
          "self", "locations", "os_glance_x", "hw_disk_bus", "kernel_id", ""]
_GOOD = {"name": "n", "disk_format": "qcow2", "container_format": "bare",
         "visibility": "community", "protected": False, "os_hidden": True, "min_disk": 1,
         "min_ram": 2, "tags": ["a"], "hw_disk_bus": "virtio", "id": None}


def _mostly_good(name: str) -> st.SearchStrategy[Any]:
    # Half the draws keep a valid value, so bodies get past the first check and reach
    # the policy checks and the database.
    return st.one_of(st.just(_GOOD[name]), _JSON) if name in _GOOD else _JSON


_CREATE_BODIES = st.one_of(
    _JSON,
    st.dictionaries(st.sampled_from(_NAMES) | st.text(max_size=8), _JSON, max_size=6),
    st.fixed_dictionaries({}, optional={name: _mostly_good(name) for name in _GOOD}))

_PATHS = st.one_of(st.sampled_from([f"/{name}" for name in _NAMES]), st.text(max_size=10))
_OPERATION = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "move", "test"]) | _JSON},
    optional={"path": _PATHS | _JSON, "value": st.one_of(
        st.sampled_from(list(_GOOD.values())), _JSON)})
_PATCH_BODIES = st.one_of(_JSON, st.lists(_OPERATION | _JSON, max_size=5))


def _assert_answer(response: Any, body: Any) -> None:
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        fault = response.json()  # Glance's (webob's) error body
        assert set(fault) == {"code", "title", "message"}, fault
        assert fault["code"].startswith(str(response.status_code)), fault


def test_no_create_body_produces_a_5xx(tmp_path: Path) -> None:
    def check(runner: asyncio.Runner, api: Api, body: Any) -> None:
        response = runner.run(api.request("POST", IMAGES, content=json.dumps(body),
                                          headers={"Content-Type": "application/json"}))
        _assert_answer(response, body)

    run_property(tmp_path, check, _CREATE_BODIES)


def test_no_patch_body_produces_a_5xx(tmp_path: Path) -> None:
    image_ids: list[str] = []

    def check(runner: asyncio.Runner, api: Api, body: Any) -> None:
        if not image_ids:
            created = runner.run(api.request("POST", IMAGES, json={"name": "target",
                                                                   "keep": "x"}))
            image_ids.append(created.json()["id"])
        response = runner.run(api.request("PATCH", f"{IMAGES}/{image_ids[0]}",
                                          content=json.dumps(body), headers=PATCH))
        _assert_answer(response, body)
        if response.status_code == 200:  # the image stays showable whatever was set
            shown = runner.run(api.request("GET", f"{IMAGES}/{image_ids[0]}"))
            if shown.status_code == 200:
                assert shown.json() == response.json()

    run_property(tmp_path, check, _PATCH_BODIES)


_QUERY_KEYS = ["limit", "marker", "sort", "sort_key", "sort_dir", "member_status",
               "visibility", "tag", "protected", "os_hidden", "size_min", "size_max", "id",
               "name", "status", "owner", "disk_format", "container_format", "os_distro"]
_QUERY_VALUES = st.one_of(st.sampled_from(["1", "0", "-1", "true", "all", "name:asc",
                                           "size:desc,name", "asc", "shared", "", ","]),
                          st.text(max_size=12))
_QUERIES = st.lists(st.tuples(st.sampled_from(_QUERY_KEYS) | st.text(max_size=6),
                              _QUERY_VALUES), max_size=5)


def test_no_list_query_produces_a_5xx(tmp_path: Path) -> None:
    def check(runner: asyncio.Runner, api: Api, query: list[tuple[str, str]]) -> None:
        response = runner.run(api.request("GET", IMAGES, params=query))
        _assert_answer(response, query)

    run_property(tmp_path, check, _QUERIES)


def test_regression_sort_with_a_carriage_return_is_a_400_not_a_500(tmp_path: Path) -> None:
    async def run() -> None:
        async with open_api(tmp_path) as api:
            response = await api.request("GET", IMAGES, params=[("sort", "\r0")])
            assert response.status_code == 400

    asyncio.run(run())
