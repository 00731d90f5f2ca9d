"""What a compute's workflows share: the host's collaborators (:class:`ComputeDeps`),
the task group its boot watchers run in (:class:`Watchers`), and two small helpers
(:func:`notifier`, :func:`current_instance`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from strato.compute.locks import KeyedLocks
from strato.compute.notify import Notifier
from strato.compute.tracker import ResourceTracker
from strato.domain.context import RequestContext
from strato.domain.errors import NotFound
from strato.domain.ids import HostName, InstanceId
from strato.domain.instances import Instance

if TYPE_CHECKING:
    from strato.conductor.client import ConductorClient
    from strato.network.host import HostNetwork
    from strato.virt.driver import VirtDriver

__all__ = ["ComputeDeps", "Watchers", "current_instance", "notifier"]

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Watchers:
    """The tasks a build leaves running when it returns (a new guest's boot watcher).

    They run in one TaskGroup that whoever runs the compute holds open (:meth:`open`,
    in ``bootstrap.run_compute``) while it takes messages; :meth:`stop` (or leaving the
    group) cancels the watchers still running and waits for them. A watcher that fails
    is logged: it never cancels the compute.
    """

    def __init__(self) -> None:
        self.running: set[asyncio.Task[None]] = set()
        self._group: asyncio.TaskGroup | None = None

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        """Hold the group open for the block. What the block raises comes out as it is
        (not in an exception group)."""
        failure: BaseException | None = None
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                yield
            except BaseException as exc:  # re-raised once the watchers are gone
                failure = exc
            finally:
                self._group = None
                for task in self.running:
                    task.cancel()
        if failure is not None:
            raise failure

    async def stop(self) -> None:
        """Cancel the watchers and wait for them (the compute is stopping); none starts
        after this."""
        self._group = None
        watchers = list(self.running)
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)

    def start(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run ``work`` in the group; when it is not open (the compute is stopping, or
        not running) nothing is started, as a watcher would be cancelled at once."""
        if self._group is None:
            work.close()
            logger.info("%s not started: the compute is not running", name)
            return
        task = self._group.create_task(self._guarded(work, name), name=name)
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except Exception:  # a bug in one watcher must not cancel the compute's group
            logger.exception("%s crashed", name)


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputeDeps:
    host: HostName
    driver: VirtDriver
    conductor: ConductorClient
    tracker: ResourceTracker
    locks: KeyedLocks
    builds: asyncio.Semaphore
    network: HostNetwork
    clock: Callable[[], datetime] = _utcnow
    # Seconds a watcher waits for a new guest's first console output (the boot step).
    boot_watch_timeout: float = 120.0
    # The running boot watchers; the compute cancels them when it stops.
    watchers: Watchers = field(default_factory=Watchers)


def notifier(deps: ComputeDeps) -> Notifier:
    """Notifications leave on the bus this host already talks to the conductor over."""
    return Notifier(deps.conductor.bus, deps.host)


async def current_instance(ctx: RequestContext, deps: ComputeDeps,
                           iid: InstanceId) -> Instance | None:
    """The instance as stored now, for a notification; None once it is deleted."""
    try:
        return await deps.conductor.get_instance(ctx, iid)
    except NotFound:
        return None
