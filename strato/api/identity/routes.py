"""Identity API routes (Keystone v3): version discovery and ``/v3/auth/*``.

These paths are public to the auth middleware (a token is what they hand out); the
routes that need a caller check it themselves, answering in Keystone's error format.
"""

from __future__ import annotations

import json

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strato.api.auth import KeystoneAuth
from strato.api.bodies import refuse_nul
from strato.api.deps import Context, Deps
from strato.api.identity import schemas, views
from strato.api.openapi import keystone_auth, request_body
from strato.api.policy import PUBLIC, action
from strato.domain.context import RequestContext
from strato.domain.errors import Invalid
from strato.domain.identity import AuthFailed
from strato.identity.lockout import LoginThrottled
from strato.identity.service import TokenInfo, TokenService

__all__ = ["router"]

router = APIRouter()

_NO_TOKEN = "The request you have made requires authentication."


class _Refused(Exception):  # noqa: N818 - carries a ready Keystone error response
    def __init__(self, response: Response) -> None:
        self.response = response


async def _tokens(deps: Deps) -> TokenService:
    if not isinstance(deps.auth, KeystoneAuth):
        raise _Refused(views.error(404, "The identity service is not enabled.",
                                   deps.settings))
    return deps.auth.tokens


async def _caller(request: Request, ctx: RequestContext, deps: Deps) -> RequestContext:
    """Who calls: the middleware's context, or the user of an unscoped token (which the
    auth backend leaves to these routes)."""
    if ctx.user_id:
        return ctx
    token = request.headers.get("x-auth-token", "")
    try:
        info = await (await _tokens(deps)).validate(token) if token else None
    except AuthFailed:
        info = None
    if info is None:
        raise _Refused(views.error(401, _NO_TOKEN, deps.settings))
    return RequestContext(request_id=ctx.request_id, global_request_id=ctx.global_request_id,
                          user_id=info.user.id)


async def _subject(request: Request, ctx: RequestContext, deps: Deps,
                   tokens: TokenService) -> tuple[str, TokenInfo]:
    """The ``X-Subject-Token`` and its details, for a caller allowed to see them (an
    admin, or the token's own user)."""
    caller = await _caller(request, ctx, deps)
    subject = request.headers.get("x-subject-token", "")
    try:
        info = await tokens.validate(subject)
    except AuthFailed as exc:
        raise _Refused(views.error(404, f"Could not find token: {exc}",
                                   deps.settings)) from exc
    if not caller.is_admin and caller.user_id != info.user.id:
        raise _Refused(views.error(403, "You are not authorized to perform the requested "
                                        "action: identity:validate_token.", deps.settings))
    return subject, info


@router.get("/identity", include_in_schema=False)
@router.get("/identity/", include_in_schema=False)
@action(PUBLIC)
async def identity_versions(deps: Deps) -> Response:
    return JSONResponse(views.versions(deps.settings), status_code=300)


@router.get("/identity/v3", include_in_schema=False)
@router.get("/identity/v3/", include_in_schema=False)
@action(PUBLIC)
async def identity_v3(deps: Deps) -> Response:
    return JSONResponse(views.version(deps.settings))


@router.post("/identity/v3/auth/tokens")
@request_body(keystone_auth())
@action(PUBLIC)
async def issue_token(request: Request, deps: Deps) -> Response:
    try:
        tokens = await _tokens(deps)
        auth = schemas.auth_request(await _json(request),
                                    source=request.client.host if request.client else None)
        token, info = await tokens.issue(auth)
    except _Refused as refused:
        return refused.response
    except Invalid as exc:
        return views.error(400, str(exc), deps.settings)
    except LoginThrottled as exc:
        return views.error(429, str(exc), deps.settings,
                           headers={"Retry-After": str(exc.retry_after)})
    except AuthFailed as exc:
        return views.error(401, str(exc), deps.settings)
    body = views.token(info, deps.settings, with_catalog="nocatalog" not in request.query_params)
    return JSONResponse(body, status_code=201, headers={"X-Subject-Token": token})


async def _json(request: Request) -> object:
    # The body cap (strato.api.bodylimit) bounds what request.body() buffers.
    try:
        data = json.loads(await request.body())
    except (ValueError, RecursionError):
        # ValueError: bad JSON or bad UTF-8; RecursionError: absurd nesting.
        raise Invalid("The request body is not valid JSON") from None
    return refuse_nul(data)


@router.api_route("/identity/v3/auth/tokens", methods=["GET", "HEAD"])
@action(PUBLIC)
async def validate_token(request: Request, ctx: Context, deps: Deps) -> Response:
    try:
        subject, info = await _subject(request, ctx, deps, await _tokens(deps))
    except _Refused as refused:
        return refused.response
    headers = {"X-Subject-Token": subject}
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers)
    body = views.token(info, deps.settings, with_catalog="nocatalog" not in request.query_params)
    return JSONResponse(body, headers=headers)


@router.delete("/identity/v3/auth/tokens")
@action(PUBLIC)
async def revoke_token(request: Request, ctx: Context, deps: Deps) -> Response:
    try:
        tokens = await _tokens(deps)
        subject, _ = await _subject(request, ctx, deps, tokens)
        await tokens.revoke(subject)
    except _Refused as refused:
        return refused.response
    except AuthFailed as exc:
        return views.error(404, f"Could not find token: {exc}", deps.settings)
    return Response(status_code=204)


@router.get("/identity/v3/auth/catalog")
@action(PUBLIC)
async def auth_catalog(request: Request, ctx: Context, deps: Deps) -> Response:
    try:
        await _caller(request, ctx, deps)
    except _Refused as refused:
        return refused.response
    base = views.identity_url(deps.settings)
    return JSONResponse({"catalog": views.catalog(deps.settings),
                         "links": {"self": f"{base}/v3/auth/catalog",
                                   "previous": None, "next": None}})


@router.get("/identity/v3/auth/projects")
@action(PUBLIC)
async def auth_projects(request: Request, ctx: Context, deps: Deps) -> Response:
    try:
        caller = await _caller(request, ctx, deps)
    except _Refused as refused:
        return refused.response
    projects = await deps.db.identity.projects_of(caller.user_id)
    return JSONResponse(views.projects(projects, deps.settings))
