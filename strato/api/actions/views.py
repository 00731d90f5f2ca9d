"""Instance actions -> Nova 2.1 ``os-instance-actions`` JSON."""

from __future__ import annotations

from typing import Any

from strato.api.formats import iso_micro
from strato.domain.actions import ActionEvent, InstanceAction

__all__ = ["action_detail", "action_summary"]


def action_summary(action: InstanceAction) -> dict[str, Any]:
    """An action in the list (no events)."""
    return {"action": action.action, "instance_uuid": action.instance_id,
            "request_id": action.request_id, "user_id": action.user_id,
            "project_id": action.project_id, "start_time": iso_micro(action.start_time),
            "message": action.message}


def action_detail(action: InstanceAction, *, is_admin: bool) -> dict[str, Any]:
    """One action with its events. Everyone sees an event's ``details`` (Nova 2.84's
    field: what the step decided, in words that name no host); the traceback, the host
    and a scheduling step's alternate hosts are for admins only, as in Nova's default
    policy (a traceback can reveal internals, host names the cloud's layout)."""
    return {**action_summary(action),
            "events": [_event(e, is_admin=is_admin) for e in action.events]}


def _event(event: ActionEvent, *, is_admin: bool) -> dict[str, Any]:
    view: dict[str, Any] = {"event": event.event, "start_time": iso_micro(event.start_time),
                            "finish_time": iso_micro(event.finish_time),
                            "result": event.result and str(event.result),
                            "details": event.details}
    if is_admin:
        view["traceback"] = event.traceback
        view["host"] = event.host
        view["alternates"] = list(event.alternates)
    return view
