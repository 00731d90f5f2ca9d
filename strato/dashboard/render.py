"""Templates: the Jinja2 environment (autoescaped), its filters, and the responses pages
answer with."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from strato.client import ApiError
from strato.dashboard.timeline import parse_time

__all__ = ["Viewer", "api_error", "env", "render", "view"]

PREFIX = "/dashboard"

env = Environment(loader=PackageLoader("strato.dashboard", "templates"),
                  autoescape=select_autoescape(default=True, default_for_string=True),
                  trim_blocks=True, lstrip_blocks=True)


def _ago(value: str | None) -> str:
    when = parse_time(value)
    if when is None:
        return ""
    seconds = int((datetime.now(UTC) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{max(seconds, 0)} s ago"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _size(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _addresses(server: dict[str, Any]) -> list[tuple[str, str]]:
    return [(network, str(address.get("addr", "")))
            for network, addresses in (server.get("addresses") or {}).items()
            for address in addresses]


env.filters.update(ago=_ago, seconds=_seconds, size=_size)
env.globals.update(prefix=PREFIX, addresses_of=_addresses)


class Viewer(Protocol):
    """Who is looking, as a page sees them: :class:`strato.dashboard.session.Session`
    (which imports this module, so it is named here only by what pages need of it)."""

    def context(self) -> dict[str, Any]:
        """What every page's template sees about the session."""
        ...


def render(template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    return HTMLResponse(env.get_template(template).render(**context), status_code=status)


def view(session: Viewer, template: str, http_status: int = 200,
         **context: Any) -> HTMLResponse:
    """A page for a logged-in user (the header with their projects, the flash)."""
    return render(template, {**session.context(), **context}, status=http_status)


def api_error(session: Viewer, exc: ApiError) -> HTMLResponse:
    """The API's refusal as a page: its status (a 5xx as 502) and its words."""
    status = exc.status if 400 <= exc.status < 500 else 502
    title = {403: "Not allowed", 404: "Not found"}.get(exc.status, "Refused")
    return view(session, "error.html", http_status=status, title=title,
                status_code=exc.status, message=exc.message)
