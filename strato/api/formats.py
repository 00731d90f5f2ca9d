"""Wire formats shared by the views: timestamps and resource links."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request

from strato.config import ApiSettings

__all__ = ["base_url", "iso_micro", "iso_z", "links"]


def _utc(value: datetime) -> datetime:
    # Naive timestamps are UTC by convention throughout strato.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_z(value: datetime | None) -> str | None:
    """Nova's resource timestamps (``created``, ``updated``): ``2024-01-02T03:04:05Z``."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def iso_micro(value: datetime | None) -> str | None:
    """Nova's event-style timestamps (``launched_at``, action ``start_time``):
    ``2024-01-02T03:04:05.123456``, UTC without an offset."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def base_url(request: Request, settings: ApiSettings) -> str:
    """The URL clients reach the API at, without a trailing slash: ``public_url`` when
    configured (behind a proxy), else the URL the request came in on."""
    return (settings.public_url or str(request.base_url)).rstrip("/")


def links(base: str, collection: str, item_id: str) -> list[dict[str, str]]:
    """Nova's ``self`` and ``bookmark`` links for one item of a compute collection."""
    return [{"rel": "self", "href": f"{base}/v2.1/{collection}/{item_id}"},
            {"rel": "bookmark", "href": f"{base}/{collection}/{item_id}"}]
