"""Issuing, validating and revoking Fernet tokens (Keystone's token provider).

The API parses the request body into :class:`AuthRequest`; everything after that is here:
check the password or the presented token, resolve the scope, look up the roles, and
encrypt a :class:`~strato.identity.fernet.TokenPayload`. Every failure is ``AuthFailed``
with one message, so a caller learns nothing about which part was wrong.

Validating a token from scratch reads its revocations, its user, project, roles and
their domains. Every API request validates one, so :class:`TokenService` keeps what it
found per token (a bounded LRU) together with the identity *revision* it was read at: a
number in the database that every identity write moves on in its own transaction. A
request then reads only that number; while it is unchanged, nothing the token depends on
can have changed, in this process or any other. Expiry is checked on every use, and a
change of the Fernet keys (a rotation) sends every token through decryption again.

A password login runs the password hash exactly once whatever it names (a known user, an
unknown one, a disabled one, one without a password): unknown and disabled users are
checked against a dummy hash, so the answer's timing tells no one which names exist.
Failed logins count towards the user's lockout and the address's throttle
(:mod:`strato.identity.lockout`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from strato.db.ports import IdentityRepo
from strato.domain.errors import NotFound
from strato.domain.identity import AuthFailed, Domain, DomainId, Project, Role, User
from strato.domain.ids import ProjectId, UserId
from strato.identity.fernet import TokenCodec, TokenPayload, TokenRefused, new_audit_id
from strato.identity.lockout import LoginGuard
from strato.identity.passwords import ARGON2, PasswordHasher

__all__ = ["CACHE_SIZE", "AuthRequest", "NameRef", "TokenCacheStatistics", "TokenInfo",
           "TokenService"]

_REFUSED = "The request you have made requires authentication."

# Validated tokens kept per API process (each entry is a few hundred bytes).
CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class NameRef:
    """Something named by id, or by name within a domain (itself by id or name)."""

    id: str | None = None
    name: str | None = None
    domain: NameRef | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthRequest:
    """``POST /v3/auth/tokens``: the methods and their credentials, and the scope
    (``None``: unscoped)."""

    methods: tuple[str, ...]
    user: NameRef | None = None
    password: str | None = None
    token: str | None = None
    project: NameRef | None = None
    # The address the request came from (the failed-login throttle counts by it).
    source: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenInfo:
    """A valid token and everything its body shows."""

    payload: TokenPayload
    user: User
    user_domain: Domain
    project: Project | None
    project_domain: Domain | None
    roles: tuple[Role, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenCacheStatistics:
    """The validation cache: tokens held, and validations answered from it or not."""

    size: int
    capacity: int
    hits: int
    misses: int


@dataclass(frozen=True, slots=True)
class _Cached:
    revision: int
    key_generation: int
    info: TokenInfo


class TokenService:
    def __init__(self, repo: IdentityRepo, codec: TokenCodec, *, expiration: timedelta,
                 clock: Callable[[], datetime], cache_size: int = CACHE_SIZE,
                 hasher: PasswordHasher = ARGON2, guard: LoginGuard | None = None) -> None:
        """``hasher`` checks passwords; ``guard`` counts failed password logins (a
        default :class:`LoginGuard` when not given)."""
        self._repo = repo
        self._hasher = hasher
        self._guard = guard if guard is not None else LoginGuard()
        self._dummy_hash: str | None = None
        self._codec = codec
        self._expiration = expiration
        self._clock = clock
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._capacity = cache_size
        self._hits = 0
        self._misses = 0

    def statistics(self) -> TokenCacheStatistics:
        return TokenCacheStatistics(size=len(self._cache), capacity=self._capacity,
                                    hits=self._hits, misses=self._misses)

    async def issue(self, request: AuthRequest) -> tuple[str, TokenInfo]:
        """A new token for ``request``; ``AuthFailed`` when it does not authenticate."""
        now = self._clock()
        methods: tuple[str, ...]
        audit_ids: tuple[str, ...]
        if "password" in request.methods:
            user = await self._check_password(request)
            methods, audit_ids, expires = ("password",), (new_audit_id(),), None
        elif "token" in request.methods and request.token:
            parent = await self.validate(request.token)
            user, expires = parent.user, parent.payload.expires_at
            methods = tuple(dict.fromkeys(("token", *parent.payload.methods)))
            audit_ids = (new_audit_id(), parent.payload.audit_ids[-1])
        else:
            raise AuthFailed(_REFUSED)
        project = await self._scope(request.project) if request.project else None
        payload = TokenPayload(user_id=user.id, project_id=project.id if project else None,
                               methods=methods, audit_ids=audit_ids, issued_at=now,
                               expires_at=expires or now + self._expiration)
        token = self._codec.encode(payload)
        return token, await self._info(payload)

    async def validate(self, token: str) -> TokenInfo:
        """The token's details; ``AuthFailed`` when it is unreadable, expired, revoked, or
        its user, project, roles or their domains are gone or disabled. Costs one read
        of the identity revision when the token was validated before and nothing in the
        identity data changed since; none when the token cannot be decrypted."""
        now = self._clock()
        generation = self._codec.key_generation()
        cached = self._cache.get(token)
        revision: int | None = None
        if cached is not None and cached.key_generation == generation:
            revision = await self._repo.revision()
            if cached.revision == revision:
                return self._hit(token, cached.info, now)
        self._misses += 1
        self._cache.pop(token, None)
        try:
            payload = self._codec.decode(token, now)  # a forged token costs no query
        except TokenRefused as exc:
            raise AuthFailed(f"Could not validate the token: {exc}") from exc
        # The revision is read before the data: data read after it is at least as new,
        # so an entry can be older than its revision claims, never newer.
        if revision is None:
            revision = await self._repo.revision()
        info = await self._check(payload)
        self._cache[token] = _Cached(revision, generation, info)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        return info

    def _hit(self, token: str, info: TokenInfo, now: datetime) -> TokenInfo:
        if info.payload.expires_at <= now:
            self._cache.pop(token, None)
            raise AuthFailed("Could not validate the token: the token has expired")
        if token in self._cache:  # another validation may have dropped it meanwhile
            self._cache.move_to_end(token)
        self._hits += 1
        return info

    async def _check(self, payload: TokenPayload) -> TokenInfo:
        if await self._repo.token_revoked(payload.audit_ids, user_id=UserId(payload.user_id),
                                          issued_at=payload.issued_at):
            raise AuthFailed("Could not validate the token: it was revoked")
        return await self._info(payload)

    async def revoke(self, token: str) -> None:
        """Refuse ``token`` (and any token made from it) from now on."""
        info = await self.validate(token)
        await self._repo.revoke_token(info.payload.audit_ids[0], info.payload.expires_at)
        self._cache.pop(token, None)

    async def _info(self, payload: TokenPayload) -> TokenInfo:
        try:
            user = await self._repo.user(UserId(payload.user_id))
            project = (await self._repo.project(ProjectId(payload.project_id))
                       if payload.project_id else None)
            user_domain = await self._repo.domain(user.domain_id)
            project_domain = (await self._repo.domain(project.domain_id)
                              if project is not None else None)
        except NotFound as exc:
            raise AuthFailed(_REFUSED) from exc
        if not (user.enabled and user_domain.enabled):
            raise AuthFailed(_REFUSED)
        if project is not None and not (project.enabled and project_domain
                                        and project_domain.enabled):
            raise AuthFailed(_REFUSED)
        roles = tuple(await self._repo.roles_on(user.id, project.id)) if project else ()
        if project is not None and not roles:
            raise AuthFailed(f"User {user.id} has no access to project {project.id}")
        return TokenInfo(payload=payload, user=user, user_domain=user_domain,
                         project=project, project_domain=project_domain, roles=roles)

    async def _check_password(self, request: AuthRequest) -> User:
        if request.user is None or request.password is None:
            raise AuthFailed(_REFUSED)
        self._guard.check_source(request.source)
        user = await self._password_user(request.user)
        encoded = await self._password_hash(user) if user is not None else None
        locked = user is not None and self._guard.locked(user.id)
        # One hash check on every path (argon2 is deliberately slow: off the event loop).
        matches = await asyncio.to_thread(self._hasher.verify, request.password,
                                          encoded or await self._dummy())
        if user is None or encoded is None or not matches:
            if not locked:
                self._guard.failed(user.id if user else None, request.source)
            raise AuthFailed(_REFUSED)
        if locked:  # Keystone refuses a locked account even the right password
            raise AuthFailed(_REFUSED)
        self._guard.succeeded(user.id)
        return user

    async def _password_user(self, ref: NameRef) -> User | None:
        """The user a password login names; None when there is none, or it (or its
        domain) is disabled: those are checked against the dummy hash."""
        try:
            user = await self._find_user(ref)
            enabled = user.enabled and (await self._repo.domain(user.domain_id)).enabled
        except NotFound:
            return None
        return user if enabled else None

    async def _password_hash(self, user: User) -> str | None:
        try:
            return await self._repo.password_hash(user.id)
        except NotFound:  # deleted meanwhile
            return None

    async def _dummy(self) -> str:
        """A hash of a random password, made once: what unknown users are checked
        against."""
        if self._dummy_hash is None:
            self._dummy_hash = await asyncio.to_thread(self._hasher.hash,
                                                       secrets.token_urlsafe(24))
        return self._dummy_hash

    async def _find_user(self, ref: NameRef) -> User:
        if ref.id:
            return await self._repo.user(UserId(ref.id))
        if ref.name and ref.domain:
            domain = await self._find_domain(ref.domain)
            return await self._repo.user_by_name(ref.name, domain.id)
        raise NotFound("user")

    async def _scope(self, ref: NameRef) -> Project:
        try:
            if ref.id:
                return await self._repo.project(ProjectId(ref.id))
            if ref.name and ref.domain:
                domain = await self._find_domain(ref.domain)
                return await self._repo.project_by_name(ref.name, domain.id)
        except NotFound as exc:
            raise AuthFailed(_REFUSED) from exc
        raise AuthFailed(_REFUSED)

    async def _find_domain(self, ref: NameRef) -> Domain:
        domain = (await self._repo.domain(DomainId(ref.id)) if ref.id
                  else await self._repo.domain_by_name(ref.name or ""))
        if not domain.enabled:
            raise NotFound("domain")
        return domain
