"""Instance actions -> Nova 2.1 ``os-instance-actions`` JSON."""

from __future__ import annotations

from typing import Any

from strato.api.formats import iso_micro
from strato.domain.actions import ActionEvent, InstanceAction

__all__ = ["EXTRAS_HEADER", "action_detail", "action_summary"]

# The request header (any of "1", "true", "yes") that asks for the event fields Nova
# 2.1 does not have; without it the answer is exactly 2.1's.
EXTRAS_HEADER = "X-Strato-Action-Extras"


def action_summary(action: InstanceAction) -> dict[str, Any]:
    """An action in the list (no events)."""
    return {"action": action.action, "instance_uuid": action.instance_id,
            "request_id": action.request_id, "user_id": action.user_id,
            "project_id": action.project_id, "start_time": iso_micro(action.start_time),
            "message": action.message}


def action_detail(action: InstanceAction, *, is_admin: bool,
                  extras: bool = False) -> dict[str, Any]:
    """One action with its events, as Nova 2.1: each event's ``traceback`` is for admins
    only (``null`` for the others, as in Nova's default policy: a traceback can reveal
    internals).

    ``extras`` (the caller asked with :data:`EXTRAS_HEADER`; strato's own client does)
    adds what 2.1 has no field for: ``details`` for everyone (Nova 2.84's field: what
    the step decided, in words that name no host), and for admins the ``host`` and a
    scheduling step's ``alternates`` (host names show the cloud's layout)."""
    return {**action_summary(action),
            "events": [_event(e, is_admin=is_admin, extras=extras) for e in action.events]}


def _event(event: ActionEvent, *, is_admin: bool, extras: bool) -> dict[str, Any]:
    view: dict[str, Any] = {"event": event.event, "start_time": iso_micro(event.start_time),
                            "finish_time": iso_micro(event.finish_time),
                            "result": event.result and str(event.result),
                            "traceback": event.traceback if is_admin else None}
    if extras:
        view["details"] = event.details
        if is_admin:
            view["host"] = event.host
            view["alternates"] = list(event.alternates)
    return view
