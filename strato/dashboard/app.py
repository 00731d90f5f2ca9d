"""The dashboard: a Starlette application the API mounts at ``/dashboard``; logging in
and out, switching projects, and the routes of the pages (``instances.py``,
``resources.py``).

Every page talks to strato through :class:`strato.client.CloudClient` with the logged-in
user's token (in-process, over the API application itself), so it shows exactly what the
API shows that user, and every refusal is the API's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from strato.client import ApiError
from strato.client.auth import scoped_token, unscoped_token
from strato.dashboard.instances import (
    confirm_action,
    instance_console,
    instance_detail,
    instance_live,
    instance_rows,
    instances,
    launch,
    run_action,
)
from strato.dashboard.render import PREFIX, render
from strato.dashboard.resources import (
    confirm_image_delete,
    confirm_keypair_delete,
    confirm_network_delete,
    create_image,
    create_keypair,
    create_network,
    delete_image,
    delete_keypair,
    delete_network,
    flavors_page,
    hypervisors_page,
    images_page,
    keypairs_page,
    networks_page,
    services_page,
    upload_image,
)
from strato.dashboard.session import (
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

__all__ = ["create_dashboard", "in_process"]

_STATIC = Path(__file__).parent / "static"


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
    app = Starlette(routes=routes)
    app.state.dashboard = dashboard
    return app


def in_process(api: Any) -> Dashboard:
    """A :class:`Dashboard` that reaches ``api`` (the API's ASGI app) without a socket."""
    return Dashboard(base_url="http://strato.internal",
                     transport=httpx.ASGITransport(app=api))
