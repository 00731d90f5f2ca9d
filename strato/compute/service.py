"""The compute service: its routing table and its periodic capacity report."""

from __future__ import annotations

import asyncio
import logging
import re
from functools import partial
from typing import TYPE_CHECKING

from strato.compute import lifecycle
from strato.compute.build import build_and_run_instance
from strato.compute.deps import ComputeDeps
from strato.domain.context import RequestContext, admin_context
from strato.domain.errors import StratoError
from strato.rpc.contracts.compute import (
    BuildAndRunInstance,
    GetConsoleOutput,
    RebootInstance,
    RebuildInstance,
    TerminateInstance,
)
from strato.rpc.contracts.network import NetworksChanged

if TYPE_CHECKING:
    from strato.rpc.bus import HandlerTable

__all__ = ["get_console_output", "handlers", "network_handlers", "report_capacity",
           "report_periodically"]

logger = logging.getLogger(__name__)


def handlers(deps: ComputeDeps) -> HandlerTable:
    """The compute's routing table."""
    return {
        BuildAndRunInstance: partial(build_and_run_instance, deps=deps),
        TerminateInstance: partial(lifecycle.terminate_instance, deps=deps),
        GetConsoleOutput: partial(get_console_output, deps=deps),
        RebootInstance: partial(lifecycle.reboot_instance, deps=deps),
        RebuildInstance: partial(lifecycle.rebuild_instance, deps=deps),
        **{kind: partial(lifecycle.power_action, deps=deps)
           for kind in lifecycle.POWER_ACTIONS},
    }


def network_handlers(deps: ComputeDeps) -> HandlerTable:
    """What the compute does on the network fanout: bring its firewall in line."""

    async def changed(ctx: RequestContext, msg: NetworksChanged) -> None:
        del msg
        try:
            await deps.network.refresh(ctx)
        except StratoError as exc:  # the next resync pass tries again
            logger.warning("firewall refresh failed: %s", exc)
        except Exception:  # a bug or a bad value must not take the host down
            logger.exception("firewall refresh failed")

    return {NetworksChanged: changed}


# Nova removes these from console output (all C0 controls but tab and newline).
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f]")


async def get_console_output(_ctx: RequestContext, msg: GetConsoleOutput, *,
                             deps: ComputeDeps) -> str:
    """What the guest printed (Nova's ``get_console_output``): the last ``length``
    lines, or everything the driver keeps, without control characters but tab and
    newline (a serial console's carriage returns among them).

    Nova's tail cuts the text at each newline and keeps the last ``length`` pieces, so
    the text after the final newline (empty when the output ends in one) is the last
    piece: the answer splits into ``length`` pieces when there are that many (what
    Tempest counts), and
    "the last 3 lines" of a console ending in a newline are its last 2 lines."""
    text = await deps.driver.console_output(msg.instance_id)
    if msg.length is not None:
        text = "\n".join(text.split("\n")[-msg.length:]) if msg.length > 0 else ""
    return _CONTROL_CHARS.sub("", text)


async def report_capacity(deps: ComputeDeps) -> None:
    """Tell the conductor what this host's nodes hold (also the host's heartbeat)."""
    capacities = tuple(await deps.driver.node_capacities())
    deps.tracker.update_capacities(capacities)
    await deps.conductor.report_nodes(admin_context(), deps.host, capacities)


async def report_periodically(deps: ComputeDeps, stop: asyncio.Event, interval: float) -> None:
    """Report every ``interval`` seconds until ``stop`` is set; a failed report is logged
    and retried at the next tick (the conductor may be restarting)."""
    while not stop.is_set():
        try:
            await report_capacity(deps)
        except StratoError as exc:
            logger.warning("capacity report failed: %s", exc)
        except Exception:  # the heartbeat goes on: the next tick tries again
            logger.exception("capacity report failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
