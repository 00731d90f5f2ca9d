"""The build timeline: an instance's ``create`` action and its events as bars.

Each step of the create path is an instance-action event with a start and a finish
(``docs/actions.md``): scheduling in the conductor, then on the chosen compute the claim,
the network allocation and the image fetch (side by side), plugging the ports, the spawn
and the boot. The ``api`` bar runs from the action's start (the API accepting the
request) to the first event (the conductor picking it up). A reschedule shows each
attempt's steps in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["Bar", "Timeline", "build_timeline", "parse_time"]

# Event name -> the step's name in plain words.
STEPS = {
    "conductor_schedule_and_build_instances": "scheduling",
    "compute__do_build_and_run_instance": "build on the host",
    "compute_claim_resources": "claim",
    "compute_allocate_networks": "network",
    "compute_prepare_image": "image fetch",
    "compute_plug_vifs": "network: plug ports",
    "compute_spawn": "spawn",
    "compute_boot": "boot",
}


def parse_time(value: str | None) -> datetime | None:
    """An API timestamp (naive ones are UTC) as an aware datetime."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Bar:
    """One step: where it sits on the time axis (percent of the whole) and how it went."""

    label: str
    event: str
    start: float  # seconds from the action's start
    duration: float  # seconds; for a running step, until now
    result: str  # "Success", "Error" or "running"
    details: str | None
    host: str | None
    alternates: tuple[str, ...]
    message: str | None  # the error (an admin's traceback), when there is one
    left: float  # percent
    width: float  # percent


@dataclass(frozen=True, slots=True)
class Timeline:
    bars: tuple[Bar, ...]
    total: float  # seconds, from the action's start to the last finish (or now)
    running: bool


# How long after its spawn a guest's boot is shown as still running without a word from
# the compute (whose watcher gives up after 120 s and records the boot as failed).
BOOT_WAIT = timedelta(seconds=150)


def _await_boot(spans: list[tuple[str, datetime, datetime | None, dict[str, Any]]],
                now: datetime) -> None:
    """An ACTIVE guest whose console is still silent: its boot step is running (the
    compute records it once the guest writes its first line)."""
    spawns = [s for s in spans if s[0] == "compute_spawn"]
    if not spawns:
        return
    _, _, spawned, event = spawns[-1]
    if spawned is None or event.get("result") != "Success" or now - spawned > BOOT_WAIT:
        return
    if any(s[0] == "compute_boot" and s[1] >= spawned for s in spans):
        return
    spans.append(("compute_boot", spawned, None,
                  {"details": "waiting for the guest's first console output"}))


def build_timeline(action: dict[str, Any], *, now: datetime | None = None) -> Timeline:
    """The bars of ``action`` (an ``instanceAction`` with its ``events``)."""
    now = now or datetime.now(UTC)
    origin = parse_time(action.get("start_time")) or now
    spans: list[tuple[str, datetime, datetime | None, dict[str, Any]]] = []
    events = sorted(action.get("events") or [],
                    key=lambda e: (parse_time(e.get("start_time")) or now,
                                   e.get("event") != "compute__do_build_and_run_instance"))
    for event in events:
        start = parse_time(event.get("start_time"))
        if start is None:
            continue
        spans.append((str(event.get("event", "")), start, parse_time(event.get("finish_time")),
                      event))
    if spans:
        first = min(s[1] for s in spans)
        spans.insert(0, ("api", origin, max(first, origin),
                         {"result": "Success", "details": "the API accepted the request "
                          "and handed it to the conductor"}))
    _await_boot(spans, now)
    running = any(finish is None for _, _, finish, _ in spans)
    end = max([finish or now for _, _, finish, _ in spans] or [origin])
    total = max((end - origin).total_seconds(), 1e-6)
    bars = []
    for name, start, finish, event in spans:
        offset = max((start - origin).total_seconds(), 0.0)
        duration = max(((finish or now) - start).total_seconds(), 0.0)
        result = "running" if finish is None else str(event.get("result") or "Success")
        alternates = tuple(str(h) for h in event.get("alternates") or ())
        bars.append(Bar(
            label=STEPS.get(name, name), event=name, start=offset, duration=duration,
            result=result, details=event.get("details"), host=event.get("host"),
            alternates=alternates, message=event.get("traceback"),
            left=min(offset / total * 100, 100.0),
            width=max(min(duration / total * 100, 100.0 - offset / total * 100), 0.4)))
    return Timeline(bars=tuple(bars), total=total, running=running)
