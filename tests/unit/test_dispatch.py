"""Dispatching envelopes to handlers: lookup by wire name, errors as replies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from strato.domain.context import RequestContext
from strato.domain.errors import NotFound, StratoError
from strato.rpc.dispatch import dispatch, index_handlers
from strato.rpc.messages import Envelope


@dataclass(frozen=True)
class Ping:
    n: int


async def _double(ctx: RequestContext, msg: Ping) -> int:
    del ctx
    if msg.n < 0:
        raise NotFound("negative")
    return msg.n * 2


def test_two_message_classes_with_one_wire_name_are_refused() -> None:
    other = type("Ping", (), {})

    async def handler(ctx: RequestContext, msg: Any) -> None:
        del ctx, msg

    with pytest.raises(ValueError, match="two message classes are named Ping"):
        index_handlers({Ping: handler, other: handler})


async def test_dispatch_runs_the_handler_and_carries_domain_errors() -> None:
    index = index_handlers({Ping: _double})
    ctx = RequestContext()
    reply = await dispatch(Envelope.wrap(Ping(n=21), ctx=ctx), index)
    assert reply.unwrap(int) == 42
    failed = await dispatch(Envelope.wrap(Ping(n=-1), ctx=ctx), index)
    with pytest.raises(NotFound, match="negative"):
        failed.unwrap(int)


async def test_unknown_kind_is_an_error_reply_not_a_crash() -> None:
    @dataclass(frozen=True)
    class Unknown:
        x: int

    reply = await dispatch(Envelope.wrap(Unknown(x=1), ctx=RequestContext()),
                           index_handlers({Ping: _double}))
    with pytest.raises(StratoError, match="unknown message Unknown"):
        reply.unwrap(None)
