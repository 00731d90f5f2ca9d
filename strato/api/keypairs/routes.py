"""``/v2.1/os-keypairs`` (microversion 2.1): create or import, list, show, delete.

Key pairs belong to the calling user (an admin's ``user_id`` query arrives with 2.10,
so it is ignored here, as Nova ignores unknown query parameters at 2.1). Creating one
counts against the ``key_pairs`` quota per user (403 past it). At 2.1 create answers
200 and delete 202, as Nova.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strato.api.bodies import read_json
from strato.api.deps import Context, Deps
from strato.api.keypairs import schemas, views
from strato.api.openapi import request_body
from strato.api.policy import action
from strato.api.quotas.service import project_limits
from strato.domain.context import RequestContext
from strato.domain.keypairs import KeyPair, fingerprint, generate_key_pair

__all__ = ["router"]

router = APIRouter(prefix="/v2.1")


async def _new_key_pair(fields: schemas.KeyPairCreate,
                        ctx: RequestContext) -> tuple[KeyPair, str | None]:
    """The key pair to store and, when generated, its private key."""
    if fields.public_key is not None:
        return KeyPair(name=fields.name, user_id=ctx.user_id, public_key=fields.public_key,
                       fingerprint=fingerprint(fields.public_key)), None
    # RSA key generation takes tens of milliseconds of CPU: off the event loop.
    generated = await asyncio.to_thread(generate_key_pair)
    return KeyPair(name=fields.name, user_id=ctx.user_id, public_key=generated.public_key,
                   fingerprint=generated.fingerprint), generated.private_key


@router.post("/os-keypairs")
@request_body(schemas._CreateBody)
@action("os_compute_api:os-keypairs:create")
async def create_keypair(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """Import ``public_key``, or generate a key pair and return its private key once."""
    fields = schemas.parse_create(await read_json(request))
    key_pair, private_key = await _new_key_pair(fields, ctx)
    limits = await project_limits(deps, ctx.project_id)
    created = await deps.db.key_pairs.create(key_pair, limit=limits["key_pairs"])
    return JSONResponse(views.created(created, private_key))


@router.get("/os-keypairs")
@action("os_compute_api:os-keypairs:index")
async def list_keypairs(deps: Deps, ctx: Context) -> JSONResponse:
    """The caller's key pairs, oldest first."""
    return JSONResponse(views.listed(await deps.db.key_pairs.list(ctx.user_id)))


@router.get("/os-keypairs/{name}")
@action("os_compute_api:os-keypairs:show")
async def show_keypair(name: str, deps: Deps, ctx: Context) -> JSONResponse:
    """One of the caller's key pairs; 404 if it has none of that name."""
    return JSONResponse(views.shown(await deps.db.key_pairs.get(ctx.user_id, name)))


@router.delete("/os-keypairs/{name}")
@action("os_compute_api:os-keypairs:delete")
async def delete_keypair(name: str, deps: Deps, ctx: Context) -> Response:
    """Delete one of the caller's key pairs (202, as Nova at 2.1)."""
    await deps.db.key_pairs.delete(ctx.user_id, name)
    return Response(status_code=202)
