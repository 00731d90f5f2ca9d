"""The OpenAPI document (``/openapi.json``) with the request bodies the routes read.

Routes parse their own bodies (``strato.api.bodies``), so FastAPI sees no body parameter
and its generated document has no ``requestBody``. Each route that takes a body declares
it next to itself, under its ``@router.<method>(...)`` line::

    @router.post("/os-keypairs")
    @request_body(schemas._CreateBody)
    @action("os_compute_api:os-keypairs:create")

with the same pydantic model its parser validates with (or, for the few bodies parsed by
hand, the JSON schema below that says what the parser takes), so the document and the
validation cannot drift. :func:`install` makes ``app.openapi()`` add them, the models'
shared definitions going to ``components/schemas``. A route that reads no body despite
its method (an image's ``deactivate``, a tag or a role grant) says so with
:func:`bodiless`; ``tests/unit/test_openapi.py`` checks that every other POST, PUT and
PATCH declares one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaValue, models_json_schema

from strato.api.identity import schemas as identity_schemas
from strato.api.images import jsonschema
from strato.api.images import schemas as image_schemas
from strato.api.networks import sg_schemas
from strato.api.policies import SERVER_ACTIONS
from strato.api.servers import action_schemas as server_actions
from strato.domain.images import MemberStatus
from strato.domain.security_groups import ETHERTYPES, PROTOCOLS

__all__ = ["BINARY", "JSON", "Body", "action_body", "bodiless", "bodies_of", "document",
           "glance_image_create", "glance_member", "glance_member_status", "glance_patch",
           "install", "is_bodiless", "keyed", "keystone_auth", "neutron_security_group",
           "neutron_security_group_rule", "nova_server_actions", "request_body"]

F = TypeVar("F", bound=Callable[..., Any])
Schema = type[BaseModel] | dict[str, Any]

JSON = "application/json"
BINARY = {"type": "string", "format": "binary"}

_BODIES_ATTR = "__strato_request_bodies__"
_BODILESS_ATTR = "__strato_bodiless__"
_REF = "#/components/schemas/{model}"


@dataclass(frozen=True, slots=True)
class Body:
    """One media type a route reads: its schemas (any of them), each a pydantic model
    or a JSON schema; ``key`` wraps them: the body is ``{key: <schema>}``."""

    schemas: tuple[Schema, ...]
    media_type: str = JSON
    key: str | None = None


def request_body(*schemas: Schema, media_type: str = JSON,
                 key: str | None = None) -> Callable[[F], F]:
    """Declare the body a route reads in ``media_type`` (one decorator per media type):
    one of ``schemas``, under ``key`` when given."""
    body = Body(schemas=schemas, media_type=media_type, key=key)

    def mark(endpoint: F) -> F:
        setattr(endpoint, _BODIES_ATTR, (*bodies_of(endpoint), body))
        return endpoint

    return mark


def bodiless(endpoint: F) -> F:
    """Declare that a POST, PUT or PATCH route reads no body."""
    setattr(endpoint, _BODILESS_ATTR, True)
    return endpoint


def bodies_of(endpoint: object) -> tuple[Body, ...]:
    """The bodies a route declared (none: empty)."""
    return cast(tuple[Body, ...], getattr(endpoint, _BODIES_ATTR, ()))


def is_bodiless(endpoint: object) -> bool:
    """Whether a route declared that it reads no body."""
    return bool(getattr(endpoint, _BODILESS_ATTR, False))


def keyed(key: str, schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """The JSON schema of ``{key: <schema>}`` and nothing else."""
    return {"type": "object", "properties": {key: schema},
            "required": [key] if required else [], "additionalProperties": False}


def action_body(name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """An action body, ``{name: <arguments>}``; without ``arguments`` an action that
    takes ``null`` or ``{}``."""
    empty = {"anyOf": [{"type": "null"},
                       {"type": "object", "additionalProperties": False}]}
    return keyed(name, arguments if arguments is not None else empty)


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json``) describe the declared bodies.
    Call it once the routes are in."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    setattr(app, "openapi", openapi)  # noqa: B010 (FastAPI's documented override)


def document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document for ``app`` with every declared request body."""
    with warnings.catch_warnings():  # the shared GET/HEAD ids, renamed below
        warnings.filterwarnings("ignore", message="Duplicate Operation ID")
        doc = get_openapi(title=app.title, version=app.version,
                          openapi_version=app.openapi_version, routes=app.routes)
    # FastAPI includes routers lazily: their routes are reached through route contexts.
    routes = [route for route in iter_route_contexts(app.routes)
              if isinstance(route.original_route, APIRoute) and route.path_format]
    resolved, definitions = _model_schemas(
        schema for route in routes for body in bodies_of(route.endpoint)
        for schema in body.schemas)
    if definitions:
        doc.setdefault("components", {}).setdefault("schemas", {}).update(definitions)
    for route in routes:
        operations = doc["paths"].get(str(route.path_format), {})
        for method in sorted(route.methods or ()):
            operation = operations.get(method.lower())
            if operation is None:
                continue
            bodies = bodies_of(route.endpoint)
            if bodies:
                operation["requestBody"] = {"required": True, "content": {
                    body.media_type: {"schema": _body_schema(body, resolved)}
                    for body in bodies}}
    _unique_operation_ids(doc)
    return doc


def _unique_operation_ids(doc: dict[str, Any]) -> None:
    # The GET and HEAD of one api_route share FastAPI's operation id: name the method.
    seen: set[str] = set()
    for path in doc["paths"].values():
        for method, operation in path.items():
            if operation.get("operationId") in seen:
                operation["operationId"] = f"{operation['operationId']}_{method}"
            seen.add(operation.get("operationId"))


def _model_schemas(schemas: Iterable[Schema]
                   ) -> tuple[dict[type[BaseModel], JsonSchemaValue], dict[str, Any]]:
    """Each model's schema (a reference) and the definitions they share."""
    models = list(dict.fromkeys(s for s in schemas if isinstance(s, type)))
    if not models:
        return {}, {}
    keyed_schemas, top = models_json_schema([(model, "validation") for model in models],
                                            ref_template=_REF)
    return ({model: keyed_schemas[(model, "validation")] for model in models},
            dict(top.get("$defs", {})))


def _body_schema(body: Body, resolved: dict[type[BaseModel], JsonSchemaValue]
                 ) -> dict[str, Any]:
    schemas = [resolved[s] if isinstance(s, type) else s for s in body.schemas]
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    return keyed(body.key, schema) if body.key is not None else schema


# ---- bodies parsed by hand ---------------------------------------------------------------
#
# What each hand-written parser takes, from the same constants it checks against.

_STRING = {"type": "string"}
_NAME = {"type": "string", "maxLength": 255}
_OPTIONAL_NAME = {"type": ["string", "null"], "maxLength": 255}


def _object(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


def _keystone_ref(*, with_domain: bool = True) -> dict[str, Any]:
    properties: dict[str, Any] = {"id": _STRING, "name": _STRING}
    if with_domain:
        properties["domain"] = _keystone_ref(with_domain=False)
    return {"type": "object", "properties": properties}


def keystone_auth() -> dict[str, Any]:
    """``POST /v3/auth/tokens`` (``strato.api.identity.schemas.auth_request``)."""
    user = {**_keystone_ref(), "properties": {**_keystone_ref()["properties"],
                                              "password": _STRING}}
    identity = {"type": "object", "required": ["methods"], "properties": {
        "methods": {"type": "array", "minItems": 1,
                    "items": {"enum": sorted(identity_schemas._METHODS)}},
        "password": {"type": "object", "required": ["user"], "properties": {"user": user}},
        "token": {"type": "object", "required": ["id"], "properties": {"id": _STRING}}}}
    scope = {"anyOf": [{"const": "unscoped"}, {"type": "null"}, {
        "type": "object", "required": ["project"], "properties": {
            "project": _keystone_ref()}}]}
    return keyed("auth", {"type": "object", "required": ["identity"],
                          "properties": {"identity": identity, "scope": scope}})


def glance_image_create() -> dict[str, Any]:
    """``POST /v2/images``: the writable attributes of ``/v2/schemas/image``, and extra
    properties as strings (``strato.api.images.schemas.ops_from_create``)."""
    image = jsonschema.image_schema()
    writable = {name: schema for name, schema in image["properties"].items()
                if not schema.get("readOnly")}
    return {"type": "object", "properties": writable,
            "additionalProperties": image["additionalProperties"]}


def glance_patch(draft: int) -> dict[str, Any]:
    """``PATCH /v2/images/{id}`` in JSON-patch draft 10 (``{"op", "path", "value"}``,
    the v2.1 media type) or draft 4 (``{"replace": "/name", "value"}``, v2.0)."""
    pointer: dict[str, Any] = {"type": "string", "pattern": "^/"}
    operations = sorted(image_schemas._OPERATIONS)
    operation: dict[str, Any]
    if draft == 10:
        operation = {"type": "object", "required": ["op", "path"], "properties": {
            "op": {"enum": operations}, "path": pointer, "value": {}}}
    else:
        operation = {"anyOf": [{"type": "object", "required": [op], "properties": {
            op: pointer, "value": {}}} for op in operations]}
    return {"type": "array", "items": operation}


def glance_member() -> dict[str, Any]:
    """``POST /v2/images/{id}/members``."""
    return _object({"member": {"type": "string", "minLength": 1}}, "member")


def glance_member_status() -> dict[str, Any]:
    """``PUT /v2/images/{id}/members/{member}``."""
    return _object({"status": {"enum": [str(s) for s in MemberStatus]}}, "status")


def _only(names: frozenset[str], properties: dict[str, Any]) -> dict[str, Any]:
    # Every name the parser allows, typed where the parser types it.
    return {name: properties.get(name, {}) for name in sorted(names)}


def neutron_security_group(*, update: bool = False) -> dict[str, Any]:
    """``POST``/``PUT /v2.0/security-groups`` (``strato.api.networks.sg_schemas``)."""
    names = sg_schemas._GROUP_UPDATE if update else sg_schemas._GROUP_CREATE
    return keyed("security_group", _object(_only(names, {
        "name": _NAME, "description": _NAME, "tenant_id": _NAME, "project_id": _NAME,
        "stateful": {"type": "boolean"}})))


def neutron_security_group_rule() -> dict[str, Any]:
    """``POST /v2.0/security-group-rules``."""
    port = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 65535},
                      {"type": "null"}]}
    return keyed("security_group_rule", _object(_only(sg_schemas._RULE_CREATE, {
        "security_group_id": _NAME, "direction": {"enum": ["ingress", "egress"]},
        "ethertype": {"enum": [*ETHERTYPES, None]},
        "protocol": {"anyOf": [{"enum": [*sorted(PROTOCOLS), None]},
                               {"type": "integer", "minimum": 0, "maximum": 255},
                               {"type": "string"}]},
        "port_range_min": port, "port_range_max": port,
        "remote_ip_prefix": _OPTIONAL_NAME, "remote_group_id": _OPTIONAL_NAME,
        "description": _OPTIONAL_NAME, "tenant_id": _NAME, "project_id": _NAME}),
        "security_group_id", "direction"))


def nova_server_actions() -> tuple[Schema, ...]:
    """``POST /servers/{id}/action``: one action (``strato.api.servers.action_schemas``); those
    with arguments by their models, the others taking ``null`` or ``{}``."""
    with_models: dict[str, Schema] = {"reboot": server_actions._RebootBody,
                                      "lock": server_actions._LockBody,
                                      "rebuild": server_actions._RebuildBody}
    length = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^-?[0-9]+$"},
                        {"type": "null"}]}
    console = action_body("os-getConsoleOutput", {"anyOf": [
        {"type": "null"}, _object({"length": length})]})
    plain = [action_body(name) for name in sorted(SERVER_ACTIONS)
             if name not in with_models and name != "os-getConsoleOutput"]
    return (*with_models.values(), console, *plain)
