"""The dashboard's pages: a Starlette application the API mounts at ``/dashboard``.

Every page talks to strato through :class:`strato.client.CloudClient` with the logged-in
user's token (in-process, over the API application itself), so it shows exactly what the
API shows that user, and every refusal is the API's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from strato.client import ApiError, CloudClient
from strato.client.auth import scoped_token, unscoped_token
from strato.dashboard.launch import STEPS, LaunchForm, flavor_fit, step_of_error
from strato.dashboard.session import (
    PREFIX,
    PROJECT_COOKIE,
    SESSION_COOKIE,
    Dashboard,
    Session,
    clear_cookie,
    csrf_ok,
    csrf_value,
    ensure_csrf,
    flash_of,
    form_data,
    page,
    redirect,
    set_cookie,
)
from strato.dashboard.timeline import build_timeline, parse_time

__all__ = ["create_dashboard"]

PAGE_SIZE = 50
STATUSES = ("ACTIVE", "BUILD", "ERROR", "SHUTOFF", "REBOOT", "HARD_REBOOT", "PAUSED",
            "SUSPENDED", "SOFT_DELETED")
# Statuses that change by themselves: their rows (and detail pages) refresh live.
TRANSITIONAL = frozenset({"BUILD", "REBOOT", "HARD_REBOOT", "DELETED", "MIGRATING",
                          "RESIZE", "REBUILD"})
# Row actions: (action, button label, the API's action body or None for delete,
# statuses it applies to, whether it destroys something)
ACTIONS: dict[str, tuple[str, str | None, Any, frozenset[str]]] = {
    "reboot": ("Reboot", "reboot", {"type": "SOFT"}, frozenset({"ACTIVE"})),
    "stop": ("Stop", "os-stop", None, frozenset({"ACTIVE", "ERROR"})),
    "start": ("Start", "os-start", None, frozenset({"SHUTOFF"})),
    "delete": ("Delete", None, None, frozenset()),  # every status
}
_STATIC = Path(__file__).parent / "static"

_env = Environment(loader=PackageLoader("strato.dashboard", "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True),
                   trim_blocks=True, lstrip_blocks=True, enable_async=False)


def _ago(value: str | None) -> str:
    when = parse_time(value)
    if when is None:
        return ""
    seconds = int((datetime.now(UTC) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{max(seconds, 0)} s ago"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _size(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


_env.filters["ago"] = _ago
_env.filters["seconds"] = _seconds
_env.filters["size"] = _size
_env.globals["prefix"] = PREFIX
_env.globals["transitional"] = TRANSITIONAL
_env.globals["actions"] = ACTIONS


def render(template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_env.get_template(template).render(prefix=PREFIX, **context),
                        status_code=status)


def _view(session: Session, template: str, http_status: int = 200,
          **context: Any) -> HTMLResponse:
    return render(template, {**session.context(), **context}, status=http_status)


def _api_error_page(session: Session, exc: ApiError, *, title: str) -> HTMLResponse:
    status = exc.status if 400 <= exc.status < 500 else 502
    return _view(session, "error.html", http_status=status, title=title, status_code=exc.status,
                 message=exc.message)


def _addresses(server: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for network, addresses in (server.get("addresses") or {}).items():
        for address in addresses:
            found.append((network, str(address.get("addr", ""))))
    return found


def _status(server: dict[str, Any]) -> str:
    return str(server.get("status", ""))


_env.globals["addresses_of"] = _addresses


# -- login, logout, projects ---------------------------------------------------------


def _safe_next(value: str | None) -> str:
    """Only a dashboard path (no scheme, no host, no ``//``): not an open redirect."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") \
            and "\\" not in value and "://" not in value:
        return value
    return PREFIX + "/instances"


async def login_page(request: Request) -> Response:
    csrf = csrf_value(request)
    response = render("login.html", {"csrf": csrf, "next": _safe_next(
        request.query_params.get("next")), "error": None, "username": "",
        "flash": flash_of(request)})
    ensure_csrf(request, response, csrf)
    return response


async def login(request: Request) -> Response:
    dashboard: Dashboard = request.app.state.dashboard
    fields = await form_data(request)
    csrf = csrf_value(request)
    nxt = _safe_next((fields.get("next") or [""])[0])
    username = (fields.get("username") or [""])[0].strip()
    password = (fields.get("password") or [""])[0]

    def refuse(message: str, status: int) -> Response:
        response = render("login.html", {"csrf": csrf, "next": nxt, "error": message,
                                         "username": username, "flash": None},
                          status=status)
        ensure_csrf(request, response, csrf)
        return response

    if not csrf_ok(request, (fields.get("csrf") or [""])[0]):
        return refuse("The login form was stale; try again.", 403)
    if not username or not password:
        return refuse("Enter your user name and password.", 400)
    kw: dict[str, Any] = {"transport": dashboard.transport}
    try:
        unscoped = await unscoped_token(dashboard.base_url, user=username,
                                        password=password, **kw)
        async with dashboard.client(unscoped) as client:
            projects = await client.my_projects()
            if not projects:
                await client.revoke_token(unscoped)
                return refuse("You are not a member of any project.", 403)
            remembered = request.cookies.get(PROJECT_COOKIE)
            chosen = next((p for p in projects if p["id"] == remembered),
                          min(projects, key=lambda p: str(p.get("name"))))
            # The unscoped token is not revoked: the scoped one shares its audit chain
            # (revoking either ends both); it never leaves the server and expires.
            token = await scoped_token(dashboard.base_url, token=unscoped,
                                       project_id=chosen["id"], **kw)
    except ApiError as exc:
        if exc.status == 401:
            return refuse("The user name or password is wrong.", 401)
        return refuse(exc.message, exc.status if exc.status < 500 else 502)
    response = RedirectResponse(nxt, status_code=303)
    set_cookie(response, SESSION_COOKIE, token)
    set_cookie(response, PROJECT_COOKIE, chosen["id"], max_age=365 * 86400)
    return response


@page
async def logout(request: Request, session: Session) -> Response:
    try:
        await session.client.revoke_token(session.token)
    except ApiError:
        pass  # already gone: the session ends all the same
    response = redirect("/login", flash="You have logged out.")
    clear_cookie(response, SESSION_COOKIE)
    return response


@page
async def switch_project(request: Request, session: Session) -> Response:
    dashboard: Dashboard = request.app.state.dashboard
    project_id = ((await form_data(request)).get("project") or [""])[0]
    if project_id not in {p["id"] for p in session.projects}:
        return redirect("/instances", flash="You are not a member of that project.")
    try:
        token = await scoped_token(dashboard.base_url, token=session.token,
                                   project_id=project_id, transport=dashboard.transport)
    except ApiError as exc:
        return redirect("/instances", flash=f"Could not switch projects: {exc.message}")
    # The old token stays valid until it expires: revoking it would end the new one
    # too (one audit chain); logging out revokes the chain.
    name = next(str(p.get("name")) for p in session.projects if p["id"] == project_id)
    response = redirect("/instances", flash=f"Now working in project {name}.")
    set_cookie(response, SESSION_COOKIE, token)
    set_cookie(response, PROJECT_COOKIE, project_id, max_age=365 * 86400)
    return response


async def home(request: Request) -> Response:
    return RedirectResponse(PREFIX + "/instances", status_code=303)


# -- instances -----------------------------------------------------------------------


async def _names(client: CloudClient) -> tuple[dict[str, str], dict[str, str]]:
    flavors, images = await asyncio.gather(client.flavors(), client.images())
    return ({str(f["id"]): str(f["name"]) for f in flavors},
            {str(i["id"]): str(i.get("name") or i["id"]) for i in images})


def _row_context(server: dict[str, Any], flavors: dict[str, str],
                 images: dict[str, str]) -> dict[str, Any]:
    flavor_id = str((server.get("flavor") or {}).get("id", ""))
    image = server.get("image") or {}
    image_id = str(image.get("id", "")) if isinstance(image, dict) else ""
    return {"s": server, "flavor_name": flavors.get(flavor_id, flavor_id),
            "image_name": images.get(image_id, image_id)}


@page
async def instances(request: Request, session: Session) -> Response:
    status = request.query_params.get("status", "").upper()
    status = status if status in STATUSES else ""
    marker = request.query_params.get("marker") or None
    try:
        listing, (flavors, images) = await asyncio.gather(
            session.client.servers_page(limit=PAGE_SIZE, marker=marker,
                                        status=status or None),
            _names(session.client))
    except ApiError as exc:
        return _api_error_page(session, exc, title="Instances")
    rows = [_row_context(s, flavors, images) for s in listing.items]
    query = {"status": status} if status else {}
    next_url = (f"{PREFIX}/instances?{urlencode({**query, 'marker': listing.next_marker})}"
                if listing.next_marker else None)
    first_url = f"{PREFIX}/instances?{urlencode(query)}" if marker else None
    return _view(session, "instances.html", rows=rows, status_filter=status,
                 statuses=STATUSES,
                 next_url=next_url, first_url=first_url)


@page
async def instance_rows(request: Request, session: Session) -> Response:
    """The table rows of the given instances as they are now (live updates)."""
    ids = request.query_params.getlist("id")[:PAGE_SIZE]
    flavors, images = await _names(session.client)

    async def one(server_id: str) -> dict[str, Any] | None:
        try:
            return await session.client.server(server_id)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    servers = await asyncio.gather(*(one(i) for i in ids))
    rows = [_row_context(s, flavors, images) for s in servers if s is not None]
    return _view(session, "_rows.html", rows=rows)


async def _create_action(client: CloudClient, server_id: str) -> dict[str, Any] | None:
    actions = await client.instance_actions(server_id)
    creates = [a for a in actions if a.get("action") == "create"]
    if not creates:
        return None
    return await client.instance_action(server_id, str(creates[0]["request_id"]))


async def _detail_context(session: Session, server_id: str) -> dict[str, Any]:
    server, action, (flavors, images) = await asyncio.gather(
        session.client.server(server_id), _create_action(session.client, server_id),
        _names(session.client))
    timeline = build_timeline(action) if action else None
    return {**_row_context(server, flavors, images), "timeline": timeline,
            "action": action}


@page
async def instance_detail(request: Request, session: Session) -> Response:
    server_id = request.path_params["server_id"]
    try:
        context = await _detail_context(session, server_id)
    except ApiError as exc:
        return _api_error_page(session, exc, title="Instance")
    return _view(session, "instance.html", **context)


@page
async def instance_live(request: Request, session: Session) -> Response:
    """The parts of the detail page that change while a build runs."""
    try:
        context = await _detail_context(session, request.path_params["server_id"])
    except ApiError as exc:
        return _api_error_page(session, exc, title="Instance")
    return _view(session, "_instance_live.html", **context)


@page
async def instance_console(request: Request, session: Session) -> Response:
    server_id = request.path_params["server_id"]
    try:
        length = int(request.query_params.get("length", "200"))
    except ValueError:
        length = 200
    length = min(max(length, 10), 10000)
    try:
        server = await session.client.server(server_id)
        output = await session.client.console_output(server_id, length)
    except ApiError as exc:
        if exc.status == 409:
            return _view(session, "console.html", s=server, output=None,
                         message=exc.message, length=length)
        return _api_error_page(session, exc, title="Console log")
    return _view(session, "console.html", s=server, output=output, message=None,
                 length=length)


@page
async def confirm_action(request: Request, session: Session) -> Response:
    server_id, name = request.path_params["server_id"], request.path_params["action"]
    if name not in ACTIONS:
        return _view(session, "error.html", http_status=404, title="Unknown action",
                     status_code=404, message=f"There is no action {name!r}.")
    try:
        server = await session.client.server(server_id)
    except ApiError as exc:
        return _api_error_page(session, exc, title="Instance")
    return _view(session, "confirm.html", title=f"{ACTIONS[name][0]} instance",
                 question=f"{ACTIONS[name][0]} the instance {server.get('name')}?",
                 action_url=f"{PREFIX}/instances/{quote(server_id)}/{name}",
                 button=ACTIONS[name][0], danger=name in ("delete", "stop"),
                 back_url=f"{PREFIX}/instances/{quote(server_id)}")


@page
async def run_action(request: Request, session: Session) -> Response:
    server_id, name = request.path_params["server_id"], request.path_params["action"]
    if name not in ACTIONS:
        return redirect("/instances", flash=f"There is no action {name!r}.")
    label, api_action, args, _ = ACTIONS[name]
    try:
        server = await session.client.server(server_id)
        if api_action is None:
            await session.client.delete_server(server_id)
        else:
            await session.client.server_action(server_id, api_action, args)
    except ApiError as exc:
        return redirect(f"/instances/{quote(server_id)}",
                        flash=f"{label} refused: {exc.message}")
    done = {"delete": "is being deleted", "reboot": "is rebooting",
            "stop": "is stopping", "start": "is starting"}[name]
    return redirect("/instances", flash=f"Instance {server.get('name')} {done}.")


# -- the launch wizard -----------------------------------------------------------------


def _index(step: str) -> int:
    return [k for k, _ in STEPS].index(step)


async def _step_options(client: CloudClient, step: str) -> dict[str, Any]:
    if step == "details":
        try:
            zones = [z["zoneName"] for z in await client.availability_zones()
                     if (z.get("zoneState") or {}).get("available", True)]
        except ApiError:
            zones = []
        return {"zones": zones}
    if step == "source":
        return {"images": [i for i in await client.images() if i.get("status") == "active"]}
    if step == "flavor":
        flavors, limits = await asyncio.gather(client.flavors(), client.limits())
        return {"flavors": sorted(flavors, key=lambda f: (f.get("vcpus", 0), f.get("ram", 0))),
                "limits": limits}
    if step == "networks":
        networks, subnets = await asyncio.gather(client.networks(), client.subnets())
        return {"networks": networks, "subnets": subnets}
    if step == "access":
        groups, pairs = await asyncio.gather(client.security_groups(), client.keypairs())
        return {"groups": groups, "keypairs": pairs}
    return {}


async def _validate(client: CloudClient, form: LaunchForm, step: str) -> dict[str, str]:
    images = flavors = limits = None
    if step in ("source", "flavor") and form.image:
        images = {str(i["id"]): i for i in await client.images()
                  if i.get("status") == "active"}
    if step == "flavor":
        flavors = {str(f["id"]): f for f in await client.flavors()}
        limits = await client.limits()
    return form.validate(step, images=images, flavors=flavors, limits=limits)


async def _wizard(session: Session, form: LaunchForm, step: str,
                  errors: dict[str, str], status: int = 200) -> HTMLResponse:
    options = await _step_options(session.client, step)
    count = form.count_value() or 1
    if step == "flavor":
        options["fits"] = {str(f["id"]): flavor_fit(f, count, options["limits"])
                           for f in options["flavors"]}
    return _view(session, "launch.html", http_status=status, form=form, step=step,
                 steps=STEPS, index=_index(step), errors=errors,
                 hidden=form.hidden(step), count=count, **options)


@page
async def launch(request: Request, session: Session) -> Response:
    try:
        if request.method == "GET":
            return await _wizard(session, LaunchForm(), "details", {})
        fields = await form_data(request)
        form = LaunchForm.from_fields(fields)
        keys = [k for k, _ in STEPS]
        step = (fields.get("step") or ["details"])[0]
        step = step if step in keys else "details"
        go = (fields.get("go") or ["default"])[0]
        if go == "default":  # Enter in a field: the step's main button
            go = "launch" if step == keys[-1] else "next"
        if go == "back":
            return await _wizard(session, form, keys[max(_index(step) - 1, 0)], {})
        if go.startswith("step-") and go[5:] in keys and _index(go[5:]) < _index(step):
            return await _wizard(session, form, go[5:], {})
        errors = await _validate(session.client, form, step)
        if errors:
            return await _wizard(session, form, step, errors, status=400)
        if go != "launch" or step != keys[-1]:
            if go.startswith("step-") and go[5:] in keys:
                target = go[5:]
                # Going forward past steps never seen stops at the first unseen one.
                for key in keys[_index(step) + 1:_index(target)]:
                    if key not in form.seen:
                        target = key
                        break
                return await _wizard(session, form, target, {})
            return await _wizard(session, form, keys[min(_index(step) + 1, len(keys) - 1)],
                                 {})
        for key in keys:  # every step once more: the choices may have gone meanwhile
            errors = await _validate(session.client, form, key)
            if errors:
                return await _wizard(session, form, key, errors, status=400)
        try:
            created = await session.client.create_servers(form.body())
        except ApiError as exc:
            where = step_of_error(exc.message)
            field = {"details": "name", "source": "image", "flavor": "flavor",
                     "networks": "networks", "access": "security_groups",
                     "configuration": "user_data"}[where]
            return await _wizard(session, form, where, {field: exc.message,
                                                        "_api": exc.message},
                                 status=exc.status if exc.status < 500 else 502)
    except ApiError as exc:
        return _api_error_page(session, exc, title="Launch instance")
    count = form.count_value() or 1
    what = (f"instance {form.name}" if count == 1
            else f"{count} instances named {form.name}-1 … {form.name}-{count}")
    target = (f"/instances/{quote(str(created['id']))}" if count == 1 and "id" in created
              else "/instances")
    return redirect(target, flash=f"Launching {what}.")


# -- images ----------------------------------------------------------------------------

DISK_FORMATS = ("qcow2", "raw", "iso", "vmdk", "vdi", "vhd", "vhdx", "ami", "aki", "ari")


@page
async def images_page(request: Request, session: Session) -> Response:
    try:
        found = await session.client.images()
    except ApiError as exc:
        return _api_error_page(session, exc, title="Images")
    found.sort(key=lambda i: str(i.get("name") or ""))
    return _view(session, "images.html", images=found, disk_formats=DISK_FORMATS)


@page
async def create_image(request: Request, session: Session) -> Response:
    """The first half of an upload (a script's request): the image record; the browser
    then sends the bytes to :func:`upload_image`."""
    fields = await form_data(request)

    def one(key: str, default: str = "") -> str:
        return (fields.get(key) or [default])[0].strip()

    name = one("name")
    if not name:
        return JSONResponse({"error": "An image needs a name."}, status_code=400)
    body: dict[str, Any] = {"name": name, "disk_format": one("disk_format", "qcow2"),
                            "container_format": "bare",
                            "visibility": one("visibility", "private")}
    try:
        image = await session.client.create_image_record(**body)
    except ApiError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status
                            if exc.status < 500 else 502)
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
        status = exc.status if isinstance(exc, ApiError) and exc.status < 500 else 502
        return JSONResponse({"error": message}, status_code=status)
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
    try:
        image = await session.client.image(image_id)
    except ApiError as exc:
        return _api_error_page(session, exc, title="Image")
    return _view(session, "confirm.html", title="Delete image",
                 question=f"Delete the image {image.get('name') or image_id}?",
                 action_url=f"{PREFIX}/images/{quote(image_id)}/delete", button="Delete",
                 danger=True, back_url=f"{PREFIX}/images")


@page
async def delete_image(request: Request, session: Session) -> Response:
    try:
        await session.client.delete_image(request.path_params["image_id"])
    except ApiError as exc:
        return redirect("/images", flash=f"Delete refused: {exc.message}")
    return redirect("/images", flash="The image was deleted.")


# -- flavors, networks, key pairs ------------------------------------------------------


@page
async def flavors_page(request: Request, session: Session) -> Response:
    try:
        flavors, limits = await asyncio.gather(session.client.flavors(),
                                               session.client.limits())
    except ApiError as exc:
        return _api_error_page(session, exc, title="Flavors")
    flavors.sort(key=lambda f: (f.get("vcpus", 0), f.get("ram", 0), str(f.get("name"))))
    fits = {str(f["id"]): flavor_fit(f, 1, limits) for f in flavors}
    return _view(session, "flavors.html", flavors=flavors, fits=fits)


@page
async def networks_page(request: Request, session: Session) -> Response:
    try:
        networks, subnets = await asyncio.gather(session.client.networks(),
                                                 session.client.subnets())
    except ApiError as exc:
        return _api_error_page(session, exc, title="Networks")
    by_network: dict[str, list[dict[str, Any]]] = {}
    for subnet in subnets:
        by_network.setdefault(str(subnet.get("network_id")), []).append(subnet)
    networks.sort(key=lambda n: str(n.get("name")))
    return _view(session, "networks.html", networks=networks, subnets=by_network,
                 form={}, error=None)


@page
async def create_network(request: Request, session: Session) -> Response:
    """A network and its subnet in one form (as Horizon's); when the subnet is refused
    the network just made is deleted again: nothing is left half-made."""
    fields = await form_data(request)
    form = {k: (fields.get(k) or [""])[0].strip()
            for k in ("name", "subnet_name", "cidr", "gateway_ip", "enable_dhcp")}
    error = None
    if not form["name"] or not form["cidr"]:
        error = "A network needs a name and its subnet a CIDR (such as 10.0.5.0/24)."
    else:
        try:
            network = await session.client.create_network(name=form["name"])
        except ApiError as exc:
            error = f"The network was refused: {exc.message}"
        else:
            subnet: dict[str, Any] = {
                "network_id": network["id"], "cidr": form["cidr"], "ip_version": 4,
                "name": form["subnet_name"] or f"{form['name']}-subnet",
                "enable_dhcp": form["enable_dhcp"] in ("1", "on")}
            if form["cidr"] and ":" in form["cidr"]:
                subnet["ip_version"] = 6
            if form["gateway_ip"]:
                subnet["gateway_ip"] = form["gateway_ip"]
            try:
                await session.client.create_subnet(**subnet)
            except ApiError as exc:
                error = f"The subnet was refused: {exc.message}"
                try:
                    await session.client.delete_network(str(network["id"]))
                except ApiError as cleanup:
                    error += f" (and the network could not be removed: {cleanup.message})"
    if error is None:
        return redirect("/networks", flash=f"Network {form['name']} created.")
    try:
        networks, subnets = await asyncio.gather(session.client.networks(),
                                                 session.client.subnets())
    except ApiError as exc:
        return _api_error_page(session, exc, title="Networks")
    by_network: dict[str, list[dict[str, Any]]] = {}
    for sn in subnets:
        by_network.setdefault(str(sn.get("network_id")), []).append(sn)
    return _view(session, "networks.html", http_status=400, networks=networks,
                 subnets=by_network, form=form, error=error)


@page
async def confirm_network_delete(request: Request, session: Session) -> Response:
    network_id = request.path_params["network_id"]
    names = {str(n["id"]): str(n.get("name") or n["id"])
             for n in await session.client.networks()}
    if network_id not in names:
        return _view(session, "error.html", http_status=404, title="Network",
                     status_code=404, message=f"Network {network_id} could not be found.")
    return _view(session, "confirm.html", title="Delete network",
                 question=f"Delete the network {names[network_id]} and its subnets?",
                 action_url=f"{PREFIX}/networks/{quote(network_id, safe='')}/delete",
                 button="Delete", danger=True, back_url=f"{PREFIX}/networks")


@page
async def delete_network(request: Request, session: Session) -> Response:
    try:
        await session.client.delete_network(request.path_params["network_id"])
    except ApiError as exc:
        return redirect("/networks", flash=f"Delete refused: {exc.message}")
    return redirect("/networks", flash="The network was deleted.")


@page
async def keypairs_page(request: Request, session: Session) -> Response:
    try:
        pairs = await session.client.keypairs()
    except ApiError as exc:
        return _api_error_page(session, exc, title="Key pairs")
    return _view(session, "keypairs.html", keypairs=pairs, error=None, created=None,
                 name="", public_key="")


@page
async def create_keypair(request: Request, session: Session) -> Response:
    fields = await form_data(request)
    name = (fields.get("name") or [""])[0].strip()
    public_key = (fields.get("public_key") or [""])[0].strip() or None
    created, error = None, None
    if not name:
        error = "A key pair needs a name."
    else:
        try:
            created = await session.client.create_keypair(name, public_key)
        except ApiError as exc:
            error = exc.message
    try:
        pairs = await session.client.keypairs()
    except ApiError as exc:
        return _api_error_page(session, exc, title="Key pairs")
    return _view(session, "keypairs.html", http_status=400 if error else 201, keypairs=pairs,
                 error=error, created=created, name=name if error else "",
                 public_key=(public_key or "") if error else "")


@page
async def confirm_keypair_delete(request: Request, session: Session) -> Response:
    name = request.path_params["name"]
    return _view(session, "confirm.html", title="Delete key pair",
                 question=f"Delete the key pair {name}?",
                 action_url=f"{PREFIX}/keypairs/{quote(name, safe='')}/delete",
                 button="Delete", danger=True, back_url=f"{PREFIX}/keypairs")


@page
async def delete_keypair(request: Request, session: Session) -> Response:
    try:
        await session.client.delete_keypair(request.path_params["name"])
    except ApiError as exc:
        return redirect("/keypairs", flash=f"Delete refused: {exc.message}")
    return redirect("/keypairs", flash="The key pair was deleted.")


# -- admin -----------------------------------------------------------------------------


@page
async def hypervisors_page(request: Request, session: Session) -> Response:
    try:
        found = await session.client.hypervisors()
    except ApiError as exc:
        return _api_error_page(session, exc, title="Hypervisors")
    found.sort(key=lambda h: str(h.get("hypervisor_hostname")))
    return _view(session, "hypervisors.html", hypervisors=found)


@page
async def services_page(request: Request, session: Session) -> Response:
    try:
        found = await session.client.services()
    except ApiError as exc:
        return _api_error_page(session, exc, title="Services")
    found.sort(key=lambda s: (str(s.get("binary")), str(s.get("host"))))
    return _view(session, "services.html", services=found)


def create_dashboard(dashboard: Dashboard) -> Starlette:
    """The dashboard application (mount it at :data:`PREFIX`)."""
    sid = "/instances/{server_id}"
    routes = [
        Route("/", home),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/project", switch_project, methods=["POST"]),
        Route("/instances", instances),
        Route("/instances/rows", instance_rows),
        Route(sid, instance_detail),
        Route(sid + "/live", instance_live),
        Route(sid + "/console", instance_console),
        Route(sid + "/confirm/{action}", confirm_action),
        Route(sid + "/{action}", run_action, methods=["POST"]),
        Route("/launch", launch, methods=["GET", "POST"]),
        Route("/images", images_page),
        Route("/images", create_image, methods=["POST"]),
        Route("/images/{image_id}/file", upload_image, methods=["PUT"]),
        Route("/images/{image_id}/confirm/delete", confirm_image_delete),
        Route("/images/{image_id}/delete", delete_image, methods=["POST"]),
        Route("/flavors", flavors_page),
        Route("/networks", networks_page),
        Route("/networks", create_network, methods=["POST"]),
        Route("/networks/{network_id}/confirm/delete", confirm_network_delete),
        Route("/networks/{network_id}/delete", delete_network, methods=["POST"]),
        Route("/keypairs", keypairs_page),
        Route("/keypairs", create_keypair, methods=["POST"]),
        Route("/keypairs/{name}/confirm/delete", confirm_keypair_delete),
        Route("/keypairs/{name}/delete", delete_keypair, methods=["POST"]),
        Route("/admin/hypervisors", hypervisors_page),
        Route("/admin/services", services_page),
        Mount("/static", StaticFiles(directory=_STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={ApiError: _api_refused})
    app.state.dashboard = dashboard
    return app


async def _api_refused(request: Request, exc: Exception) -> Response:
    """An API refusal no page handled itself: its status (a 5xx as 502) and words."""
    assert isinstance(exc, ApiError)
    status = exc.status if 400 <= exc.status < 500 else 502
    return render("error.html", {"session": None, "csrf": "", "flash": None,
                                 "title": "The API refused", "status_code": exc.status,
                                 "message": exc.message}, status=status)


def in_process(api: Any) -> Dashboard:
    """A :class:`Dashboard` that reaches ``api`` (the API's ASGI app) without a socket."""
    return Dashboard(base_url="http://strato.internal",
                     transport=httpx.ASGITransport(app=api))
