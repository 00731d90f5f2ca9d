"""schemathesis fuzzes every operation of /openapi.json, bodies included, as an admin
and as a member: no request gets a 5xx (schemathesis's not_a_server_error check).

The cases are sent in-process through httpx's ASGI transport on this test's own event
loop (the app's database lives there), and validated by schemathesis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from tests.api_fixtures import ADMIN, ALICE, open_api

BASE = "http://strato.test"
EXAMPLES = 20  # per operation and token: 153 operations, two tokens

# Glance's JSON-patch media types are JSON.
for _media in ("application/openstack-images-v2.1-json-patch",
               "application/openstack-images-v2.0-json-patch"):
    schemathesis.serializer.alias(_media, "application/json")


def _send(runner: asyncio.Runner, client: httpx.AsyncClient, case: Any,
          token: str) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=BASE, headers={"X-Auth-Token": token})
    body = kwargs.get("data")
    if "json" in kwargs and kwargs["json"] is not None:
        body = httpx.Request("POST", BASE, json=kwargs["json"]).content
    request = client.build_request(kwargs["method"], kwargs["url"],
                                   params=kwargs.get("params"), headers=kwargs["headers"],
                                   cookies=kwargs.get("cookies"), content=body)
    return runner.run(client.send(request))


@pytest.mark.parametrize("token", [ADMIN, ALICE], ids=["admin", "member"])
def test_no_operation_answers_a_5xx(tmp_path: Path, token: str) -> None:
    with asyncio.Runner() as runner:
        context = open_api(tmp_path)
        api = runner.run(context.__aenter__())
        try:
            spec = runner.run(api.request("GET", "/openapi.json", token=ADMIN)).json()
            schema = schemathesis.openapi.from_dict(spec)
            failures: list[str] = []
            for result in schema.get_all_operations():
                assert isinstance(result, Ok), result  # every operation loads
                operation = result.ok()

                @settings(max_examples=EXAMPLES, deadline=None, database=None,
                          derandomize=True, suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy())
                def check(case: Any) -> None:
                    response = _send(runner, api.client, case, token)
                    try:
                        case.validate_response(response, checks=[not_a_server_error])
                    except Exception:  # recorded, not raised: no shrinking, every 5xx seen
                        failures.append(f"{case.method} {case.formatted_path} "
                                        f"{case.body!r:.300} -> {response.status_code} "
                                        f"{response.text[:200]}")

                check()
            assert failures == []
        finally:
            runner.run(context.__aexit__(None, None, None))
