"""Version discovery documents and microversion negotiation.

strato claims exactly microversion 2.1 (``MIN_VERSION`` = ``MAX_VERSION``): the views
and schemas implement the 2.1 wire format and nothing newer, so clients that negotiate
(openstacksdk, openstackclient) settle on 2.1. Raising ``MAX_VERSION`` is a promise: each
step must come with its schema and view changes (STYLE section 12: one schema per range).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse

from strato.api.deps import Deps
from strato.api.errors import ApiFault
from strato.api.formats import base_url
from strato.api.policy import PUBLIC, action

__all__ = ["MAX_VERSION", "MIN_VERSION", "Version", "requested_version", "router",
           "version_headers"]

Version = tuple[int, int]
MIN_VERSION: Version = (2, 1)
MAX_VERSION: Version = (2, 1)

_UPDATED = "2013-07-23T11:33:21Z"  # Nova's date for v2.1; clients only display it
_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")

router = APIRouter()


def _text(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


def requested_version(headers: Headers) -> Version:
    """The microversion a request asks for (the minimum when it names none).

    ``OpenStack-API-Version: compute X.Y`` wins over the legacy
    ``X-OpenStack-Nova-API-Version: X.Y``; ``latest`` means :data:`MAX_VERSION`. A
    malformed value is a 400 and one outside the supported range a 406, as in Nova.
    """
    raw = _compute_version(headers.get("openstack-api-version", ""))
    raw = raw or headers.get("x-openstack-nova-api-version", "").strip()
    if not raw:
        return MIN_VERSION
    if raw.lower() == "latest":
        return MAX_VERSION
    match = _VERSION_RE.fullmatch(raw)
    if match is None:
        raise ApiFault(400, f"API Version String {raw} is of invalid format. Must be of "
                            "format MajorNum.MinorNum.")
    version = (int(match.group(1)), int(match.group(2)))
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise ApiFault(406, f"Version {raw} is not supported by the API. Minimum is "
                            f"{_text(MIN_VERSION)} and maximum is {_text(MAX_VERSION)}.")
    return version


def _compute_version(header: str) -> str:
    # The header may name several services: "compute 2.1, image 2.5".
    for item in header.split(","):
        service, _, value = item.strip().partition(" ")
        if service.lower() == "compute":
            return value.strip()
    return ""


def version_headers(version: Version) -> dict[str, str]:
    """The response headers naming the microversion that answered."""
    return {"OpenStack-API-Version": f"compute {_text(version)}",
            "X-OpenStack-Nova-API-Version": _text(version),
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"}


def _v21(base: str) -> dict[str, Any]:
    return {"id": "v2.1", "status": "CURRENT", "version": _text(MAX_VERSION),
            "min_version": _text(MIN_VERSION), "updated": _UPDATED,
            "links": [{"rel": "self", "href": f"{base}/v2.1/"}]}


def _v20(base: str) -> dict[str, Any]:
    return {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
            "updated": "2011-01-21T11:33:21Z",
            "links": [{"rel": "self", "href": f"{base}/v2/"}]}


def _document(doc: dict[str, Any], media_version: str) -> JSONResponse:
    """A version's own document (Nova's ``{"version": ...}``): its list entry with the
    ``describedby`` link and the media types."""
    doc["links"].append({"rel": "describedby", "type": "text/html",
                         "href": "https://docs.openstack.org/"})
    doc["media-types"] = [{"base": "application/json",
                           "type": f"application/vnd.openstack.compute+json;"
                                   f"version={media_version}"}]
    return JSONResponse({"version": doc})


@router.get("/")
@action(PUBLIC)
async def list_versions(request: Request, deps: Deps) -> JSONResponse:
    """``GET /``: every API version (v2.0 is listed, as Nova does, but only v2.1 is
    served; clients choose the CURRENT one)."""
    base = base_url(request, deps.settings)
    return JSONResponse({"versions": [_v20(base), _v21(base)]})


@router.get("/v2.1")
@router.get("/v2.1/")
@action(PUBLIC)
async def show_version(request: Request, deps: Deps) -> JSONResponse:
    """``GET /v2.1``: the document of the one version served."""
    return _document(_v21(base_url(request, deps.settings)), "2.1")


@router.get("/v2")
@router.get("/v2/")
@action(PUBLIC)
async def show_v20(request: Request, deps: Deps) -> JSONResponse:
    """``GET /v2/``: v2.0's document, so every ``self`` link of ``GET /`` can be
    followed (Tempest does). Nothing else is served under ``/v2``."""
    return _document(_v20(base_url(request, deps.settings)), "2")
