"""What clients read before anything else: Glance's version document at the image
endpoint's root, and the JSON schemas of ``/v2/schemas/*``.

The version document lists v2.0 to :data:`CURRENT` (Glance lists every minor version;
clients pick the newest v2). ``GET /image/`` answers 300 Multiple Choices and
``GET /image/versions`` 200, as Glance does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from strato.api.deps import Deps
from strato.api.formats import base_url
from strato.api.images import jsonschema
from strato.api.policy import PUBLIC, action

__all__ = ["CURRENT", "schemas_router", "versions_router"]

# v2.7 (Rocky) brought the last of what strato serves: os_hidden and the multihash
# (os_hash_algo/os_hash_value); community visibility and sharing came with v2.5.
CURRENT = 7

versions_router = APIRouter(prefix="/image")
schemas_router = APIRouter(prefix="/v2/schemas")


def _versions(request: Request, deps: Deps) -> dict[str, Any]:
    href = f"{base_url(request, deps.settings)}/image/v2/"
    return {"versions": [
        {"id": f"v2.{minor}", "status": "CURRENT" if minor == CURRENT else "SUPPORTED",
         "links": [{"rel": "self", "href": href}]}
        for minor in range(CURRENT, -1, -1)]}


@versions_router.get("")
@versions_router.get("/")
@action(PUBLIC)
async def list_versions(request: Request, deps: Deps) -> JSONResponse:
    """``GET /image/``: the version document, 300 Multiple Choices as in Glance."""
    return JSONResponse(_versions(request, deps), status_code=300)


@versions_router.get("/versions")
@action(PUBLIC)
async def show_versions(request: Request, deps: Deps) -> JSONResponse:
    """``GET /image/versions``: the same document with 200."""
    return JSONResponse(_versions(request, deps))


@schemas_router.get("/image")
@action("image:get_schemas")
async def image_schema() -> JSONResponse:
    """``GET /v2/schemas/image``."""
    return JSONResponse(jsonschema.image_schema())


@schemas_router.get("/images")
@action("image:get_schemas")
async def images_schema() -> JSONResponse:
    """``GET /v2/schemas/images``."""
    return JSONResponse(jsonschema.images_schema())


@schemas_router.get("/member")
@action("image:get_schemas")
async def member_schema() -> JSONResponse:
    """``GET /v2/schemas/member``."""
    return JSONResponse(jsonschema.member_schema())


@schemas_router.get("/members")
@action("image:get_schemas")
async def members_schema() -> JSONResponse:
    """``GET /v2/schemas/members``."""
    return JSONResponse(jsonschema.members_schema())
