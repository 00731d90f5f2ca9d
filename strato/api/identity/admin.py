"""Identity API administration (Keystone v3): domains, projects, users, roles and role
assignments on projects, under ``/identity/v3``.

Thin routes: the body becomes a domain object or the changed fields
(:mod:`strato.api.identity.schemas`), :class:`~strato.identity.admin.IdentityAdmin`
applies Keystone's rules and writes, :mod:`strato.api.identity.views` draws the answer.
Errors are domain errors, drawn in Keystone's error body by the API's error handlers;
each route's policy action is Keystone's own name (``identity:create_project``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strato.api.bodies import read_json
from strato.api.deps import Deps
from strato.api.identity import schemas, views
from strato.api.openapi import bodiless, request_body
from strato.api.policy import action
from strato.domain.errors import Invalid
from strato.domain.identity import AuthFailed, DomainId, RoleAssignment, RoleId
from strato.domain.ids import ProjectId, UserId
from strato.identity.admin import IdentityAdmin

__all__ = ["router"]

router = APIRouter()

_V3 = "/identity/v3"


def _admin(deps: Deps) -> IdentityAdmin:
    return IdentityAdmin(deps.db.identity)


def _listed(request: Request, deps: Deps, key: str, items: list[dict[str, Any]]
            ) -> JSONResponse:
    path = request.url.path.removeprefix(f"{_V3}/")
    query = f"?{request.url.query}" if request.url.query else ""
    return JSONResponse(views.collection(key, items,
                                         views.v3_url(deps.settings, path) + query))


def _no_content() -> Response:
    return Response(status_code=204)


# ---- domains -----------------------------------------------------------------------------

@router.post(f"{_V3}/domains")
@request_body(schemas._DomainCreate, key="domain")
@action("identity:create_domain")
async def create_domain(request: Request, deps: Deps) -> JSONResponse:
    domain = await _admin(deps).create_domain(schemas.domain_create(await read_json(request)))
    return JSONResponse({"domain": views.domain(domain, deps.settings)}, status_code=201)


@router.get(f"{_V3}/domains")
@action("identity:list_domains")
async def list_domains(request: Request, deps: Deps) -> JSONResponse:
    q = request.query_params
    found = await deps.db.identity.domains(name=q.get("name"),
                                           enabled=schemas.flag(q.get("enabled")))
    return _listed(request, deps, "domains", [views.domain(d, deps.settings) for d in found])


@router.get(f"{_V3}/domains/{{domain_id}}")
@action("identity:get_domain")
async def show_domain(domain_id: str, deps: Deps) -> JSONResponse:
    domain = await deps.db.identity.domain(DomainId(domain_id))
    return JSONResponse({"domain": views.domain(domain, deps.settings)})


@router.patch(f"{_V3}/domains/{{domain_id}}")
@request_body(schemas._DomainUpdate, key="domain")
@action("identity:update_domain")
async def update_domain(domain_id: str, request: Request, deps: Deps) -> JSONResponse:
    domain = await _admin(deps).update_domain(
        DomainId(domain_id), schemas.domain_update(await read_json(request)))
    return JSONResponse({"domain": views.domain(domain, deps.settings)})


@router.delete(f"{_V3}/domains/{{domain_id}}")
@action("identity:delete_domain")
async def delete_domain(domain_id: str, deps: Deps) -> Response:
    await _admin(deps).delete_domain(DomainId(domain_id))
    return _no_content()


# ---- projects ----------------------------------------------------------------------------

@router.post(f"{_V3}/projects")
@request_body(schemas._ProjectCreate, key="project")
@action("identity:create_project")
async def create_project(request: Request, deps: Deps) -> JSONResponse:
    project = await _admin(deps).create_project(
        schemas.project_create(await read_json(request)))
    return JSONResponse({"project": views.project(project, deps.settings)}, status_code=201)


@router.get(f"{_V3}/projects")
@action("identity:list_projects")
async def list_projects(request: Request, deps: Deps) -> JSONResponse:
    """Filters ``name``, ``domain_id``, ``enabled``, ``parent_id`` (a project's parent is
    its domain: strato has no hierarchy) and ``is_domain`` (no project acts as a domain:
    ``true`` lists none)."""
    q = request.query_params
    domains = {q[key] for key in ("domain_id", "parent_id") if key in q}
    found = [] if len(domains) > 1 or schemas.flag(q.get("is_domain")) else \
        await deps.db.identity.projects(
            name=q.get("name"), domain_id=DomainId(domains.pop()) if domains else None,
            enabled=schemas.flag(q.get("enabled")))
    return _listed(request, deps, "projects",
                   [views.project(p, deps.settings) for p in found])


@router.get(f"{_V3}/projects/{{project_id}}")
@action("identity:get_project")
async def show_project(project_id: str, deps: Deps) -> JSONResponse:
    project = await deps.db.identity.project(ProjectId(project_id))
    return JSONResponse({"project": views.project(project, deps.settings)})


@router.patch(f"{_V3}/projects/{{project_id}}")
@request_body(schemas._ProjectUpdate, key="project")
@action("identity:update_project")
async def update_project(project_id: str, request: Request, deps: Deps) -> JSONResponse:
    project = await _admin(deps).update_project(
        ProjectId(project_id), schemas.project_update(await read_json(request)))
    return JSONResponse({"project": views.project(project, deps.settings)})


@router.delete(f"{_V3}/projects/{{project_id}}")
@action("identity:delete_project")
async def delete_project(project_id: str, deps: Deps) -> Response:
    await deps.db.identity.delete_project(ProjectId(project_id))
    return _no_content()


# ---- users -------------------------------------------------------------------------------

@router.post(f"{_V3}/users")
@request_body(schemas._UserCreate, key="user")
@action("identity:create_user")
async def create_user(request: Request, deps: Deps) -> JSONResponse:
    user, password = schemas.user_create(await read_json(request))
    user = await _admin(deps).create_user(user, password)
    return JSONResponse({"user": views.user(user, deps.settings)}, status_code=201)


@router.get(f"{_V3}/users")
@action("identity:list_users")
async def list_users(request: Request, deps: Deps) -> JSONResponse:
    q = request.query_params
    found = await deps.db.identity.users(
        name=q.get("name"), domain_id=DomainId(q["domain_id"]) if "domain_id" in q else None,
        enabled=schemas.flag(q.get("enabled")))
    return _listed(request, deps, "users", [views.user(u, deps.settings) for u in found])


@router.get(f"{_V3}/users/{{user_id}}")
@action("identity:get_user")
async def show_user(user_id: str, deps: Deps) -> JSONResponse:
    user = await deps.db.identity.user(UserId(user_id))
    return JSONResponse({"user": views.user(user, deps.settings)})


@router.patch(f"{_V3}/users/{{user_id}}")
@request_body(schemas._UserUpdate, key="user")
@action("identity:update_user")
async def update_user(user_id: str, request: Request, deps: Deps) -> JSONResponse:
    user = await _admin(deps).update_user(UserId(user_id),
                                          schemas.user_update(await read_json(request)))
    return JSONResponse({"user": views.user(user, deps.settings)})


@router.delete(f"{_V3}/users/{{user_id}}")
@action("identity:delete_user")
async def delete_user(user_id: str, deps: Deps) -> Response:
    await deps.db.identity.delete_user(UserId(user_id))
    return _no_content()


@router.get(f"{_V3}/users/{{user_id}}/projects")
@action("identity:list_user_projects")
async def list_user_projects(user_id: str, request: Request, deps: Deps) -> JSONResponse:
    await deps.db.identity.user(UserId(user_id))
    found = await deps.db.identity.projects_of(UserId(user_id))
    return _listed(request, deps, "projects",
                   [views.project(p, deps.settings) for p in found])


@router.post(f"{_V3}/users/{{user_id}}/password")
@request_body(schemas._PasswordChange, key="user")
@action("identity:change_password")
async def change_password(user_id: str, request: Request, deps: Deps) -> Response:
    """The user's own change, proved by the original password (401 when wrong). Every
    token of the user issued before stops working, the caller's own included."""
    original, new = schemas.password_change(await read_json(request))
    try:
        await _admin(deps).change_password(UserId(user_id), original=original, new=new)
    except AuthFailed as exc:
        return views.error(401, str(exc), deps.settings)
    return _no_content()


# ---- roles -------------------------------------------------------------------------------

@router.post(f"{_V3}/roles")
@request_body(schemas._RoleCreate, key="role")
@action("identity:create_role")
async def create_role(request: Request, deps: Deps) -> JSONResponse:
    role = await deps.db.identity.create_role(schemas.role_create(await read_json(request)))
    return JSONResponse({"role": views.role(role, deps.settings)}, status_code=201)


@router.get(f"{_V3}/roles")
@action("identity:list_roles")
async def list_roles(request: Request, deps: Deps) -> JSONResponse:
    """Filter ``name``; ``domain_id`` asks for a domain's own roles, and strato has only
    global ones: none."""
    q = request.query_params
    found = [] if "domain_id" in q else await deps.db.identity.roles(name=q.get("name"))
    return _listed(request, deps, "roles", [views.role(r, deps.settings) for r in found])


@router.get(f"{_V3}/roles/{{role_id}}")
@action("identity:get_role")
async def show_role(role_id: str, deps: Deps) -> JSONResponse:
    role = await deps.db.identity.role(RoleId(role_id))
    return JSONResponse({"role": views.role(role, deps.settings)})


@router.patch(f"{_V3}/roles/{{role_id}}")
@request_body(schemas._RoleUpdate, key="role")
@action("identity:update_role")
async def update_role(role_id: str, request: Request, deps: Deps) -> JSONResponse:
    role = await _admin(deps).update_role(RoleId(role_id),
                                          schemas.role_update(await read_json(request)))
    return JSONResponse({"role": views.role(role, deps.settings)})


@router.delete(f"{_V3}/roles/{{role_id}}")
@action("identity:delete_role")
async def delete_role(role_id: str, deps: Deps) -> Response:
    await deps.db.identity.delete_role(RoleId(role_id))
    return _no_content()


# ---- role assignments --------------------------------------------------------------------

_GRANT = f"{_V3}/projects/{{project_id}}/users/{{user_id}}/roles/{{role_id}}"


def _grant(project_id: str, user_id: str, role_id: str) -> RoleAssignment:
    return RoleAssignment(user_id=UserId(user_id), project_id=ProjectId(project_id),
                          role_id=RoleId(role_id))


@router.get(f"{_V3}/projects/{{project_id}}/users/{{user_id}}/roles")
@action("identity:list_grants")
async def list_grants(project_id: str, user_id: str, request: Request,
                      deps: Deps) -> JSONResponse:
    found = await _admin(deps).roles_on(UserId(user_id), ProjectId(project_id))
    return _listed(request, deps, "roles", [views.role(r, deps.settings) for r in found])


@router.put(_GRANT)
@bodiless
@action("identity:create_grant")
async def create_grant(project_id: str, user_id: str, role_id: str, deps: Deps) -> Response:
    await _admin(deps).assign(_grant(project_id, user_id, role_id))
    return _no_content()


@router.api_route(_GRANT, methods=["GET", "HEAD"])
@action("identity:check_grant")
async def check_grant(project_id: str, user_id: str, role_id: str, deps: Deps) -> Response:
    await _admin(deps).check(_grant(project_id, user_id, role_id))
    return _no_content()


@router.delete(_GRANT)
@action("identity:revoke_grant")
async def revoke_grant(project_id: str, user_id: str, role_id: str, deps: Deps) -> Response:
    await deps.db.identity.unassign_role(UserId(user_id), ProjectId(project_id),
                                         RoleId(role_id))
    return _no_content()


# Filters strato cannot match (no groups, no domain or system assignments): any of them
# selects nothing.
_NEVER_MATCHED = ("group.id", "scope.domain.id", "scope.system", "scope.OS-INHERIT:inherited_to")


# Filters one list may not combine: Keystone's 400s, in the order it checks them.
_EXCLUSIVE = (("scope.domain.id", "scope.project.id", "Specify a domain or project, not both"),
              ("scope.system", "scope.domain.id", "Specify system or domain, not both"),
              ("scope.system", "scope.project.id", "Specify system or project, not both"),
              ("user.id", "group.id", "Specify a user or group, not both"))


def _check_assignment_filters(q: QueryParams) -> None:
    """Keystone's checks of a role assignment query (``keystone/api/role_assignments``)."""
    for first, second, message in _EXCLUSIVE:
        if first in q and second in q:
            raise Invalid(message)
    if schemas.flag(q.get("effective")) and "group.id" in q:
        raise Invalid("Combining effective and group filter will always result in an "
                      "empty list.")
    if schemas.flag(q.get("include_subtree")) and "scope.project.id" not in q:
        raise Invalid("scope.project.id needs to be specified if include_subtree is also "
                      "specified")


@router.get(f"{_V3}/role_assignments")
@action("identity:list_role_assignments")
async def list_role_assignments(request: Request, deps: Deps) -> JSONResponse:
    """Filters ``user.id``, ``scope.project.id``, ``role.id``; ``include_names`` adds
    the names. ``effective`` and ``include_subtree`` change nothing: strato has no
    groups, no inheritance and no projects under projects."""
    q, repo = request.query_params, deps.db.identity
    _check_assignment_filters(q)
    found = [] if any(key in q for key in _NEVER_MATCHED) else await repo.role_assignments(
        user_id=UserId(q["user.id"]) if "user.id" in q else None,
        project_id=ProjectId(q["scope.project.id"]) if "scope.project.id" in q else None,
        role_id=RoleId(q["role.id"]) if "role.id" in q else None)
    names = None
    if schemas.flag(q.get("include_names")):
        names = views.Names(users={u.id: u for u in await repo.users()},
                            projects={p.id: p for p in await repo.projects()},
                            roles={r.id: r for r in await repo.roles()},
                            domains={d.id: d for d in await repo.domains()})
    return _listed(request, deps, "role_assignments",
                   [views.assignment(a, deps.settings, names) for a in found])
