"""Logging in: Keystone tokens for a user name and password, and scoping them."""

from __future__ import annotations

from typing import Any

import httpx

from strato.client.compute import ApiError

__all__ = ["password_token", "scoped_token", "unscoped_token"]


async def _issue(base_url: str, body: dict[str, Any], *,
                 transport: httpx.AsyncBaseTransport | None, timeout: float) -> str:
    async with httpx.AsyncClient(base_url=base_url, transport=transport,
                                 timeout=timeout) as http:
        resp = await http.post("/identity/v3/auth/tokens", params={"nocatalog": "1"},
                               json=body)
    if resp.status_code != 201:
        try:
            message = str(resp.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = resp.text
        raise ApiError(resp.status_code, "error", message)
    return resp.headers["x-subject-token"]


def _password(user: str, password: str, domain: str) -> dict[str, Any]:
    return {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": domain}, "password": password}}}


async def password_token(base_url: str, *, user: str, password: str, project: str,
                         domain: str = "default",
                         transport: httpx.AsyncBaseTransport | None = None,
                         timeout: float = 30.0) -> str:
    """``POST /identity/v3/auth/tokens`` with the password method, scoped to ``project``
    (user and project by name, in the domain with id ``domain``); the token.
    :class:`ApiError` when the API refuses."""
    body = {"auth": {"identity": _password(user, password, domain),
                     "scope": {"project": {"name": project, "domain": {"id": domain}}}}}
    return await _issue(base_url, body, transport=transport, timeout=timeout)


async def unscoped_token(base_url: str, *, user: str, password: str,
                         domain: str = "default",
                         transport: httpx.AsyncBaseTransport | None = None,
                         timeout: float = 30.0) -> str:
    """An unscoped token for a user name and password (what a dashboard logs in with
    before it knows the user's projects)."""
    body = {"auth": {"identity": _password(user, password, domain)}}
    return await _issue(base_url, body, transport=transport, timeout=timeout)


async def scoped_token(base_url: str, *, token: str, project_id: str,
                       transport: httpx.AsyncBaseTransport | None = None,
                       timeout: float = 30.0) -> str:
    """A token for ``project_id`` made from another of the same user's tokens (the
    ``token`` method): switching projects without asking for the password again."""
    body = {"auth": {"identity": {"methods": ["token"], "token": {"id": token}},
                     "scope": {"project": {"id": project_id}}}}
    return await _issue(base_url, body, transport=transport, timeout=timeout)
