"""Neutron's list query over the visible rows, run in the API process: filters, then
sorting, then ``limit``/``marker`` paging (both ways), then ``fields``.

Filters: ``?key=a&key=b`` keeps the items whose ``key`` is ``a`` or ``b``; an empty
value filters for the empty string (Neutron's ``empty-string-filtering``); booleans are
read as Neutron converts them (``true``/``false``/``1``/``0``, anything else is a 400);
a list attribute matches when any of its members does. Ports' ``fixed_ips`` takes
``ip_address=``, ``subnet_id=`` and ``ip_address_substr=`` terms that one allocation
must all meet; ``tags``, ``tags-any``, ``not-tags`` and ``not-tags-any`` take
comma-separated tags. A key that is no attribute of the resource is a 400, as with
Neutron's ``filter_validation`` (on by default): ``['bogus'] is invalid attribute for
filtering``; a filter on an attribute the caller's view does not show (a port's
binding for a non-admin) is ignored.

Sorting: ``sort_key``/``sort_dir`` pairs (as many of each, ``asc`` or ``desc``; a key
must be a scalar attribute), then the id; without them the order is by id.

Paging is Neutron's: no ``limit`` (or 0) is no paging; a ``marker`` must name a visible
item (404 otherwise) and the page is what sorts after it (before it with
``page_reverse=True``). With a ``limit`` the body carries
``<collection>_links``: ``next`` unless a forward page came back short, ``previous``
unless a reverse page did, as ``neutron.api.api_common.get_pagination_links`` builds
them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse

from strato.api.errors import ApiFault
from strato.domain.errors import Invalid, NotFound

__all__ = ["Paging", "collection", "select_fields"]

Item = dict[str, Any]

_NOT_FILTERS = frozenset({"fields", "limit", "marker", "sort_key", "sort_dir",
                          "page_reverse"})
_TAG_FILTERS = frozenset({"tags", "tags-any", "not-tags", "not-tags-any"})
_FIXED_IP_KEYS = frozenset({"ip_address", "subnet_id", "ip_address_substr"})


def _invalid(message: str) -> Invalid:
    return Invalid(f"Invalid input for operation: {message}.")


def _boolean(value: str) -> bool:
    """Neutron's ``convert_to_boolean`` for a query value."""
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise _invalid(f"'{value}' cannot be converted to boolean")


def _equals(value: Any, wanted: list[str]) -> bool:
    if isinstance(value, bool):
        return value in {_boolean(w) for w in wanted}
    if isinstance(value, list):
        return any(_equals(member, wanted) for member in value)
    return ("" if value is None else str(value)) in wanted


def _fixed_ip_terms(values: list[str]) -> dict[str, set[str]]:
    """Neutron's ``convert_kvp_list_to_dict``: ``["ip_address=10.0.0.3", ...]`` ->
    ``{"ip_address": {"10.0.0.3"}}``."""
    terms: dict[str, set[str]] = {}
    for value in values:
        key, sep, wanted = (part.strip() for part in value.partition("="))
        if not sep or not key:
            raise _invalid(f"'{value}' is not of the form <key>=[value]")
        terms.setdefault(key, set()).add(wanted)
    return terms


def _fixed_ips_match(fixed_ips: list[Item], terms: dict[str, set[str]]) -> bool:
    def fits(ip: Item) -> bool:
        if "ip_address" in terms and ip["ip_address"] not in terms["ip_address"]:
            return False
        if "subnet_id" in terms and ip["subnet_id"] not in terms["subnet_id"]:
            return False
        substrings = terms.get("ip_address_substr")
        return not substrings or any(s in ip["ip_address"] for s in substrings)
    if not _FIXED_IP_KEYS & set(terms):
        return True
    return any(fits(ip) for ip in fixed_ips)


def _tags_match(tags: Iterable[str], key: str, wanted: list[str]) -> bool:
    have = set(tags)
    sets = [{t for t in w.split(",") if t} for w in wanted]
    if key == "tags":
        return all(s <= have for s in sets)
    if key == "tags-any":
        return any(s & have for s in sets)
    if key == "not-tags":
        return not all(s <= have for s in sets)
    return not any(s & have for s in sets)  # not-tags-any


def _check_filters(params: QueryParams, filters: frozenset[str]) -> None:
    """Neutron's filter validation: every key but the paging/sorting/``fields`` ones
    must be one of the resource's attributes (the tag filters with ``tags``)."""
    allowed = filters | _TAG_FILTERS if "tags" in filters else filters
    invalid = [key for key in dict.fromkeys(params)
               if key not in _NOT_FILTERS and key not in allowed]
    if invalid:
        # webob's HTTPBadRequest in Neutron, so the type is that, not InvalidInput
        raise ApiFault(400, f"{invalid} is invalid attribute for filtering")


def _filter(items: list[Item], params: QueryParams) -> list[Item]:
    known = set(items[0]) if items else set()
    for key in dict.fromkeys(k for k in params if k not in _NOT_FILTERS):
        wanted = params.getlist(key)
        if key == "fixed_ips" and key in known:
            terms = _fixed_ip_terms(wanted)
            items = [i for i in items if _fixed_ips_match(i["fixed_ips"], terms)]
        elif key in _TAG_FILTERS and "tags" in known:
            items = [i for i in items if _tags_match(i["tags"], key, wanted)]
        elif key in known:
            items = [i for i in items if _equals(i[key], wanted)]
    return items


def _sortable(visible: list[Item]) -> set[str]:
    """The attributes one can sort on: the scalar ones (none known without a row)."""
    if not visible:
        return set()
    return {k for k, v in visible[0].items() if not isinstance(v, (list, dict))}


def _sorts(params: QueryParams, known: set[str]) -> list[tuple[str, bool]]:
    """``[(key, ascending), ...]``, checked as Neutron's ``get_sorts`` checks them (the
    keys only when there is a row to know the attributes from)."""
    keys = [k for k in params.getlist("sort_key") if k]
    dirs = [d for d in params.getlist("sort_dir") if d]
    if len(keys) != len(dirs):
        raise Invalid("The number of sort_keys and sort_dirs must be same")
    absent = [k for k in keys if known and k not in known]
    if absent:
        raise Invalid(f"{absent} is invalid attribute for sort_keys")
    invalid = [d for d in dirs if d not in ("asc", "desc")]
    if invalid:
        raise Invalid(f"{invalid} is invalid value for sort_dirs, valid value is 'asc' "
                      "and 'desc'")
    sorts = [(k, d == "asc") for k, d in zip(keys, dirs, strict=True)]
    if "id" not in keys:
        sorts.append(("id", True))
    return sorts


def _comparator(sorts: list[tuple[str, bool]]) -> Callable[[Item, Item], int]:
    """Neutron's emulated sort: ``None`` first, then by value, each key its direction."""
    def compare(first: Item, second: Item) -> int:
        for key, ascending in sorts:
            a, b = first.get(key), second.get(key)
            if a is None or b is None:
                result = (a is not None) - (b is not None)
            else:
                a, b = (a, b) if type(a) is type(b) else (str(a), str(b))
                result = (a > b) - (a < b)
            if result:
                return result if ascending else -result
        return 0
    return compare


@dataclass(frozen=True, slots=True, kw_only=True)
class Paging:
    """The ``limit``/``marker``/``page_reverse`` of a list query (no limit: no paging)."""

    limit: int | None
    marker: str | None
    reverse: bool

    @classmethod
    def parse(cls, params: QueryParams) -> Paging:
        raw = params.get("limit", "0")
        if not raw.isascii() or not raw.isdigit():
            raise Invalid(f"Bad limit request: Limit must be an integer 0 or greater and "
                          f"not '{raw}'.")
        limit = int(raw) or None
        return cls(limit=limit, marker=(params.get("marker") or None) if limit else None,
                   reverse=params.get("page_reverse", "False").lower() == "true")


def _page(ordered: list[Item], visible: list[Item], paging: Paging,
          compare: Callable[[Item, Item], int],
          not_found: Callable[[str], NotFound]) -> list[Item]:
    if paging.limit is None:
        return ordered
    if paging.marker is not None:
        marker = next((i for i in visible if i["id"] == paging.marker), None)
        if marker is None:
            raise not_found(paging.marker)
        ordered = [i for i in ordered
                   if (compare(i, marker) < 0 if paging.reverse else compare(i, marker) > 0)]
    return ordered[-paging.limit:] if paging.reverse else ordered[:paging.limit]


def _href(url: str, params: QueryParams, marker: str | None, *, reverse: bool) -> str:
    query = [(k, v) for k, v in params.multi_items() if k not in ("marker", "page_reverse")]
    if marker is not None:
        query.append(("marker", marker))
    if reverse:
        query.append(("page_reverse", "True"))
    return f"{url}?{urlencode(query)}"


def _links(url: str, params: QueryParams, page: list[Item],
           paging: Paging) -> list[dict[str, str]]:
    if paging.limit is None:
        return []
    short = len(page) < paging.limit
    links = []
    if not (short and not paging.reverse):
        links.append({"rel": "next", "href": _href(
            url, params, page[-1]["id"] if page else None, reverse=False)})
    if not (short and paging.reverse):
        links.append({"rel": "previous", "href": _href(
            url, params, page[0]["id"] if page else None, reverse=True)})
    return links


def select_fields(params: QueryParams, items: list[Item]) -> list[Item]:
    """The attributes ``fields=`` names (every one when it names none)."""
    fields = [f for f in params.getlist("fields") if f]
    if not fields:
        return items
    return [{k: v for k, v in item.items() if k in fields} for item in items]


def collection(request: Request, name: str, visible: list[Item], *,
               not_found: Callable[[str], NotFound],
               filters: frozenset[str]) -> JSONResponse:
    """``{name: [...], name_links: [...]}`` for the ``visible`` views (by id or not,
    unfiltered) under the request's query; ``not_found(marker)`` is the 404 of a
    marker that names no visible item; ``filters`` are the attributes one may filter
    on (the others are a 400)."""
    params = request.query_params
    _check_filters(params, filters)
    sorts = _sorts(params, _sortable(visible))
    paging = Paging.parse(params)
    compare = _comparator(sorts)
    ordered = sorted(_filter(visible, params), key=functools.cmp_to_key(compare))
    page = _page(ordered, visible, paging, compare, not_found)
    body: dict[str, Any] = {name: select_fields(params, page)}
    links = _links(str(request.url.replace(query="")), params, page, paging)
    if links:
        body[f"{name}_links"] = links
    return JSONResponse(body)
