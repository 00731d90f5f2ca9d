"""The REST edge: ``create_app`` assembles the Compute (Nova v2.1, at ``/``) and Image
(Glance v2 subset, at ``/image``) APIs on one FastAPI application.

Nothing is built at import time: ``bootstrap.py`` builds :class:`ApiDeps` and calls
:func:`create_app`. Routes parse their own bodies (``strato.api.bodies``), so FastAPI's
422 validation never answers; every error is a Nova fault (``strato.api.errors``).
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import Depends, FastAPI

from strato.api import errors, openapi, versions
from strato.api.actions.routes import router as actions_router
from strato.api.aggregates.routes import router as aggregates_router
from strato.api.bodylimit import BodyLimitMiddleware, BodyLimits
from strato.api.deps import ApiDeps
from strato.api.flavors.routes import router as flavors_router
from strato.api.hosts.routes import router as hosts_router
from strato.api.identity.admin import router as identity_admin_router
from strato.api.identity.routes import router as identity_router
from strato.api.images.routes import api_router as image_api_router
from strato.api.images.routes import router as image_alias_router
from strato.api.keypairs.routes import router as keypairs_router
from strato.api.middleware import AuthMiddleware, MicroversionMiddleware, RequestIdMiddleware
from strato.api.network_fanout import NetworkChangesMiddleware
from strato.api.networks.routes import router as networks_router
from strato.api.networks.security_groups import router as security_groups_router
from strato.api.policy import enforce_route
from strato.api.quotas.routes import router as quotas_router
from strato.api.server_groups.routes import router as server_groups_router
from strato.api.servers.routes import router as servers_router
from strato.config import ApiSettings
from strato.dashboard import PREFIX as DASHBOARD_PREFIX
from strato.dashboard import create_dashboard, in_process

__all__ = ["create_app"]


def create_app(deps: ApiDeps, settings: ApiSettings) -> FastAPI:
    """The API application.

    ``deps``: the database, bus, image store and auth backend the routes use.
    ``settings``: the API section of the settings; it replaces ``deps.settings`` so the
    routes read one copy.
    """
    app = FastAPI(title="strato", version="2.1", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json", dependencies=[Depends(enforce_route)])
    app.state.deps = replace(deps, settings=settings)
    # The Image API lives under /image (its version document there); /v2/images... stays
    # as an alias for strato's own older clients.
    for router in (versions.router, servers_router, actions_router, flavors_router,
                   hosts_router, image_api_router, image_alias_router):
        app.include_router(router)
    app.include_router(quotas_router)
    app.include_router(aggregates_router)
    app.include_router(server_groups_router)
    app.include_router(networks_router)
    app.include_router(security_groups_router)
    app.include_router(identity_router)
    app.include_router(identity_admin_router)
    app.include_router(keypairs_router)
    openapi.install(app)  # /openapi.json with the request bodies the routes declare
    # The dashboard reaches this same application in-process, through its public API
    # client and the user's token: the middleware below checks it like any client.
    app.mount(DASHBOARD_PREFIX, create_dashboard(in_process(app)), name="dashboard")
    errors.install_handlers(app)
    # add_middleware wraps: the last added runs first. Request ids are outermost so a
    # 401 or a crash still carries them; the body cap comes next, before any route or
    # token check reads a byte.
    app.add_middleware(NetworkChangesMiddleware, bus=deps.bus)
    app.add_middleware(MicroversionMiddleware)
    app.add_middleware(AuthMiddleware, backend=deps.auth)
    app.add_middleware(BodyLimitMiddleware, limits=BodyLimits(
        default=settings.max_request_body_size, form=settings.max_form_body_size,
        upload=settings.max_upload_body_size))
    app.add_middleware(RequestIdMiddleware)
    return app
