"""What the API needs from the rest of strato, injected once by ``bootstrap.py``.

Routes receive :class:`ApiDeps` and the caller's context through FastAPI's dependency
injection (:data:`Deps`, :data:`Context`), never from module globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, cast

from fastapi import Depends
from starlette.requests import Request

from strato.api.auth import AuthBackend
from strato.api.policies import default_policy
from strato.api.policy import Policy
from strato.compute.client import ComputeClient
from strato.conductor.client import ConductorClient
from strato.config import ApiSettings
from strato.db.ports import Database
from strato.domain.context import RequestContext
from strato.image.store import ImageStore
from strato.rpc.bus import Bus

__all__ = ["ApiDeps", "Context", "Deps", "get_context", "get_deps"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiDeps:
    """The API's collaborators."""

    db: Database
    bus: Bus
    image_store: ImageStore
    auth: AuthBackend
    settings: ApiSettings
    policy: Policy = field(default_factory=default_policy)

    @property
    def compute(self) -> ComputeClient:
        """The typed client of the compute hosts, over :attr:`bus`."""
        return ComputeClient(self.bus)

    @property
    def conductor(self) -> ConductorClient:
        """The typed client of the conductor, over :attr:`bus` (the API only casts)."""
        return ConductorClient(self.bus)


# The dependencies are ``async def`` although they never wait: FastAPI runs plain ``def``
# dependencies in a thread pool, a thread hop on every request for a dictionary lookup.
async def get_deps(request: Request) -> ApiDeps:
    """The app's :class:`ApiDeps` (stored on ``app.state`` by ``create_app``)."""
    return cast(ApiDeps, request.app.state.deps)


async def get_context(request: Request) -> RequestContext:
    """The caller's context, set by the auth middleware."""
    return cast(RequestContext, request.state.ctx)


Deps = Annotated[ApiDeps, Depends(get_deps)]
Context = Annotated[RequestContext, Depends(get_context)]
