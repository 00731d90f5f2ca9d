"""Keystone v3 wire format: version documents, token bodies, the service catalog, the
administered resources (domains, projects, users, roles, role assignments) and errors."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

from strato.api.errors import fault_response
from strato.config import ApiSettings
from strato.domain.identity import Domain, Project, Role, RoleAssignment, User
from strato.identity.service import TokenInfo

__all__ = ["assignment", "catalog", "collection", "domain", "error", "identity_url",
           "Names", "project", "projects", "role", "token", "user", "v3_url", "version",
           "versions"]

_UPDATED = "2020-04-07T00:00:00Z"
_VERSION_ID = "v3.14"
_REGION = "RegionOne"
_INTERFACES = ("public", "internal", "admin")
# (type, name, path under the API's base URL)
_SERVICES = (("identity", "keystone", "/identity"), ("compute", "nova", "/v2.1"),
             ("image", "glance", "/image"), ("network", "neutron", "/networking"))


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


def v3_url(settings: ApiSettings, path: str) -> str:
    return f"{identity_url(settings)}/v3/{path}"


def collection(key: str, items: list[dict[str, Any]], self_url: str) -> dict[str, Any]:
    """A Keystone list: the items under ``key``, and links (strato does not page)."""
    return {key: items, "links": {"self": self_url, "previous": None, "next": None}}


def domain(item: Domain, settings: ApiSettings) -> dict[str, Any]:
    return {"id": item.id, "name": item.name, "description": item.description,
            "enabled": item.enabled, "tags": [], "options": {},
            "links": {"self": v3_url(settings, f"domains/{item.id}")}}


def project(item: Project, settings: ApiSettings) -> dict[str, Any]:
    return {"id": item.id, "name": item.name, "description": item.description,
            "enabled": item.enabled, "domain_id": item.domain_id,
            "parent_id": item.domain_id, "is_domain": False, "tags": [], "options": {},
            "links": {"self": v3_url(settings, f"projects/{item.id}")}}


def user(item: User, settings: ApiSettings) -> dict[str, Any]:
    """A user as Keystone shows one: never anything about its password but that it
    does not expire."""
    body: dict[str, Any] = {
        **item.extra,
        "id": item.id, "name": item.name, "domain_id": item.domain_id,
        "enabled": item.enabled, "password_expires_at": None, "options": {},
        "links": {"self": v3_url(settings, f"users/{item.id}")}}
    if item.default_project_id is not None:
        body["default_project_id"] = item.default_project_id
    return body


def role(item: Role, settings: ApiSettings) -> dict[str, Any]:
    return {"id": item.id, "name": item.name, "domain_id": None, "description": None,
            "options": {}, "links": {"self": v3_url(settings, f"roles/{item.id}")}}


def projects(items: list[Project], settings: ApiSettings) -> dict[str, Any]:
    """``GET /v3/auth/projects``."""
    return collection("projects", [project(p, settings) for p in items],
                      v3_url(settings, "auth/projects"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Names:
    """What ``GET /v3/role_assignments?include_names`` adds to each assignment."""

    users: Mapping[str, User]
    projects: Mapping[str, Project]
    roles: Mapping[str, Role]
    domains: Mapping[str, Domain]


def assignment(item: RoleAssignment, settings: ApiSettings,
               names: Names | None = None) -> dict[str, Any]:
    """One entry of ``GET /v3/role_assignments``."""
    user_ref: dict[str, Any] = {"id": item.user_id}
    project_ref: dict[str, Any] = {"id": item.project_id}
    role_ref: dict[str, Any] = {"id": item.role_id}
    if names is not None:
        _name(user_ref, names.users.get(item.user_id), names)
        _name(project_ref, names.projects.get(item.project_id), names)
        if item.role_id in names.roles:
            role_ref["name"] = names.roles[item.role_id].name
    path = f"projects/{item.project_id}/users/{item.user_id}/roles/{item.role_id}"
    return {"user": user_ref, "role": role_ref, "scope": {"project": project_ref},
            "links": {"assignment": v3_url(settings, path)}}


def _name(ref: dict[str, Any], owner: User | Project | None, names: Names) -> None:
    if owner is None:
        return
    ref["name"] = owner.name
    owner_domain = names.domains.get(owner.domain_id)
    if owner_domain is not None:
        ref["domain"] = _domain(owner_domain)


def error(status: int, message: str, settings: ApiSettings, *,
          headers: dict[str, str] | None = None) -> JSONResponse:
    """Keystone's error body, with ``headers``; a 401 names where to authenticate."""
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = f'Keystone uri="{identity_url(settings)}"'
    return fault_response(status, message, path="/identity", headers=headers or None)
