"""Running one envelope against a handler table: shared by every transport, so error
handling and context propagation are identical on all of them."""

from __future__ import annotations

import logging

from strato.domain.errors import StratoError
from strato.log import bind_context
from strato.rpc.bus import HandlerTable
from strato.rpc.messages import Envelope, Reply, decode_body, encode_body

__all__ = ["dispatch"]

logger = logging.getLogger(__name__)


async def dispatch(envelope: Envelope, handlers: HandlerTable) -> Reply:
    """Decode the body, run the matching handler with the sender's context bound, and
    return its result (or its error) as a :class:`Reply`. Never raises."""
    with bind_context(envelope.context):
        by_name = {cls.__name__: (cls, fn) for cls, fn in handlers.items()}
        if envelope.kind not in by_name:
            logger.error("no handler for message kind %s", envelope.kind)
            return Reply.failure(envelope.msg_id, StratoError(f"unknown message {envelope.kind}"))
        cls, handler = by_name[envelope.kind]
        try:
            message = decode_body(cls, envelope.body)
            result = await handler(envelope.context, message)
            return Reply(msg_id=envelope.msg_id, result=encode_body(result))
        except StratoError as exc:
            logger.info("%s raised %s: %s", envelope.kind, type(exc).__name__, exc)
            return Reply.failure(envelope.msg_id, exc)
        except Exception as exc:  # the consumer loop is one of the places allowed to catch all
            logger.exception("%s failed unexpectedly", envelope.kind)
            return Reply.failure(envelope.msg_id,
                                 StratoError(f"{envelope.kind} failed: {type(exc).__name__}"))
