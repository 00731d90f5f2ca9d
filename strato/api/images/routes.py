"""The Image API (Glance v2 subset): create, upload, download, show, list, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from strato.api.bodies import read_json
from strato.api.deps import Context, Deps
from strato.api.errors import ApiFault
from strato.api.images import schemas, views
from strato.api.paging import parse_page
from strato.domain.ids import ImageId
from strato.domain.images import ImageStatus
from strato.image import service

__all__ = ["router"]

router = APIRouter(prefix="/v2/images")

# Glance's default page size (limit_param_default) and ceiling (api_limit_max).
_DEFAULT_LIMIT = 25
_MAX_LIMIT = 1000


@router.post("")
async def create_image(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """``POST /v2/images``: register a queued image (its data comes with PUT .../file)."""
    image = schemas.image_from_create(await read_json(request), ctx)
    created = await deps.db.images.create(image)
    return JSONResponse(views.image_view(created), status_code=201,
                        headers={"Location": f"/v2/images/{created.id}"})


@router.get("")
async def list_images(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2/images``: the images the caller may see, newest first."""
    params = request.query_params
    page = parse_page(params, max_limit=_MAX_LIMIT)
    limit = page.limit if "limit" in params else _DEFAULT_LIMIT
    images = await service.list_images(deps.db.images, ctx, limit=limit,
                                        marker=ImageId(page.marker) if page.marker else None)
    next_marker = images[-1].id if images and len(images) == limit else None
    return JSONResponse(views.images_view(images, next_marker=next_marker, limit=limit))


@router.get("/{image_id}")
async def show_image(image_id: str, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2/images/{id}``."""
    image = await service.get_image(deps.db.images, ctx, ImageId(image_id))
    return JSONResponse(views.image_view(image))


@router.put("/{image_id}/file")
async def upload_image(image_id: str, request: Request, deps: Deps, ctx: Context) -> Response:
    """``PUT /v2/images/{id}/file``: stream the data in (octet-stream), 204 when stored."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/octet-stream":
        raise ApiFault(415, f"Unsupported Content-Type {content_type or '(none)'!r}: "
                            "upload image data as application/octet-stream.")
    await service.upload_image(deps.db.images, deps.image_store, ctx=ctx,
                               image_id=ImageId(image_id), chunks=_body(request))
    return Response(status_code=204)


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


@router.get("/{image_id}/file")
async def download_image(image_id: str, deps: Deps, ctx: Context) -> Response:
    """``GET /v2/images/{id}/file``: the data (204 when the image has none yet)."""
    image = await service.get_image(deps.db.images, ctx, ImageId(image_id))
    if image.status != ImageStatus.ACTIVE:
        return Response(status_code=204)
    headers = {"Content-MD5": image.checksum or ""}
    if image.size is not None:
        headers["Content-Length"] = str(image.size)
    return StreamingResponse(await deps.image_store.read(image.id), headers=headers,
                             media_type="application/octet-stream")


@router.delete("/{image_id}")
async def delete_image(image_id: str, deps: Deps, ctx: Context) -> Response:
    """``DELETE /v2/images/{id}``: 204; 403 for a protected image."""
    await service.delete_image(deps.db.images, deps.image_store, ctx=ctx,
                               image_id=ImageId(image_id))
    return Response(status_code=204)
