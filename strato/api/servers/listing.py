"""``GET /v2.1/servers`` and ``/servers/detail`` query parameters -> the repository's
:class:`~strato.db.ports.InstanceQuery` (microversion 2.1): pure, synchronous parsing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.datastructures import QueryParams

from strato.api.paging import Page
from strato.api.regexfilter import check_regex_filter
from strato.api.servers.schemas import ref_id
from strato.db.ports import InstanceQuery
from strato.domain.context import RequestContext
from strato.domain.errors import Forbidden, Invalid
from strato.domain.ids import HostName, InstanceId, ProjectId
from strato.domain.instances import VmState

__all__ = ["ListServers", "parse_list"]

# Nova's API status -> the vm_states it stands for (nova/api/openstack/common.py).
_STATES_BY_STATUS: dict[str, tuple[VmState, ...]] = {
    "ACTIVE": (VmState.ACTIVE,), "BUILD": (VmState.BUILDING,), "ERROR": (VmState.ERROR,),
    "SHUTOFF": (VmState.STOPPED,), "PAUSED": (VmState.PAUSED,),
    "SUSPENDED": (VmState.SUSPENDED,), "DELETED": (VmState.DELETED,),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ListServers:
    """A server listing: the repository query, or ``None`` when a filter (an unknown
    status) already means "nothing", as Nova answers an empty list then."""

    query: InstanceQuery | None


def parse_list(params: QueryParams, page: Page, ctx: RequestContext) -> ListServers:
    """The listing query from ``GET /servers`` parameters; unknown parameters are
    ignored (Nova 2.1). ``all_tenants`` and ``status=DELETED`` need the admin role (403
    otherwise); ``changes-since`` includes deleted servers, as in Nova."""
    all_tenants = _all_tenants(params)
    if all_tenants and not ctx.is_admin:
        raise Forbidden("Policy doesn't allow os_compute_api:servers:index:get_all_tenants "
                        "to be performed.")
    vm_states = _vm_states(params.getlist("status"))
    if vm_states == ():
        return ListServers(query=None)
    wants_deleted = VmState.DELETED in (vm_states or ())
    if wants_deleted and not ctx.is_admin:
        raise Forbidden("Only administrators may list deleted instances")
    changes_since = _changes_since(params.get("changes-since"))
    project = _project_filter(params, ctx, all_tenants)
    return ListServers(query=InstanceQuery(
        project_id=project, name=_name_filter(params.get("name")), vm_states=vm_states,
        changes_since=changes_since,
        host=HostName(params["host"]) if ctx.is_admin and params.get("host") else None,
        reservation_id=params.get("reservation_id") or None,
        image_ref=_ref_filter(params.get("image")), flavor_id=_ref_filter(params.get("flavor")),
        ip=_regex_filter("ip", params.get("ip")),
        # Nova 2.1 lets only admins filter by ip6 (2.5 opened it to everyone).
        ip6=_regex_filter("ip6", params.get("ip6")) if ctx.is_admin else None,
        include_deleted=changes_since is not None or wants_deleted,
        limit=page.limit, marker=InstanceId(page.marker) if page.marker else None))


def _all_tenants(params: QueryParams) -> bool:
    if "all_tenants" not in params:
        return False
    raw = params["all_tenants"].lower()
    if raw in ("", "true", "1", "on", "yes", "t", "y"):
        return True
    if raw in ("false", "0", "off", "no", "f", "n"):
        return False
    raise Invalid(f"Invalid value '{params['all_tenants']}' for all_tenants")


def _project_filter(params: QueryParams, ctx: RequestContext,
                    all_tenants: bool) -> ProjectId | None:
    if not all_tenants:
        return ctx.project_id
    wanted = params.get("project_id") or params.get("tenant_id")
    return ProjectId(wanted) if wanted else None


def _vm_states(statuses: list[str]) -> tuple[VmState, ...] | None:
    """``None`` for no status filter; an empty tuple when no status is known."""
    if not statuses:
        return None
    states = [s for status in statuses for s in _STATES_BY_STATUS.get(status.upper(), ())]
    return tuple(dict.fromkeys(states))


def _name_filter(raw: str | None) -> str | None:
    return _regex_filter("name", raw)


def _regex_filter(field: str, raw: str | None) -> str | None:
    # A bounded, portable regex subset (strato.api.regexfilter), checked before the query.
    return check_regex_filter(field, raw) if raw else None


def _ref_filter(raw: str | None) -> str | None:
    """An ``image`` or ``flavor`` filter: an id, or a URL (``.../images/<id>``) naming it."""
    return ref_id(raw) if raw else None


def _changes_since(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    # An unencoded "+" in the UTC offset arrives as a space: try that reading too.
    for text in (raw.strip(), "+".join(raw.strip().rsplit(" ", 1))):
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            continue
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    raise Invalid(f"Invalid input for query parameters changes-since. Value: {raw}. "
                  f"'{raw}' is not a 'date-time'")
