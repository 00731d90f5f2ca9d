"""Instances: the paged list with live rows, the detail page with its build timeline,
the console log, the confirmed actions, and the Launch Instance wizard."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from strato.client import ApiError, CloudClient
from strato.dashboard.launch import STEPS, LaunchForm, flavor_fit, step_of_error
from strato.dashboard.render import PREFIX, env, view
from strato.dashboard.session import Session, form_data, page, redirect
from strato.dashboard.timeline import build_timeline

__all__ = ["confirm_action", "instance_console", "instance_detail", "instance_live",
           "instance_rows", "instances", "launch", "run_action"]

Json = dict[str, Any]
PAGE_SIZE = 50
STATUSES = ("ACTIVE", "BUILD", "ERROR", "SHUTOFF", "REBOOT", "HARD_REBOOT", "PAUSED",
            "SUSPENDED", "SOFT_DELETED")
# Statuses that change by themselves: their rows (and detail pages) refresh live.
TRANSITIONAL = frozenset({"BUILD", "REBOOT", "HARD_REBOOT", "DELETED", "MIGRATING",
                          "RESIZE", "REBUILD"})
# Row actions: label, the API's action (None: DELETE), its body, the statuses it
# applies to (empty: every status), and what the flash says once it is asked.
ACTIONS: dict[str, tuple[str, str | None, Any, frozenset[str], str]] = {
    "reboot": ("Reboot", "reboot", {"type": "SOFT"}, frozenset({"ACTIVE"}), "is rebooting"),
    "stop": ("Stop", "os-stop", None, frozenset({"ACTIVE", "ERROR"}), "is stopping"),
    "start": ("Start", "os-start", None, frozenset({"SHUTOFF"}), "is starting"),
    "delete": ("Delete", None, None, frozenset(), "is being deleted"),
}
env.globals.update(transitional=TRANSITIONAL, actions=ACTIONS)


async def _names(client: CloudClient, servers: Iterable[Json]
                 ) -> tuple[dict[str, str], dict[str, str]]:
    """The names of the flavors and images ``servers`` use: the flavor list (short),
    and each image they name (a deleted or hidden image keeps its id)."""
    image_ids = {str(s["image"]["id"]) for s in servers if isinstance(s.get("image"), dict)
                 and s["image"].get("id")}

    async def image_name(image_id: str) -> tuple[str, str]:
        try:
            return image_id, str((await client.image(image_id)).get("name") or image_id)
        except ApiError:
            return image_id, image_id

    flavors, *images = await asyncio.gather(client.flavors(),
                                            *(image_name(i) for i in image_ids))
    return {str(f["id"]): str(f["name"]) for f in flavors}, dict(images)


def _rows(servers: list[Json], flavors: dict[str, str],
          images: dict[str, str]) -> list[Json]:
    rows = []
    for server in servers:
        flavor_id = str((server.get("flavor") or {}).get("id", ""))
        image = server.get("image")
        image_id = str(image.get("id", "")) if isinstance(image, dict) else ""
        rows.append({"s": server, "flavor_name": flavors.get(flavor_id, flavor_id),
                     "image_name": images.get(image_id, image_id)})
    return rows


async def _with_names(client: CloudClient, servers: list[Json]) -> list[Json]:
    return _rows(servers, *await _names(client, servers))


@page
async def instances(request: Request, session: Session) -> Response:
    status = request.query_params.get("status", "").upper()
    status = status if status in STATUSES else ""
    marker = request.query_params.get("marker") or None
    listing = await session.client.servers_page(limit=PAGE_SIZE, marker=marker,
                                                status=status or None)
    query = {"status": status} if status else {}
    next_url = (f"{PREFIX}/instances?{urlencode({**query, 'marker': listing.next_marker})}"
                if listing.next_marker else None)
    first_url = f"{PREFIX}/instances?{urlencode(query)}" if marker else None
    return view(session, "instances.html",
                rows=await _with_names(session.client, listing.items),
                status_filter=status, statuses=STATUSES, next_url=next_url,
                first_url=first_url)


@page
async def instance_rows(request: Request, session: Session) -> Response:
    """The table rows of the given instances as they are now (live updates); a deleted
    one has no row."""

    async def one(server_id: str) -> Json | None:
        try:
            return await session.client.server(server_id)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    found = await asyncio.gather(*(one(i) for i in
                                   request.query_params.getlist("id")[:PAGE_SIZE]))
    servers = [s for s in found if s is not None]
    return view(session, "_rows.html", rows=await _with_names(session.client, servers))


async def _create_action(client: CloudClient, server_id: str) -> Json | None:
    actions = await client.instance_actions(server_id)
    creates = [a for a in actions if a.get("action") == "create"]
    if not creates:
        return None
    return await client.instance_action(server_id, str(creates[0]["request_id"]))


def _detail(template: str) -> Callable[[Request, Session], Awaitable[Response]]:
    async def detail(request: Request, session: Session) -> Response:
        server_id = request.path_params["server_id"]
        server, action = await asyncio.gather(session.client.server(server_id),
                                              _create_action(session.client, server_id))
        [row] = await _with_names(session.client, [server])
        return view(session, template, **row,
                    timeline=build_timeline(action) if action else None)
    return detail


instance_detail = page(_detail("instance.html"))
# The parts of the detail page that change while a build runs.
instance_live = page(_detail("_instance_live.html"))


@page
async def instance_console(request: Request, session: Session) -> Response:
    server_id = request.path_params["server_id"]
    try:
        length = min(max(int(request.query_params.get("length", "200")), 10), 10000)
    except ValueError:
        length = 200
    server = await session.client.server(server_id)
    try:
        output, message = await session.client.console_output(server_id, length), None
    except ApiError as exc:
        if exc.status != 409:  # 409: no console yet (building, stopped ...)
            raise
        output, message = None, exc.message
    return view(session, "console.html", s=server, output=output, message=message,
                length=length)


@page
async def confirm_action(request: Request, session: Session) -> Response:
    server_id, name = request.path_params["server_id"], request.path_params["action"]
    if name not in ACTIONS:
        return view(session, "error.html", http_status=404, title="Not found",
                    status_code=404, message=f"There is no action {name!r}.")
    label = ACTIONS[name][0]
    server = await session.client.server(server_id)
    return view(session, "confirm.html", title=f"{label} instance",
                question=f"{label} the instance {server.get('name')}?",
                action_url=f"{PREFIX}/instances/{quote(server_id)}/{name}",
                button=label, danger=name in ("delete", "stop"),
                back_url=f"{PREFIX}/instances/{quote(server_id)}")


@page
async def run_action(request: Request, session: Session) -> Response:
    server_id, name = request.path_params["server_id"], request.path_params["action"]
    if name not in ACTIONS:
        return redirect("/instances", flash=f"There is no action {name!r}.")
    label, api_action, args, _, done = ACTIONS[name]
    try:
        server = await session.client.server(server_id)
        if api_action is None:
            await session.client.delete_server(server_id)
        else:
            await session.client.server_action(server_id, api_action, args)
    except ApiError as exc:
        return redirect(f"/instances/{quote(server_id)}",
                        flash=f"{label} refused: {exc.message}")
    return redirect("/instances", flash=f"Instance {server.get('name')} {done}.")


# -- the launch wizard -----------------------------------------------------------------

_KEYS = [k for k, _ in STEPS]
# The field an API refusal is shown at, per step.
_FIELD = {"details": "name", "source": "image", "flavor": "flavor", "networks": "networks",
          "access": "security_groups", "configuration": "user_data"}


class _Choices:
    """What the wizard offers, each list fetched at most once per request (a launch
    checks every step once more, then draws one)."""

    def __init__(self, client: CloudClient) -> None:
        self.client = client
        self._found: dict[str, Any] = {}
        self._fetching: dict[str, asyncio.Lock] = {}

    async def _once(self, key: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        async with self._fetching.setdefault(key, asyncio.Lock()):
            if key not in self._found:
                self._found[key] = await fetch()
        return self._found[key]

    async def images(self) -> list[Json]:
        found: list[Json] = await self._once("images", self.client.images)
        return [i for i in found if i.get("status") == "active"]

    async def flavors(self) -> list[Json]:
        found: list[Json] = await self._once("flavors", self.client.flavors)
        return found

    async def limits(self) -> Json:
        found: Json = await self._once("limits", self.client.limits)
        return found

    async def validate(self, form: LaunchForm, step: str) -> dict[str, str]:
        images = flavors = limits = None
        if step in ("source", "flavor") and form.image:
            images = {str(i["id"]): i for i in await self.images()}
        if step == "flavor":
            flavors = {str(f["id"]): f for f in await self.flavors()}
            limits = await self.limits()
        return form.validate(step, images=images, flavors=flavors, limits=limits)

    async def options(self, step: str, count: int) -> Json:
        client = self.client
        if step == "details":
            try:
                zones = [z["zoneName"] for z in await client.availability_zones()
                         if (z.get("zoneState") or {}).get("available", True)]
            except ApiError:
                zones = []
            return {"zones": zones}
        if step == "source":
            return {"images": await self.images()}
        if step == "flavor":
            flavors, limits = await asyncio.gather(self.flavors(), self.limits())
            return {"flavors": sorted(flavors, key=lambda f: (f.get("vcpus", 0),
                                                              f.get("ram", 0))),
                    "limits": limits,
                    "fits": {str(f["id"]): flavor_fit(f, count, limits) for f in flavors}}
        if step == "networks":
            networks, subnets = await asyncio.gather(client.networks(), client.subnets())
            return {"networks": networks, "subnets": subnets}
        if step == "access":
            groups, pairs = await asyncio.gather(client.security_groups(),
                                                 client.keypairs())
            return {"groups": groups, "keypairs": pairs}
        return {}


async def _wizard(session: Session, choices: _Choices, form: LaunchForm, step: str,
                  errors: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    count = form.count_value() or 1
    return view(session, "launch.html", http_status=status, form=form, step=step,
                steps=STEPS, index=_KEYS.index(step), errors=errors or {},
                hidden=form.hidden(step), count=count,
                **await choices.options(step, count))


def _target(form: LaunchForm, step: str, go: str) -> str:
    """The step after ``step`` for the button ``go`` (``next``, ``back``, ``step-<key>``);
    going forward past steps never seen stops at the first unseen one."""
    here = _KEYS.index(step)
    if go == "back":
        return _KEYS[max(here - 1, 0)]
    target = go[5:] if go.startswith("step-") and go[5:] in _KEYS else None
    if target is None:
        return _KEYS[min(here + 1, len(_KEYS) - 1)]
    for key in _KEYS[here + 1:_KEYS.index(target)]:
        if key not in form.seen:
            return key
    return target


@page
async def launch(request: Request, session: Session) -> Response:
    choices = _Choices(session.client)
    if request.method == "GET":
        return await _wizard(session, choices, LaunchForm(), "details")
    fields = await form_data(request)
    form = LaunchForm.from_fields(fields)
    step = (fields.get("step") or ["details"])[0]
    step = step if step in _KEYS else "details"
    go = (fields.get("go") or ["default"])[0]
    if go == "default":  # Enter in a field: the step's main button
        go = "launch" if step == _KEYS[-1] else "next"
    backwards = go == "back" or (go.startswith("step-") and go[5:] in _KEYS
                                 and _KEYS.index(go[5:]) < _KEYS.index(step))
    if backwards:  # nothing to check on the way back
        return await _wizard(session, choices, form, _target(form, step, go))
    errors = await choices.validate(form, step)
    if errors:
        return await _wizard(session, choices, form, step, errors, status=400)
    if go != "launch" or step != _KEYS[-1]:
        return await _wizard(session, choices, form, _target(form, step, go))
    for key in _KEYS:  # every step once more: the choices may have gone meanwhile
        errors = await choices.validate(form, key)
        if errors:
            return await _wizard(session, choices, form, key, errors, status=400)
    try:
        created = await session.client.create_servers(form.body())
    except ApiError as exc:
        where = step_of_error(exc.message)
        return await _wizard(session, choices, form, where,
                             {_FIELD[where]: exc.message, "_api": exc.message},
                             status=exc.status if exc.status < 500 else 502)
    count = form.count_value() or 1
    what = (f"instance {form.name}" if count == 1
            else f"{count} instances named {form.name}-1 … {form.name}-{count}")
    target = (f"/instances/{quote(str(created['id']))}" if count == 1 and "id" in created
              else "/instances")
    return redirect(target, flash=f"Launching {what}.")
