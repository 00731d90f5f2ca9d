"""The request context: who asks, in which project, under which request id.

Built once at the edge (API middleware, CLI) and carried unchanged through every hop of
the bus, so every log line of one request shares its ``request_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from strato.domain.ids import ProjectId, RequestId, UserId, new_request_id

__all__ = ["RequestContext", "admin_context"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestContext:
    """Identity and tracing data for one request."""

    request_id: RequestId = field(default_factory=new_request_id)
    global_request_id: RequestId | None = None
    user_id: UserId = UserId("")
    project_id: ProjectId = ProjectId("")
    roles: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def visible_project(self) -> ProjectId | None:
        """The project the caller's reads and listings are limited to; ``None`` for an
        admin, who sees every project."""
        return None if self.is_admin else self.project_id

    def elevated(self) -> RequestContext:
        """The same request, with the admin role (for service-internal work)."""
        return replace(self, roles=tuple(sorted({*self.roles, "admin"})))


def admin_context(request_id: RequestId | None = None) -> RequestContext:
    """A context for the services' own work (periodic tasks, start-up)."""
    return RequestContext(
        request_id=request_id or new_request_id(),
        user_id=UserId("strato"), project_id=ProjectId("service"), roles=("admin",),
    )
