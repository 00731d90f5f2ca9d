"""``POST /v2.1/os-keypairs`` bodies -> domain values.

Nova's 2.1 schema: ``keypair`` with ``name`` (Nova's ``name`` parameter type: 1 to 255
printable characters, no leading or trailing whitespace) and an optional ``public_key``
string; nothing else. ``type`` arrives with microversion 2.2 and ``user_id`` with 2.10,
so at 2.1 (all strato speaks) either is a 400, as in Nova. The name's characters are
checked after the schema, with Nova's "unsafe characters" message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from strato.api.bodies import parse_model
from strato.api.fields import Name
from strato.domain.keypairs import check_name

__all__ = ["KeyPairCreate", "parse_create"]


class _KeyPairBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: Name
    public_key: str = ""


class _CreateBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    keypair: _KeyPairBody


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPairCreate:
    """A validated create body: ``public_key`` ``None`` asks for a generated key pair."""

    name: str
    public_key: str | None


def parse_create(body: Any) -> KeyPairCreate:
    """``{"keypair": {"name": ..., "public_key"?: ...}}``; ``Invalid`` (400) for a bad
    body or name (an explicit ``public_key`` is imported even when empty, and then
    refused as unparsable, as Nova does)."""
    keypair = parse_model(_CreateBody, body).keypair
    given = "public_key" in keypair.model_fields_set
    return KeyPairCreate(name=check_name(keypair.name),
                         public_key=keypair.public_key if given else None)
