"""The Identity API's policy defaults: every route names a rule that exists, the rules
parse on their own, and they decide as Keystone's defaults do."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from strato.api.identity.admin import router as admin_router
from strato.api.identity.policies import IDENTITY_RULES
from strato.api.identity.routes import router as auth_router
from strato.api.policy import PUBLIC, Policy, action_of
from strato.domain.context import RequestContext
from strato.domain.ids import ProjectId, UserId

POLICY = Policy(IDENTITY_RULES)  # alone: every rule they refer to is among them
ADMIN = RequestContext(user_id=UserId("u-admin"), project_id=ProjectId("p-admin"),
                       roles=("admin",))
ALICE = RequestContext(user_id=UserId("u-alice"), project_id=ProjectId("p-alice"),
                       roles=("member",))


def test_every_route_declares_a_known_action() -> None:
    names = {rule.name for rule in IDENTITY_RULES}
    assert len(names) == len(IDENTITY_RULES)
    for route in admin_router.routes:
        assert isinstance(route, APIRoute)
        assert action_of(route.endpoint) in names, route.path
    for route in auth_router.routes:
        assert isinstance(route, APIRoute)
        assert action_of(route.endpoint) == PUBLIC, route.path


@pytest.mark.parametrize("name", sorted(r.name for r in IDENTITY_RULES
                                        if r.name != "identity:change_password"))
def test_the_admin_may_do_everything_but_change_others_passwords(name: str) -> None:
    assert POLICY.allows(ADMIN, name, {"user_id": "u-alice", "project_id": "p-alice"})


@pytest.mark.parametrize(("name", "target", "allowed"), [
    ("identity:list_projects", {}, False),
    ("identity:create_user", {}, False),
    ("identity:create_grant", {"project_id": "p-alice", "user_id": "u-alice"}, False),
    ("identity:list_role_assignments", {}, False),
    ("identity:get_user", {"user_id": "u-alice"}, True),
    ("identity:get_user", {"user_id": "u-bob"}, False),
    ("identity:update_user", {"user_id": "u-alice"}, False),
    ("identity:list_user_projects", {"user_id": "u-alice"}, True),
    ("identity:list_user_projects", {"user_id": "u-bob"}, False),
    ("identity:get_project", {"project_id": "p-alice"}, True),
    ("identity:get_project", {"project_id": "p-bob"}, False),
    ("identity:change_password", {"user_id": "u-alice"}, True),
    ("identity:change_password", {"user_id": "u-bob"}, False),
])
def test_a_member_may_see_and_change_only_itself(name: str, target: dict[str, str],
                                                 allowed: bool) -> None:
    assert POLICY.allows(ALICE, name, target) is allowed
    assert not POLICY.allows(ADMIN, "identity:change_password", {"user_id": "u-alice"})
