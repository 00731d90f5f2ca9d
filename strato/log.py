"""Logging: every record carries the request id (and instance id) of the work it belongs to.

The ids live in context variables, set by the API middleware and by the bus consumer from
the message envelope, and stamped on each record by :class:`ContextFilter`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar

from strato.domain.context import RequestContext, admin_context

__all__ = ["ContextFilter", "bind_context", "bind_instance", "configure", "current_context"]

_context: ContextVar[RequestContext | None] = ContextVar("strato_context", default=None)
_instance: ContextVar[str | None] = ContextVar("strato_instance", default=None)


def current_context() -> RequestContext:
    """The context of the work running now; a fresh admin context outside any request."""
    return _context.get() or admin_context()


@contextlib.contextmanager
def bind_context(ctx: RequestContext) -> Iterator[RequestContext]:
    """Make ``ctx`` the current context for the duration of the block."""
    token = _context.set(ctx)
    try:
        yield ctx
    finally:
        _context.reset(token)


@contextlib.contextmanager
def bind_instance(instance_id: str) -> Iterator[None]:
    """Stamp ``instance_id`` on every log record written inside the block."""
    token = _instance.set(instance_id)
    try:
        yield
    finally:
        _instance.reset(token)


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``project_id``, ``user_id`` and ``instance_id`` to records."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _context.get()
        record.request_id = ctx.request_id if ctx else "-"
        record.global_request_id = (ctx.global_request_id or "-") if ctx else "-"
        record.project_id = ctx.project_id if ctx else "-"
        record.user_id = ctx.user_id if ctx else "-"
        record.instance_id = _instance.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the context fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "instance_id": getattr(record, "instance_id", "-"),
            "project_id": getattr(record, "project_id", "-"),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data)


TEXT_FORMAT = ("%(asctime)s %(levelname)s %(name)s [%(request_id)s %(instance_id)s] "
               "%(message)s")


def configure(level: str = "INFO", *, json_lines: bool = False, service: str = "") -> None:
    """Set up the root logger once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    fmt = TEXT_FORMAT if not service else TEXT_FORMAT.replace("%(name)s", f"{service} %(name)s")
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiormq").setLevel("WARNING")
    logging.getLogger("aio_pika").setLevel("WARNING")
