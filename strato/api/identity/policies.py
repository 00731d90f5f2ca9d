"""The Identity API's policy defaults (Keystone's action names).

Keystone's own defaults, reduced to project scope: the cloud administrator manages
domains, projects, users, roles and role assignments; a user may see themselves and
their projects, and change their own password; a project's members may see their
project. The routes under ``/v3/auth`` check the caller themselves (``PUBLIC``).
"""

from __future__ import annotations

from strato.api.policy import RuleDefault

__all__ = ["IDENTITY_RULES"]

_ADMIN = "rule:identity:admin_required"
_ADMIN_OR_SELF = f"{_ADMIN} or user_id:%(user_id)s"


def _admin_only(kind: str, plural: str) -> list[RuleDefault]:
    return [RuleDefault(f"identity:list_{plural}", _ADMIN, f"List {plural}."),
            RuleDefault(f"identity:create_{kind}", _ADMIN, f"Create a {kind}."),
            RuleDefault(f"identity:update_{kind}", _ADMIN, f"Change a {kind}."),
            RuleDefault(f"identity:delete_{kind}", _ADMIN, f"Delete a {kind}.")]


IDENTITY_RULES: list[RuleDefault] = [
    RuleDefault("identity:admin_required", "role:admin",
                "Base rule: a cloud administrator of the Identity API."),
    *_admin_only("domain", "domains"),
    RuleDefault("identity:get_domain", _ADMIN, "Show a domain."),
    *_admin_only("project", "projects"),
    RuleDefault("identity:get_project", f"{_ADMIN} or project_id:%(project_id)s",
                "Show a project (its members may see it)."),
    *_admin_only("user", "users"),
    RuleDefault("identity:get_user", _ADMIN_OR_SELF, "Show a user (users may see themselves)."),
    RuleDefault("identity:list_user_projects", _ADMIN_OR_SELF,
                "List the projects a user holds a role on."),
    RuleDefault("identity:change_password", "user_id:%(user_id)s",
                "Change one's own password (the original one is required)."),
    *_admin_only("role", "roles"),
    RuleDefault("identity:get_role", _ADMIN, "Show a role."),
    RuleDefault("identity:list_grants", _ADMIN, "List a user's roles on a project."),
    RuleDefault("identity:check_grant", _ADMIN,
                "Check whether a user holds a role on a project."),
    RuleDefault("identity:create_grant", _ADMIN, "Give a user a role on a project."),
    RuleDefault("identity:revoke_grant", _ADMIN, "Take a user's role on a project away."),
    RuleDefault("identity:list_role_assignments", _ADMIN,
                "List role assignments (filtered by user, project or role)."),
]
