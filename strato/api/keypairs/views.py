"""Domain key pairs -> Nova 2.1 JSON. ``type`` is shown only from microversion 2.2 in
Nova, so never here."""

from __future__ import annotations

from typing import Any

from strato.api.formats import iso_micro
from strato.domain.keypairs import KeyPair

__all__ = ["created", "listed", "shown"]


def _summary(key_pair: KeyPair) -> dict[str, Any]:
    return {"name": key_pair.name, "public_key": key_pair.public_key,
            "fingerprint": key_pair.fingerprint}


def created(key_pair: KeyPair, private_key: str | None) -> dict[str, Any]:
    """The create answer: the summary with ``user_id``, plus the generated
    ``private_key`` (only for a generated key pair)."""
    body = {**_summary(key_pair), "user_id": key_pair.user_id}
    if private_key is not None:
        body["private_key"] = private_key
    return {"keypair": body}


def listed(key_pairs: list[KeyPair]) -> dict[str, Any]:
    """The list answer, each entry wrapped in its own ``keypair`` object (Nova's
    shape)."""
    return {"keypairs": [{"keypair": _summary(k)} for k in key_pairs]}


def shown(key_pair: KeyPair) -> dict[str, Any]:
    """The show answer: the summary with the database record's fields (strato deletes
    key pairs outright, so ``deleted`` is always false)."""
    return {"keypair": {
        **_summary(key_pair), "user_id": key_pair.user_id, "id": key_pair.id,
        "created_at": iso_micro(key_pair.created_at), "updated_at": iso_micro(
            key_pair.updated_at), "deleted": False, "deleted_at": None}}
