"""Telling the schedulers that what they place by changed (a service enabled or
disabled, an aggregate's hosts or zone), so the next decision reads it."""

from __future__ import annotations

import logging

from strato.api.deps import ApiDeps
from strato.domain.context import RequestContext
from strato.domain.errors import StratoError
from strato.rpc.contracts.scheduler import FANOUT_TOPIC, HostsChanged

__all__ = ["hosts_changed"]

logger = logging.getLogger(__name__)


async def hosts_changed(deps: ApiDeps, ctx: RequestContext, reason: str) -> None:
    """Publish :class:`HostsChanged`. Best effort: the change is already stored and the
    schedulers read it within ``host_refresh_interval`` anyway."""
    try:
        await deps.bus.publish(FANOUT_TOPIC, HostsChanged(reason=reason), ctx=ctx)
    except StratoError as exc:
        logger.warning("could not tell the schedulers that %s: %s", reason, exc)
