"""Who is calling: the pluggable token check behind the auth middleware.

An :class:`AuthBackend` turns the ``X-Auth-Token`` header into a
:class:`~strato.domain.context.RequestContext` (user, project, roles). The middleware
adds the request ids. :class:`StaticTokenAuth` is the built-in backend (fixed tokens from
the configuration); a Keystone-backed one replaces it when the identity service exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from strato.domain.context import RequestContext
from strato.domain.ids import ProjectId, UserId

__all__ = ["AuthBackend", "StaticTokenAuth"]


class AuthBackend(Protocol):
    async def authenticate(self, token: str) -> RequestContext | None:
        """The caller's identity for ``token``, or ``None`` when the token is unknown or
        expired (the API then answers 401)."""
        ...


class StaticTokenAuth:
    """Fixed tokens: the admin token from the settings, plus any registered ones."""

    def __init__(self, admin_token: str, *,
                 tokens: Mapping[str, tuple[str, str, Sequence[str]]] | None = None,
                 admin: tuple[str, str] = ("admin", "admin")) -> None:
        """``admin_token``: authenticates as the ``admin`` (user id, project id), with
        roles ``admin`` and ``member``.
        ``tokens``: more tokens, each ``{token: (user_id, project_id, roles)}``."""
        self._identities: dict[str, tuple[UserId, ProjectId, tuple[str, ...]]] = {
            token: (UserId(user), ProjectId(project), tuple(roles))
            for token, (user, project, roles) in (tokens or {}).items()
        }
        if admin_token:
            self._identities[admin_token] = (UserId(admin[0]), ProjectId(admin[1]),
                                             ("admin", "member"))

    async def authenticate(self, token: str) -> RequestContext | None:
        """See :meth:`AuthBackend.authenticate`."""
        identity = self._identities.get(token)
        if identity is None:
            return None
        user_id, project_id, roles = identity
        return RequestContext(user_id=user_id, project_id=project_id, roles=roles)
