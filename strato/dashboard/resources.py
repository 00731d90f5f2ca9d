"""Images (with the browser upload), flavors, networks, key pairs, and the admins'
hypervisors and services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any
from urllib.parse import quote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from strato.client import ApiError, CloudClient
from strato.dashboard.launch import flavor_fit
from strato.dashboard.render import PREFIX, view
from strato.dashboard.session import Session, form_data, page, redirect

__all__ = ["confirm_image_delete", "confirm_keypair_delete", "confirm_network_delete",
           "create_image", "create_keypair", "create_network", "delete_image",
           "delete_keypair", "delete_network", "flavors_page", "hypervisors_page",
           "images_page", "keypairs_page", "networks_page", "services_page",
           "upload_image"]

DISK_FORMATS = ("qcow2", "raw", "iso", "vmdk", "vdi", "vhd", "vhdx", "ami", "aki", "ari")


def _first(fields: dict[str, list[str]], key: str, default: str = "") -> str:
    return (fields.get(key) or [default])[0].strip()


def _confirm_delete(session: Session, what: str, name: str, path: str,
                    back: str) -> Response:
    """The confirmation page of a delete; the form posts to ``<path>/delete``."""
    return view(session, "confirm.html", title=f"Delete {what}",
                question=f"Delete the {what} {name}?", action_url=f"{PREFIX}{path}/delete",
                button="Delete", danger=True, back_url=f"{PREFIX}{back}")


async def _deleted(call: Awaitable[None], back: str, what: str) -> Response:
    """Run a confirmed delete; back to the list with the outcome."""
    try:
        await call
    except ApiError as exc:
        return redirect(back, flash=f"Delete refused: {exc.message}")
    return redirect(back, flash=f"The {what} was deleted.")


# -- images ----------------------------------------------------------------------------


@page
async def images_page(request: Request, session: Session) -> Response:
    found = await session.client.images()
    found.sort(key=lambda i: str(i.get("name") or ""))
    return view(session, "images.html", images=found, disk_formats=DISK_FORMATS)


def _refusal(exc: ApiError, message: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message or exc.message},
                        status_code=exc.status if exc.status < 500 else 502)


@page
async def create_image(request: Request, session: Session) -> Response:
    """The first half of an upload (a script's request): the image record; the browser
    then sends the bytes to :func:`upload_image`."""
    fields = await form_data(request)
    name = _first(fields, "name")
    if not name:
        return JSONResponse({"error": "An image needs a name."}, status_code=400)
    try:
        image = await session.client.create_image_record(
            name=name, disk_format=_first(fields, "disk_format", "qcow2"),
            container_format="bare", visibility=_first(fields, "visibility", "private"))
    except ApiError as exc:
        return _refusal(exc)
    return JSONResponse({"id": image["id"]}, status_code=201)


@page
async def upload_image(request: Request, session: Session) -> Response:
    """The image's bytes, streamed through to the Image API as they arrive."""
    image_id = request.path_params["image_id"]

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            if chunk:
                yield chunk

    try:
        await session.client.upload_image_data(image_id, chunks())
    except (ApiError, ClientDisconnect) as exc:
        removed = await _drop_unfilled(session.client, image_id)
        message = exc.message if isinstance(exc, ApiError) else "the upload was cut off"
        if removed:
            message += " (the empty image record was removed)"
        if isinstance(exc, ApiError):
            return _refusal(exc, message)
        return JSONResponse({"error": message}, status_code=502)
    return JSONResponse({"id": image_id, "status": "uploaded"})


async def _drop_unfilled(client: CloudClient, image_id: str) -> bool:
    """After a failed upload: delete the image if it is still an empty record (the
    dashboard made it a moment before); one with data stays."""
    try:
        if (await client.image(image_id)).get("status") != "queued":
            return False
        await client.delete_image(image_id)
    except ApiError:
        return False
    return True


@page
async def confirm_image_delete(request: Request, session: Session) -> Response:
    image_id = request.path_params["image_id"]
    image = await session.client.image(image_id)
    return _confirm_delete(session, "image", str(image.get("name") or image_id),
                           f"/images/{quote(image_id, safe='')}", "/images")


@page
async def delete_image(request: Request, session: Session) -> Response:
    return await _deleted(session.client.delete_image(request.path_params["image_id"]),
                          "/images", "image")


# -- flavors ---------------------------------------------------------------------------


@page
async def flavors_page(request: Request, session: Session) -> Response:
    flavors, limits = await asyncio.gather(session.client.flavors(),
                                           session.client.limits())
    flavors.sort(key=lambda f: (f.get("vcpus", 0), f.get("ram", 0), str(f.get("name"))))
    fits = {str(f["id"]): flavor_fit(f, 1, limits) for f in flavors}
    return view(session, "flavors.html", flavors=flavors, fits=fits)


# -- networks --------------------------------------------------------------------------


async def _networks(session: Session, *, form: dict[str, str] | None = None,
                    error: str | None = None, status: int = 200) -> Response:
    """The networks page: each network with its subnets, and the create form."""
    networks, subnets = await asyncio.gather(session.client.networks(),
                                             session.client.subnets())
    by_network: dict[str, list[dict[str, Any]]] = {}
    for subnet in subnets:
        by_network.setdefault(str(subnet.get("network_id")), []).append(subnet)
    networks.sort(key=lambda n: str(n.get("name")))
    return view(session, "networks.html", http_status=status, networks=networks,
                subnets=by_network, form=form or {}, error=error)


@page
async def networks_page(request: Request, session: Session) -> Response:
    return await _networks(session)


async def _make_network(client: CloudClient, form: dict[str, str]) -> str | None:
    """A network and its subnet (as Horizon's form makes them); when the subnet is
    refused the network just made is deleted again. What went wrong, if anything."""
    if not form["name"] or not form["cidr"]:
        return "A network needs a name and its subnet a CIDR (such as 10.0.5.0/24)."
    try:
        network = await client.create_network(name=form["name"])
    except ApiError as exc:
        return f"The network was refused: {exc.message}"
    subnet: dict[str, Any] = {
        "network_id": network["id"], "cidr": form["cidr"],
        "ip_version": 6 if ":" in form["cidr"] else 4,
        "name": form["subnet_name"] or f"{form['name']}-subnet",
        "enable_dhcp": form["enable_dhcp"] in ("1", "on")}
    if form["gateway_ip"]:
        subnet["gateway_ip"] = form["gateway_ip"]
    try:
        await client.create_subnet(**subnet)
    except ApiError as exc:
        error = f"The subnet was refused: {exc.message}"
        try:
            await client.delete_network(str(network["id"]))
        except ApiError as cleanup:
            error += f" (and the network could not be removed: {cleanup.message})"
        return error
    return None


@page
async def create_network(request: Request, session: Session) -> Response:
    fields = await form_data(request)
    form = {k: _first(fields, k)
            for k in ("name", "subnet_name", "cidr", "gateway_ip", "enable_dhcp")}
    error = await _make_network(session.client, form)
    if error is None:
        return redirect("/networks", flash=f"Network {form['name']} created.")
    return await _networks(session, form=form, error=error, status=400)


@page
async def confirm_network_delete(request: Request, session: Session) -> Response:
    network_id = request.path_params["network_id"]
    names = {str(n["id"]): str(n.get("name") or n["id"])
             for n in await session.client.networks()}
    if network_id not in names:
        return view(session, "error.html", http_status=404, title="Not found",
                    status_code=404, message=f"Network {network_id} could not be found.")
    return _confirm_delete(session, "network", f"{names[network_id]} and its subnets",
                           f"/networks/{quote(network_id, safe='')}", "/networks")


@page
async def delete_network(request: Request, session: Session) -> Response:
    return await _deleted(
        session.client.delete_network(request.path_params["network_id"]),
        "/networks", "network")


# -- key pairs -------------------------------------------------------------------------


async def _keypairs(session: Session, *, status: int = 200, error: str | None = None,
                    created: dict[str, Any] | None = None, name: str = "",
                    public_key: str = "") -> Response:
    return view(session, "keypairs.html", http_status=status,
                keypairs=await session.client.keypairs(), error=error, created=created,
                name=name, public_key=public_key)


@page
async def keypairs_page(request: Request, session: Session) -> Response:
    return await _keypairs(session)


@page
async def create_keypair(request: Request, session: Session) -> Response:
    fields = await form_data(request)
    name, public_key = _first(fields, "name"), _first(fields, "public_key")
    if not name:
        return await _keypairs(session, status=400, error="A key pair needs a name.",
                               public_key=public_key)
    try:
        created = await session.client.create_keypair(name, public_key or None)
    except ApiError as exc:
        return await _keypairs(session, status=400, error=exc.message, name=name,
                               public_key=public_key)
    return await _keypairs(session, status=201, created=created)


@page
async def confirm_keypair_delete(request: Request, session: Session) -> Response:
    name = request.path_params["name"]
    return _confirm_delete(session, "key pair", name, f"/keypairs/{quote(name, safe='')}",
                           "/keypairs")


@page
async def delete_keypair(request: Request, session: Session) -> Response:
    return await _deleted(session.client.delete_keypair(request.path_params["name"]),
                          "/keypairs", "key pair")


# -- admin -----------------------------------------------------------------------------


@page
async def hypervisors_page(request: Request, session: Session) -> Response:
    found = await session.client.hypervisors()
    found.sort(key=lambda h: str(h.get("hypervisor_hostname")))
    return view(session, "hypervisors.html", hypervisors=found)


@page
async def services_page(request: Request, session: Session) -> Response:
    found = await session.client.services()
    found.sort(key=lambda s: (str(s.get("binary")), str(s.get("host"))))
    return view(session, "services.html", services=found)
