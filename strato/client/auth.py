"""Logging in: a project-scoped Keystone token for a user name and password."""

from __future__ import annotations

import httpx

from strato.client.compute import ApiError

__all__ = ["password_token"]


async def password_token(base_url: str, *, user: str, password: str, project: str,
                         domain: str = "default",
                         transport: httpx.AsyncBaseTransport | None = None,
                         timeout: float = 30.0) -> str:
    """``POST /identity/v3/auth/tokens`` with the password method, scoped to ``project``
    (user and project by name, in the domain with id ``domain``); the token.
    :class:`ApiError` when the API refuses."""
    ref = {"id": domain}
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": ref, "password": password}}},
        "scope": {"project": {"name": project, "domain": ref}}}}
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
