"""Fernet keys and tokens, as Keystone keeps them.

The key repository is a directory of files named ``0``, ``1``, ``2``...: ``0`` is the
*staged* key (the next primary, already accepted so every API host knows it before it
signs with it), the highest number is the *primary* key (it encrypts new tokens) and the
ones between are *secondary* keys (they only decrypt tokens issued before a rotation).
:meth:`KeyRepository.rotate` promotes the staged key to primary, stages a new one and
drops the oldest secondaries beyond ``max_active_keys``; a token stays valid until the
key that encrypted it is dropped (or it expires first).

A token is a Fernet message around a small JSON :class:`TokenPayload`.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["KeyRepository", "TokenCodec", "TokenPayload", "TokenRefused", "new_audit_id"]

_DIR_MODE = 0o700
_KEY_MODE = 0o600


class TokenRefused(Exception):  # noqa: N818 - reads as what happened to the token
    """The token cannot be read (tampered, foreign, or its key was rotated away) or has
    expired."""


def new_audit_id() -> str:
    """Keystone's audit id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KeyRepository:
    """The key directory (created with one staged and one primary key on first use)."""

    def __init__(self, path: Path, max_active_keys: int = 3) -> None:
        if max_active_keys < 2:
            raise ValueError("max_active_keys must be at least 2 (primary and staged)")
        self.path = path
        self.max_active_keys = max_active_keys
        # The keys as last read, under the key numbers they were read with: every
        # rotation adds a new number, so a changed listing is a changed key set.
        self._read: tuple[list[int], list[bytes]] | None = None

    def _indexes(self) -> list[int]:
        return sorted(int(p.name) for p in self.path.iterdir() if p.name.isdigit())

    def _write(self, index: int, key: bytes) -> None:
        # Written aside and renamed: a reader never sees half a key.
        tmp = self.path / f".{index}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _KEY_MODE)
        os.fchmod(fd, _KEY_MODE)  # a stale draft keeps the mode it was made with
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        os.replace(tmp, self.path / str(index))

    def ensure(self) -> None:
        """Create the directory and its first keys unless they exist (Keystone's
        ``fernet_setup``: a staged key ``0`` and a primary key ``1``). The directory
        is 0700 and its keys 0600, tightened if found looser."""
        self.path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        os.chmod(self.path, _DIR_MODE)
        for index in self._indexes():
            os.chmod(self.path / str(index), _KEY_MODE)
        if not self._indexes():
            self._write(0, Fernet.generate_key())
            self.rotate()

    def rotate(self) -> int:
        """Promote the staged key, stage a new one, drop the oldest secondaries beyond
        ``max_active_keys``; return the new primary key's number."""
        indexes = self._indexes()
        primary = max(indexes) + 1
        os.replace(self.path / "0", self.path / str(primary))
        self._write(0, Fernet.generate_key())
        secondaries = [i for i in indexes if i != 0]
        excess = len(secondaries) + 2 - self.max_active_keys
        for index in secondaries[:max(excess, 0)]:
            (self.path / str(index)).unlink()
        return primary

    def keys(self) -> list[bytes]:
        """Every key, the primary first (it encrypts), the staged one last. Read again
        only when the directory's listing changed (a rotation, here or by another
        process), not on every token."""
        try:
            indexes = self._indexes()
        except FileNotFoundError:
            indexes = []
        if not indexes:
            self.ensure()
            indexes = self._indexes()
        if self._read is None or self._read[0] != indexes:
            order = sorted(indexes, key=lambda i: (i == 0, -i))
            self._read = (indexes, [(self.path / str(i)).read_bytes().strip()
                                    for i in order])
        return self._read[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenPayload:
    """What a token says: who, scoped to which project, how they proved it, until when.
    ``audit_ids``: this token's own id first, then the one it was made from (if any)."""

    user_id: str
    project_id: str | None
    methods: tuple[str, ...]
    audit_ids: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime

    def to_json(self) -> bytes:
        return json.dumps({"u": self.user_id, "p": self.project_id, "m": list(self.methods),
                           "a": list(self.audit_ids), "i": self.issued_at.timestamp(),
                           "e": self.expires_at.timestamp()}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> TokenPayload:
        raw = json.loads(data)
        return cls(user_id=str(raw["u"]), project_id=raw["p"], methods=tuple(raw["m"]),
                   audit_ids=tuple(raw["a"]),
                   issued_at=datetime.fromtimestamp(raw["i"], UTC),
                   expires_at=datetime.fromtimestamp(raw["e"], UTC))


class TokenCodec:
    """Encrypts payloads with the primary key and reads them with any active key. A
    rotation by another process applies at the next token (the key listing is checked
    on every call)."""

    def __init__(self, keys: KeyRepository) -> None:
        self._keys = keys
        self._built: tuple[list[bytes], MultiFernet] | None = None
        self._generation = 0

    def _fernet(self) -> MultiFernet:
        keys = self._keys.keys()
        if self._built is None or self._built[0] is not keys:
            self._built = (keys, MultiFernet([Fernet(key) for key in keys]))
            self._generation += 1
        return self._built[1]

    def key_generation(self) -> int:
        """A number that changes whenever the set of keys does (a rotation, here or by
        another process): what was decoded under another number must be decoded again."""
        self._fernet()
        return self._generation

    def encode(self, payload: TokenPayload) -> str:
        return self._fernet().encrypt(payload.to_json()).decode()

    def decode(self, token: str, now: datetime) -> TokenPayload:
        """The payload of a valid, unexpired token; :class:`TokenRefused` otherwise."""
        try:
            payload = TokenPayload.from_json(self._fernet().decrypt(token.encode()))
        except (InvalidToken, ValueError, KeyError, TypeError) as exc:
            raise TokenRefused("the token could not be read") from exc
        if payload.expires_at <= now:
            raise TokenRefused("the token has expired")
        return payload
