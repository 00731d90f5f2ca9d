"""The Image API (a Glance v2 subset): images, their data, tags, actions and members.

The routes here are relative to the image endpoint; ``api_router`` serves them under
``/image`` (as DevStack serves Glance), with Glance's version document at ``/image/``,
because the API root ``/`` is the Compute API's. ``router`` alone (the same routes
without the prefix, so ``/v2/images`` too) is kept for older clients of strato.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from strato.api.bodies import read_json
from strato.api.deps import Context, Deps
from strato.api.errors import ApiFault
from strato.api.formats import base_url
from strato.api.images import discovery, schemas, views
from strato.api.images.members import router as members_router
from strato.api.images.ranges import parse_range
from strato.api.openapi import BINARY, bodiless, glance_image_create, glance_patch, request_body
from strato.api.policy import action
from strato.domain.ids import ImageId
from strato.image import service
from strato.image.upload import ImageTooLarge, UploadLimits
from strato.image.upload import upload_image as store_upload

__all__ = ["api_router", "router"]

router = APIRouter()
_images = APIRouter(prefix="/v2/images")


@_images.post("")
@request_body(glance_image_create())
@action("image:add_image")
async def create_image(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """``POST /v2/images``: register a queued image (its data comes with PUT .../file)."""
    image_id, changes = schemas.ops_from_create(await read_json(request))
    created = await service.create_image(deps.db.images, ctx, image_id=image_id,
                                         changes=changes)
    location = f"{base_url(request, deps.settings)}/image/v2/images/{created.id}"
    return JSONResponse(views.image_view(created), status_code=201,
                        headers={"Location": location})


@_images.get("")
@action("image:get_images")
async def list_images(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2/images``: the images the caller may list, filtered, sorted, paged."""
    query = schemas.query_from_params(request.query_params)
    images = await service.list_images(deps.db.images, ctx, query)
    full = bool(images) and len(images) == query.limit
    return JSONResponse(views.images_view(images, params=request.query_params,
                                          next_marker=images[-1].id if full else None))


@_images.get("/{image_id}")
@action("image:get_image")
async def show_image(image_id: str, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2/images/{id}``."""
    image = await service.get_image(deps.db.images, ctx, ImageId(image_id))
    return JSONResponse(views.image_view(image))


@_images.patch("/{image_id}")
@request_body(glance_patch(10), media_type="application/openstack-images-v2.1-json-patch")
@request_body(glance_patch(4), media_type="application/openstack-images-v2.0-json-patch")
@action("image:modify_image")
async def update_image(image_id: str, request: Request, deps: Deps,
                       ctx: Context) -> JSONResponse:
    """``PATCH /v2/images/{id}``: a JSON patch (media type
    ``application/openstack-images-v2.1-json-patch``); 200 with the updated image."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in schemas.PATCH_MEDIA_TYPES:
        schemas.ops_from_patch(content_type, None)  # raises the 415
    changes = schemas.ops_from_patch(content_type, await read_json(request))
    image = await service.update_image(deps.db.images, ctx, ImageId(image_id), changes)
    return JSONResponse(views.image_view(image))


@_images.delete("/{image_id}")
@action("image:delete_image")
async def delete_image(image_id: str, deps: Deps, ctx: Context) -> Response:
    """``DELETE /v2/images/{id}``: 204; 403 for a protected image. Its data goes too."""
    await service.delete_image(deps.db.images, deps.image_store, ctx=ctx,
                               image_id=ImageId(image_id))
    return Response(status_code=204)


@_images.put("/{image_id}/file")
@request_body(BINARY, media_type="application/octet-stream")
@action("image:upload_image")
async def upload_image(image_id: str, request: Request, deps: Deps, ctx: Context) -> Response:
    """``PUT /v2/images/{id}/file``: stream the data in (``application/octet-stream``,
    with a ``Content-Length`` or chunked); 204 once stored and checked; 413 past the
    image size cap or the owner's image storage quota (the image stays queued)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/octet-stream":
        raise ApiFault(415, f"Unsupported Content-Type {content_type or '(none)'!r}: "
                            "upload image data as application/octet-stream.")
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    declared = None if chunked else schemas.upload_size(request.headers.get("content-length"))
    image = deps.settings.image
    limits = UploadLimits(size_cap=image.image_size_cap, size_total_mib=image.size_total_mib)
    try:
        await store_upload(deps.db.images, deps.image_store, ctx=ctx,
                           image_id=ImageId(image_id), chunks=_body(request),
                           declared_size=declared, limits=limits)
    except ImageTooLarge as exc:
        raise ApiFault(413, exc.message) from None  # Glance's HTTPRequestEntityTooLarge
    return Response(status_code=204)


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


@_images.get("/{image_id}/file")
@action("image:download_image")
async def download_image(image_id: str, request: Request, deps: Deps,
                         ctx: Context) -> Response:
    """``GET /v2/images/{id}/file``: the data; 204 while the image has none; one
    ``Range`` gives a 206 (416 when it cannot be satisfied); 403 for a deactivated
    image (except for admins)."""
    image = await service.readable_data(deps.db.images, ctx, ImageId(image_id))
    if image is None:
        return Response(status_code=204)
    size = image.size or 0
    span = parse_range(request.headers.get("range"), size)
    headers = {"Accept-Ranges": "bytes"}
    if span is None:
        headers |= {"Content-Length": str(size), "Content-MD5": image.checksum or ""}
        chunks = await deps.image_store.read(image.id)
        return StreamingResponse(chunks, headers=headers, media_type="application/octet-stream")
    headers |= {"Content-Length": str(span.length), "Content-Range": span.content_range}
    chunks = await deps.image_store.read(image.id, offset=span.start, length=span.length)
    return StreamingResponse(chunks, status_code=206, headers=headers,
                             media_type="application/octet-stream")


@_images.post("/{image_id}/actions/deactivate")
@bodiless
@action("image:deactivate")
async def deactivate_image(image_id: str, deps: Deps, ctx: Context) -> Response:
    """``POST /v2/images/{id}/actions/deactivate``: 204; owner or admin."""
    await service.deactivate_image(deps.db.images, ctx, ImageId(image_id))
    return Response(status_code=204)


@_images.post("/{image_id}/actions/reactivate")
@bodiless
@action("image:reactivate")
async def reactivate_image(image_id: str, deps: Deps, ctx: Context) -> Response:
    """``POST /v2/images/{id}/actions/reactivate``: 204; owner or admin."""
    await service.reactivate_image(deps.db.images, ctx, ImageId(image_id))
    return Response(status_code=204)


@_images.put("/{image_id}/tags/{tag}")
@bodiless
@action("image:modify_image")
async def add_tag(image_id: str, tag: str, deps: Deps, ctx: Context) -> Response:
    """``PUT /v2/images/{id}/tags/{tag}``: 204 (also when the image had it already)."""
    await service.tag_image(deps.db.images, ctx, ImageId(image_id), tag)
    return Response(status_code=204)


@_images.delete("/{image_id}/tags/{tag}")
@action("image:modify_image")
async def delete_tag(image_id: str, tag: str, deps: Deps, ctx: Context) -> Response:
    """``DELETE /v2/images/{id}/tags/{tag}``: 204; 404 if the image lacks the tag."""
    await service.untag_image(deps.db.images, ctx, ImageId(image_id), tag)
    return Response(status_code=204)


router.include_router(_images)
router.include_router(members_router)
router.include_router(discovery.schemas_router)

api_router = APIRouter()
api_router.include_router(discovery.versions_router)  # /image, /image/, /image/versions
api_router.include_router(router, prefix="/image")
