"""Password hashes: Argon2id, stored as one PHC string with its salt and parameters.

``$argon2id$v=19$m=<KiB>,t=<iterations>,p=<lanes>$<salt>$<hash>`` (unpadded base64), the
format of the reference implementation, so the parameters can grow without breaking the
hashes already stored: each hash is checked with the parameters written next to it.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

__all__ = ["ARGON2", "Argon2Hasher", "Argon2Params", "DEFAULT_PARAMS", "PasswordHasher",
           "hash_password", "verify_password"]

_SALT_BYTES = 16
_HASH_BYTES = 32


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """Cost parameters: memory in KiB, iterations, lanes (OWASP's second choice)."""

    memory_kib: int = 19456
    iterations: int = 2
    lanes: int = 1


DEFAULT_PARAMS = Argon2Params()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _kdf(salt: bytes, params: Argon2Params, length: int) -> Argon2id:
    return Argon2id(salt=salt, length=length, iterations=params.iterations,
                    lanes=params.lanes, memory_cost=params.memory_kib)


def hash_password(password: str, params: Argon2Params = DEFAULT_PARAMS) -> str:
    """The encoded hash of ``password`` under a fresh random salt."""
    salt = os.urandom(_SALT_BYTES)
    digest = _kdf(salt, params, _HASH_BYTES).derive(password.encode())
    return (f"$argon2id$v=19$m={params.memory_kib},t={params.iterations},p={params.lanes}"
            f"${_b64(salt)}${_b64(digest)}")


def _parse(encoded: str) -> tuple[Argon2Params, bytes, bytes] | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[1] != "argon2id" or parts[2] != "v=19":
        return None
    try:
        costs = dict(item.split("=", 1) for item in parts[3].split(","))
        params = Argon2Params(int(costs["m"]), int(costs["t"]), int(costs["p"]))
        return params, _unb64(parts[4]), _unb64(parts[5])
    except (KeyError, ValueError):
        return None


def verify_password(password: str, encoded: str | None) -> bool:
    """Whether ``password`` matches ``encoded`` (compared in constant time). A missing or
    malformed hash matches nothing."""
    parsed = _parse(encoded) if encoded else None
    if parsed is None:
        return False
    params, salt, digest = parsed
    try:
        _kdf(salt, params, len(digest)).verify(password.encode(), digest)
    except (InvalidKey, ValueError):
        return False
    return True


class PasswordHasher(Protocol):
    """Makes and checks password hashes (both deliberately slow: run them off the event
    loop)."""

    def hash(self, password: str) -> str:
        """The encoded hash of ``password`` under a fresh salt."""
        ...

    def verify(self, password: str, encoded: str | None) -> bool:
        """Whether ``password`` matches ``encoded``; a missing hash matches nothing."""
        ...


@dataclass(frozen=True, slots=True)
class Argon2Hasher:
    """:func:`hash_password` and :func:`verify_password` under ``params``."""

    params: Argon2Params = DEFAULT_PARAMS

    def hash(self, password: str) -> str:
        return hash_password(password, self.params)

    def verify(self, password: str, encoded: str | None) -> bool:
        return verify_password(password, encoded)


ARGON2 = Argon2Hasher()
