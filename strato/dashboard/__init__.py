"""strato's dashboard: server-rendered pages at ``/dashboard`` that drive the public API
with the logged-in user's token (see ``docs/dashboard.md``)."""

from strato.dashboard.app import create_dashboard, in_process
from strato.dashboard.render import PREFIX
from strato.dashboard.session import Dashboard

__all__ = ["PREFIX", "Dashboard", "create_dashboard", "in_process"]
