"""The envelope every bus message travels in, and the JSON codec for message bodies.

One schema version (``v``); fields are only ever added, with defaults, so peers of
different ages interoperate. Bodies are dataclasses (or any pydantic-validatable type),
encoded to plain JSON: never pickle.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from strato.domain.context import RequestContext
from strato.domain.errors import StratoError, error_from_wire, error_to_wire
from strato.domain.ids import new_uuid

__all__ = ["ENVELOPE_VERSION", "Envelope", "Reply", "decode_body", "encode_body"]

ENVELOPE_VERSION = 1


@lru_cache(maxsize=512)
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def encode_body(value: object) -> Any:
    """A message (or result) as JSON-ready data."""
    return to_jsonable_python(value)


def decode_body(tp: Any, data: Any) -> Any:
    """Rebuild a value of type ``tp`` from :func:`encode_body` output."""
    if tp is None:
        return data
    return _adapter(tp).validate_python(data)


def _context_to_wire(ctx: RequestContext) -> dict[str, Any]:
    data = asdict(ctx)
    data["roles"] = list(ctx.roles)
    return data


def _context_from_wire(data: dict[str, Any]) -> RequestContext:
    known = {k: data[k] for k in ("request_id", "global_request_id", "user_id", "project_id")
             if k in data}
    return RequestContext(**known, roles=tuple(data.get("roles", ())))


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A request: which handler (``kind``), its body, and the caller's context."""

    kind: str
    body: Any
    context: RequestContext
    msg_id: str = field(default_factory=new_uuid)
    reply_to: str | None = None
    sent_at: float = field(default_factory=time.time)
    v: int = ENVELOPE_VERSION

    @classmethod
    def wrap(cls, message: object, *, ctx: RequestContext,
             reply_to: str | None = None) -> Envelope:
        return cls(kind=type(message).__name__, body=encode_body(message), context=ctx,
                   reply_to=reply_to)

    def to_bytes(self) -> bytes:
        return json.dumps({
            "v": self.v, "kind": self.kind, "body": self.body, "msg_id": self.msg_id,
            "reply_to": self.reply_to, "sent_at": self.sent_at,
            "context": _context_to_wire(self.context),
        }, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        data = json.loads(raw)
        return cls(kind=data["kind"], body=data.get("body"), msg_id=data["msg_id"],
                   reply_to=data.get("reply_to"), sent_at=data.get("sent_at", 0.0),
                   context=_context_from_wire(data.get("context", {})),
                   v=data.get("v", ENVELOPE_VERSION))


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """The answer to a ``call``: a result or a domain error."""

    msg_id: str
    result: Any = None
    error: dict[str, str] | None = None

    @classmethod
    def failure(cls, msg_id: str, exc: StratoError) -> Reply:
        return cls(msg_id=msg_id, error=error_to_wire(exc))

    def unwrap(self, returns: Any) -> Any:
        """The decoded result, or raise the error the handler raised."""
        if self.error is not None:
            raise error_from_wire(self.error)
        return decode_body(returns, self.result)

    def to_bytes(self) -> bytes:
        return json.dumps({"v": ENVELOPE_VERSION, "msg_id": self.msg_id,
                           "result": self.result, "error": self.error},
                          separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Reply:
        data = json.loads(raw)
        return cls(msg_id=data["msg_id"], result=data.get("result"), error=data.get("error"))
