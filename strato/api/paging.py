"""``limit``/``marker`` paging and the ``next`` links of Nova collections."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from strato.domain.errors import Invalid

__all__ = ["MAX_LIMIT", "Page", "next_links", "parse_page", "query_count"]

# Nova's osapi_max_limit: a page never holds more, whatever the client asks.
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """Which page the client asked for."""

    limit: int
    marker: str | None = None


def query_count(params: QueryParams, name: str, *, cap: int) -> int | None:
    """The query parameter ``name`` as a non-negative integer, at most ``cap`` (None when
    absent); ``Invalid`` with Nova's message for anything else."""
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit():
        raise Invalid(f"Invalid input for query parameters {name}. Value: {raw}. "
                      f"'{name}' must be a non-negative integer")
    return min(int(raw), cap)


def parse_page(params: QueryParams, *, max_limit: int = MAX_LIMIT) -> Page:
    """The page in the query; ``Invalid`` for a limit that is not a non-negative integer."""
    limit = query_count(params, "limit", cap=max_limit)
    return Page(limit=max_limit if limit is None else limit,
                marker=params.get("marker") or None)


def next_links(*, url: str, params: QueryParams, page: Page,
               ids: list[str]) -> list[dict[str, str]]:
    """Nova's ``<collection>_links``: a ``next`` link when the page is full, carrying
    the other query parameters and the last item as the new marker."""
    if not ids or len(ids) < page.limit:
        return []
    query = [(k, v) for k, v in params.multi_items() if k not in ("marker", "limit")]
    query += [("limit", str(page.limit)), ("marker", ids[-1])]
    return [{"rel": "next", "href": f"{url}?{urlencode(query)}"}]
