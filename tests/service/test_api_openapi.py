"""/openapi.json describes the request body of every operation that reads one, from the
models the routes validate with."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from strato.api import openapi
from strato.api.identity import schemas as identity_schemas
from strato.api.keypairs import schemas as keypair_schemas
from strato.api.networks import schemas as network_schemas
from strato.api.servers import schemas as server_schemas
from tests.api_fixtures import ADMIN, Api
from tests.api_fixtures import api_fixture as api_fixture  # noqa: F401  (the "api" fixture)

_WRITES = ("post", "put", "patch")


async def _spec(api: Api) -> dict[str, Any]:
    response = await api.request("GET", "/openapi.json", token=ADMIN)
    assert response.status_code == 200, response.text
    spec: dict[str, Any] = response.json()
    return spec


def _bodiless(api: Api) -> set[tuple[str, str]]:
    return {(str(route.path_format), method.lower())
            for route in iter_route_contexts(api.app.routes)
            if isinstance(route.original_route, APIRoute)
            and openapi.is_bodiless(route.endpoint) for method in route.methods or ()}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _model(spec: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        assert spec["components"]["schemas"][name] == definition
    return _resolve(spec, schema)


async def test_every_write_operation_describes_its_body(api: Api) -> None:
    spec = await _spec(api)
    bodiless = _bodiless(api)
    writes = [(path, method, op) for path, item in spec["paths"].items()
              for method, op in item.items() if method in _WRITES]
    assert len(writes) > 40
    missing = [(path, method) for path, method, op in writes
               if (path, method) not in bodiless
               and not all(media.get("schema") for media in
                           op.get("requestBody", {}).get("content", {"": {}}).values())]
    assert missing == []
    assert all("requestBody" not in spec["paths"][path][method] for path, method in bodiless)
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def _json_schema(spec: dict[str, Any], path: str, method: str,
                 media: str = "application/json") -> dict[str, Any]:
    schema = spec["paths"][path][method]["requestBody"]["content"][media]["schema"]
    return _resolve(spec, schema)


async def test_body_schemas_are_the_route_models(api: Api) -> None:
    spec = await _spec(api)
    assert _json_schema(spec, "/v2.1/servers", "post") == _model(
        spec, server_schemas._CreateBody)
    assert _json_schema(spec, "/v2.1/os-keypairs", "post") == _model(
        spec, keypair_schemas._CreateBody)
    port = _json_schema(spec, "/networking/v2.0/ports", "post")
    assert port["required"] == ["port"]
    assert _resolve(spec, port["properties"]["port"]) == _model(spec, network_schemas.PortBody)
    assert "binding:host_id" in _model(spec, network_schemas.PortBody)["properties"]
    user = _json_schema(spec, "/identity/v3/users", "post")
    assert _resolve(spec, user["properties"]["user"]) == _model(
        spec, identity_schemas._UserCreate)


async def test_image_bodies_name_their_media_types(api: Api) -> None:
    spec = await _spec(api)
    patch = spec["paths"]["/image/v2/images/{image_id}"]["patch"]["requestBody"]["content"]
    assert set(patch) == {"application/openstack-images-v2.1-json-patch",
                          "application/openstack-images-v2.0-json-patch"}
    assert patch["application/openstack-images-v2.1-json-patch"]["schema"]["type"] == "array"
    upload = spec["paths"]["/image/v2/images/{image_id}/file"]["put"]["requestBody"]
    assert upload["content"] == {"application/octet-stream": {"schema": openapi.BINARY}}
    create = _json_schema(spec, "/image/v2/images", "post")
    assert "name" in create["properties"] and "status" not in create["properties"]
