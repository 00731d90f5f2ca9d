"""Running one envelope against a handler table: shared by every transport, so error
handling and context propagation are identical on all of them."""

from __future__ import annotations

import logging

from strato.domain.errors import StratoError
from strato.log import bind_context
from strato.rpc.bus import Handler, HandlerTable
from strato.rpc.messages import Envelope, Reply, decode_body, encode_body

__all__ = ["HandlerIndex", "dispatch", "index_handlers"]

# Message kind (the class name on the wire) -> (message class, handler).
HandlerIndex = dict[str, tuple[type, Handler]]

logger = logging.getLogger(__name__)


def index_handlers(handlers: HandlerTable) -> HandlerIndex:
    """Index a handler table by the kind names messages carry on the wire, once per
    subscription. Two message classes of one name could not be told apart on the wire,
    so that is refused here rather than one silently shadowing the other."""
    index: HandlerIndex = {}
    for cls, fn in handlers.items():
        if cls.__name__ in index:
            raise ValueError(f"two message classes are named {cls.__name__}")
        index[cls.__name__] = (cls, fn)
    return index


async def dispatch(envelope: Envelope, by_name: HandlerIndex) -> Reply:
    """Decode the body, run the matching handler with the sender's context bound, and
    return its result (or its error) as a :class:`Reply`. Never raises."""
    with bind_context(envelope.context):
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
