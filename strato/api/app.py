"""The REST edge: ``create_app`` assembles the Compute (Nova v2.1, at ``/``) and Image
(Glance v2 subset, at ``/image``) APIs on one FastAPI application.

Nothing is built at import time: ``bootstrap.py`` builds :class:`ApiDeps` and calls
:func:`create_app`. Routes parse their own bodies (``strato.api.bodies``), so FastAPI's
422 validation never answers; every error is a Nova fault (``strato.api.errors``).
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import FastAPI

from strato.api import errors, versions
from strato.api.actions.routes import router as actions_router
from strato.api.deps import ApiDeps
from strato.api.flavors.routes import router as flavors_router
from strato.api.hosts.routes import router as hosts_router
from strato.api.images.routes import api_router as image_api_router
from strato.api.images.routes import router as image_alias_router
from strato.api.middleware import AuthMiddleware, MicroversionMiddleware, RequestIdMiddleware
from strato.api.quotas.routes import router as quotas_router
from strato.api.servers.routes import router as servers_router
from strato.config import ApiSettings

__all__ = ["create_app"]


def create_app(deps: ApiDeps, settings: ApiSettings) -> FastAPI:
    """The API application.

    ``deps``: the database, bus, image store and auth backend the routes use.
    ``settings``: the API section of the settings; it replaces ``deps.settings`` so the
    routes read one copy.
    """
    app = FastAPI(title="strato", version="2.1", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json")
    app.state.deps = replace(deps, settings=settings)
    # The Image API lives under /image (its version document there); /v2/images... stays
    # as an alias for strato's own older clients.
    for router in (versions.router, servers_router, actions_router, flavors_router,
                   hosts_router, image_api_router, image_alias_router):
        app.include_router(router)
    app.include_router(quotas_router)
    errors.install_handlers(app)
    # add_middleware wraps: the last added runs first. Request ids are outermost so a
    # 401 or a crash still carries them.
    app.add_middleware(MicroversionMiddleware)
    app.add_middleware(AuthMiddleware, backend=deps.auth)
    app.add_middleware(RequestIdMiddleware)
    return app
