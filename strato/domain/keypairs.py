"""SSH key pairs (Nova's ``os-keypairs``): the value type, Nova's name rules, the
fingerprint and key generation, and Nova's errors.

A key pair belongs to one user and is named uniquely among that user's key pairs. Only
the public key is stored; a generated private key is handed to the caller once.
The fingerprint is Nova's (``nova.crypto.generate_fingerprint``): the MD5 of the key
blob, as colon-separated hex pairs. A generated key is Nova's too: RSA 2048, the private
key as a traditional OpenSSL PEM, the public key in OpenSSH form with Nova's comment.
"""

from __future__ import annotations

import base64
import hashlib
import string
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from strato.domain.errors import Conflict, Invalid, NotFound
from strato.domain.ids import UserId

__all__ = ["KEY_TYPE_SSH", "GeneratedKey", "KeyPair", "check_name", "fingerprint",
           "generate_key_pair", "invalid_keypair", "key_pair_exists", "key_pair_not_found"]

KEY_TYPE_SSH = "ssh"

# The characters a key pair name may have: letters, digits, space, '-', '_', '.', '@'.
# (Nova before microversion 2.92 refuses '.' and '@'; strato accepts them at 2.1 too.)
_SAFE_CHARS = frozenset(string.ascii_letters + string.digits + " -_.@")
_RSA_BITS = 2048
_GENERATED_COMMENT = "Generated-by-Nova"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPair:
    """One user's named public key. ``id`` and the timestamps are the database's."""

    name: str
    user_id: UserId
    public_key: str
    fingerprint: str
    type: str = KEY_TYPE_SSH
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GeneratedKey:
    """A new key pair's parts: the private key leaves the API once and is never stored."""

    public_key: str
    private_key: str
    fingerprint: str


def invalid_keypair(reason: str) -> Invalid:
    """Nova's ``InvalidKeypair`` (400)."""
    return Invalid(f"Keypair data is invalid: {reason}")


def key_pair_exists(name: str) -> Conflict:
    """Nova's ``KeyPairExists`` (409)."""
    return Conflict(f"Key pair '{name}' already exists.")


def key_pair_not_found(name: str, user_id: UserId) -> NotFound:
    """Nova's ``KeypairNotFound`` (404)."""
    return NotFound(f"Keypair {name} not found for user {user_id}")


def check_name(name: str) -> str:
    """``name`` if every character is allowed and it is 1 to 255 characters long;
    ``Invalid`` (Nova's messages) otherwise."""
    if any(char not in _SAFE_CHARS for char in name):
        raise invalid_keypair("Keypair name contains unsafe characters")
    if not 1 <= len(name) <= 255:
        raise invalid_keypair("Keypair name must be string and between 1 and 255 "
                              "characters long")
    return name


def _md5_colon_hex(blob: bytes) -> str:
    raw = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(raw[i:i + 2] for i in range(0, len(raw), 2))


def fingerprint(public_key: str) -> str:
    """The fingerprint of an OpenSSH public key (``ssh-rsa AAAA... comment``);
    ``Invalid`` ("failed to generate fingerprint", as Nova) unless it parses."""
    try:
        key = serialization.load_ssh_public_key(public_key.encode("utf-8"))
        openssh = key.public_bytes(serialization.Encoding.OpenSSH,
                                   serialization.PublicFormat.OpenSSH)
    except (ValueError, UnsupportedAlgorithm, UnicodeError):
        raise invalid_keypair("failed to generate fingerprint") from None
    # "<type> <base64 blob>": the blob, decoded, is what Nova hashes.
    return _md5_colon_hex(base64.b64decode(openssh.split(b" ")[1]))


def generate_key_pair() -> GeneratedKey:
    """A new RSA 2048 key pair (CPU-bound for tens of milliseconds: run it off the
    event loop)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode("ascii")
    openssh = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                            serialization.PublicFormat.OpenSSH)
    public = f"{openssh.decode('ascii')} {_GENERATED_COMMENT}"
    return GeneratedKey(public_key=public, private_key=private,
                        fingerprint=fingerprint(public))
