"""Who is calling: the pluggable token check behind the auth middleware.

An :class:`AuthBackend` turns the ``X-Auth-Token`` header into a
:class:`~strato.domain.context.RequestContext` (user, project, roles). The middleware
adds the request ids. :class:`StaticTokenAuth` is the built-in backend (fixed tokens from
the configuration); :class:`KeystoneAuth` accepts the Fernet tokens of the identity API
and falls back to the static ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from strato.domain.context import RequestContext
from strato.domain.identity import AuthFailed
from strato.domain.ids import ProjectId, UserId
from strato.identity.service import TokenService

__all__ = ["AuthBackend", "KeystoneAuth", "StaticTokenAuth"]


class AuthBackend(Protocol):
    async def authenticate(self, token: str) -> RequestContext | None:
        """The caller's identity for ``token``, or ``None`` when the token is unknown or
        expired (the API then answers 401)."""
        ...


class StaticTokenAuth:
    """Fixed tokens: the admin token from the settings, plus any registered ones."""

    def __init__(self, admin_token: str | None, *,
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


class KeystoneAuth:
    """The static tokens of ``fallback``, then Fernet tokens from the identity API
    (checked against expiry and revocations on every request). Only project-scoped
    tokens pass: the compute, image and network APIs act in a project. The identity
    routes accept unscoped tokens themselves."""

    def __init__(self, tokens: TokenService, fallback: AuthBackend) -> None:
        self.tokens = tokens  # the identity API issues and validates through it
        self._fallback = fallback

    async def authenticate(self, token: str) -> RequestContext | None:
        """See :meth:`AuthBackend.authenticate`."""
        ctx = await self._fallback.authenticate(token)
        if ctx is not None:
            return ctx
        try:
            info = await self.tokens.validate(token)
        except AuthFailed:
            return None
        if info.project is None:
            return None
        return RequestContext(user_id=info.user.id, project_id=info.project.id,
                              roles=tuple(role.name for role in info.roles))
