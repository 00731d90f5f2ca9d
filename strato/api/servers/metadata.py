"""``/v2.1/servers/{id}/metadata``: a server's metadata, as Nova's ``server-metadata``
API (microversion 2.1).

Bodies follow Nova's schemas (``schemas/server_metadata.py``): ``{"metadata": {...}}``
to merge (``POST``) or replace (``PUT``) them all, ``{"meta": {key: value}}`` with exactly
one key, the URL's, to set one item; keys and values are checked as at create. A write
follows ``compute.API.update_instance_metadata``: the lock first (409 for non-admins),
then the state (active, paused, suspended or stopped, no task running; 409 otherwise),
then the project's ``metadata_items`` quota on the metadata as it would be (403).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from strato.api.bodies import parse_model
from strato.api.deps import ApiDeps
from strato.api.quotas.service import project_limits
from strato.api.servers.schemas import _check_metadata
from strato.api.servers.service import check_lock_and_state, get_server
from strato.domain.context import RequestContext
from strato.domain.errors import Invalid, InvalidState, NotFound, OverQuota
from strato.domain.instances import Instance, VmState
from strato.domain.quotas import exceeds

__all__ = ["delete_item", "metadata_of", "parse_item", "parse_metadata", "show_item",
           "write_metadata"]

_Strict = ConfigDict(strict=True, extra="forbid", frozen=True)
_Metadata = Annotated[dict[str, str], AfterValidator(_check_metadata)]

# Nova's check_instance_state for update_instance_metadata/delete_instance_metadata.
_WRITABLE = frozenset({VmState.ACTIVE, VmState.PAUSED, VmState.SUSPENDED, VmState.STOPPED})


class _MetadataBody(BaseModel):
    """``POST`` and ``PUT /servers/{id}/metadata``."""

    model_config = _Strict

    metadata: _Metadata


class _ItemBody(BaseModel):
    """``PUT /servers/{id}/metadata/{key}``: one item."""

    model_config = _Strict

    meta: Annotated[_Metadata, Field(min_length=1, max_length=1)]


def parse_metadata(body: Any) -> dict[str, str]:
    """A ``{"metadata": {...}}`` body's items; ``Invalid`` (400) when malformed."""
    return dict(parse_model(_MetadataBody, body).metadata)


def parse_item(body: Any, key: str) -> dict[str, str]:
    """A ``{"meta": {key: value}}`` body's one item, whose key must be the URL's
    (Nova's 400 "Request body and URI mismatch" otherwise)."""
    item = dict(parse_model(_ItemBody, body).meta)
    if key not in item:
        raise Invalid("Request body and URI mismatch")
    return item


async def metadata_of(deps: ApiDeps, ctx: RequestContext, server_id: str) -> dict[str, str]:
    """The metadata of a server the caller may see (404 otherwise)."""
    return dict((await get_server(deps, ctx, server_id)).metadata)


async def show_item(deps: ApiDeps, ctx: RequestContext, server_id: str,
                    key: str) -> dict[str, str]:
    """``{key: value}`` of one item; 404 when the server has no such key."""
    metadata = await metadata_of(deps, ctx, server_id)
    if key not in metadata:
        raise NotFound("Metadata item was not found")
    return {key: metadata[key]}


async def write_metadata(deps: ApiDeps, ctx: RequestContext, server_id: str,
                         items: dict[str, str], *, replace: bool) -> dict[str, str]:
    """Merge ``items`` into the server's metadata (or, with ``replace``, make them all
    of it); the metadata afterwards."""
    instance = await get_server(deps, ctx, server_id)
    check_lock_and_state(instance, ctx, "update metadata", _WRITABLE)
    metadata = dict(items) if replace else {**instance.metadata, **items}
    limit = (await project_limits(deps, instance.project_id))["metadata_items"]
    if exceeds(limit, 0, len(metadata)):
        # Nova's MetadataLimitExceeded (a QuotaError: 403).
        raise OverQuota(f"Maximum number of metadata items exceeds {limit}")
    return dict((await _store(deps, instance, metadata, "update metadata")).metadata)


async def delete_item(deps: ApiDeps, ctx: RequestContext, server_id: str, key: str) -> None:
    """Remove one item: 404 when the server has no such key, then the lock and state
    checks of a write."""
    instance = await get_server(deps, ctx, server_id)
    if key not in instance.metadata:
        raise NotFound("Metadata item was not found")
    check_lock_and_state(instance, ctx, "delete metadata", _WRITABLE)
    metadata = {k: v for k, v in instance.metadata.items() if k != key}
    await _store(deps, instance, metadata, "delete metadata")


async def _store(deps: ApiDeps, instance: Instance, metadata: dict[str, str],
                 what: str) -> Instance:
    # Only while no task runs: an action that started since our read wins (409).
    try:
        return await deps.db.instances.update(instance.id, {"metadata": metadata},
                                              expected_task_state=(None,))
    except NotFound:
        raise NotFound(f"Instance {instance.id} could not be found.") from None
    except InvalidState:
        raise InvalidState(f"Cannot '{what}' instance {instance.id} while another action "
                           "is in progress") from None
