"""Keystone v3 wire format: version documents, token bodies, the service catalog and
errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

from strato.config import ApiSettings
from strato.domain.identity import Domain, Project
from strato.identity.service import TokenInfo

__all__ = ["catalog", "error", "identity_url", "projects", "token",
           "version", "versions"]

_UPDATED = "2020-04-07T00:00:00Z"
_VERSION_ID = "v3.14"
_REGION = "RegionOne"
_INTERFACES = ("public", "internal", "admin")
# (type, name, path under the API's base URL)
_SERVICES = (("identity", "keystone", "/identity"), ("compute", "nova", "/v2.1"),
             ("image", "glance", "/image"), ("network", "neutron", "/networking"))
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}


def identity_url(settings: ApiSettings) -> str:
    return f"{settings.url}/identity"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _version(settings: ApiSettings) -> dict[str, Any]:
    return {"id": _VERSION_ID, "status": "stable", "updated": _UPDATED,
            "links": [{"rel": "self", "href": f"{identity_url(settings)}/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.identity-v3+json"}]}


def versions(settings: ApiSettings) -> dict[str, Any]:
    """``GET /identity`` (answered with 300 Multiple Choices, as Keystone)."""
    return {"versions": {"values": [_version(settings)]}}


def version(settings: ApiSettings) -> dict[str, Any]:
    """``GET /identity/v3``."""
    return {"version": _version(settings)}


def _stable_id(*parts: str) -> str:
    # Ids that do not change between requests or restarts (clients may cache them).
    return uuid.uuid5(uuid.NAMESPACE_URL, "strato:" + ":".join(parts)).hex


def catalog(settings: ApiSettings) -> list[dict[str, Any]]:
    """Every service, one endpoint per interface, all in ``RegionOne``."""
    base = settings.url
    return [{"id": _stable_id(kind), "type": kind, "name": name,
             "endpoints": [{"id": _stable_id(kind, interface), "interface": interface,
                            "region": _REGION, "region_id": _REGION, "url": base + path}
                           for interface in _INTERFACES]}
            for kind, name, path in _SERVICES]


def _domain(domain: Domain) -> dict[str, str]:
    return {"id": domain.id, "name": domain.name}


def token(info: TokenInfo, settings: ApiSettings, *, with_catalog: bool) -> dict[str, Any]:
    """The token body of ``POST`` and ``GET /v3/auth/tokens``."""
    p = info.payload
    body: dict[str, Any] = {
        "methods": list(p.methods), "audit_ids": list(p.audit_ids),
        "expires_at": _iso(p.expires_at), "issued_at": _iso(p.issued_at),
        "user": {"id": info.user.id, "name": info.user.name,
                 "domain": _domain(info.user_domain), "password_expires_at": None}}
    if info.project is not None and info.project_domain is not None:
        body["project"] = {"id": info.project.id, "name": info.project.name,
                           "domain": _domain(info.project_domain)}
        body["is_domain"] = False
        body["roles"] = [{"id": r.id, "name": r.name} for r in info.roles]
        if with_catalog:
            body["catalog"] = catalog(settings)
    return {"token": body}


def projects(items: list[Project], settings: ApiSettings) -> dict[str, Any]:
    """``GET /v3/auth/projects``."""
    base = f"{identity_url(settings)}/v3"
    return {"projects": [{"id": p.id, "name": p.name, "description": p.description,
                          "enabled": p.enabled, "domain_id": p.domain_id,
                          "parent_id": p.domain_id, "is_domain": False, "tags": [],
                          "options": {}, "links": {"self": f"{base}/projects/{p.id}"}}
                         for p in items],
            "links": {"self": f"{base}/auth/projects", "previous": None, "next": None}}


def error(status: int, message: str, settings: ApiSettings) -> JSONResponse:
    """Keystone's error body; a 401 names where to authenticate."""
    headers = ({"WWW-Authenticate": f'Keystone uri="{identity_url(settings)}"'}
               if status == 401 else None)
    return JSONResponse({"error": {"code": status, "title": _TITLES.get(status, "Error"),
                                   "message": message}},
                        status_code=status, headers=headers)
