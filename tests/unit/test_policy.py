"""The policy engine: oslo.policy's rule language (parsing, precedence, malformed rules),
implied roles, target substitution, operator override files, the sample file, the
app-wide route check, and docs/policy.md kept in step with the default rules."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from strato.api.policies import (
    DEFAULT_RULES,
    SERVER_ACTIONS,
    aggregate_rule,
    default_policy,
    load_policy,
)
from strato.api.policy import (
    PER_BODY,
    PUBLIC,
    Policy,
    PolicyDenied,
    RuleDefault,
    action,
    enforce_route,
    parse_rule,
)
from strato.domain.context import RequestContext
from strato.domain.errors import Forbidden, Invalid
from strato.domain.ids import ProjectId, UserId

DOC = Path(__file__).parents[2] / "docs" / "policy.md"
CREATE = "os_compute_api:servers:create"


def caller(*roles: str, project: str = "project-a", user: str = "user-a") -> RequestContext:
    return RequestContext(user_id=UserId(user), project_id=ProjectId(project), roles=roles)


def rules(**checks: str) -> Policy:
    """A policy of just these rules (``x="role:admin"``)."""
    return Policy([RuleDefault(name, check, "") for name, check in checks.items()])


def decide(check: str, ctx: RequestContext | None = None,
           target: dict[str, object] | None = None) -> bool:
    """Whether ``check`` allows ``ctx`` (default: a member of project-a) on ``target``."""
    return rules(it=check).allows(ctx or caller("member"), "it", target)


# -- parsing -----------------------------------------------------------------------------

@pytest.mark.parametrize("check", ["", "   ", "\t\n", "@"])
def test_an_empty_rule_and_at_allow_everyone_even_with_no_roles(check: str) -> None:
    assert decide(check, RequestContext())


def test_bang_allows_no_one_not_even_an_admin() -> None:
    assert not decide("!", caller("admin"))


@pytest.mark.parametrize(("check", "expected"), [
    ("! and ! or @", True),      # (! and !) or @, not ! and (! or @)
    ("@ or @ and !", True),      # @ or (@ and !), not (@ or @) and !
    ("@ or ! and !", True),
    ("not @ and !", False),      # (not @) and !, not not (@ and !)
    ("not @ or @", True),        # (not @) or @, not not (@ or @)
    ("not not @", True),
    ("not ! and not !", True),
    ("! or not @ or @ and not !", True),
])
def test_not_binds_tighter_than_and_which_binds_tighter_than_or(check: str,
                                                                 expected: bool) -> None:
    assert decide(check) is expected


@pytest.mark.parametrize(("check", "expected"), [
    ("( @ or @ ) and !", False),
    ("(@ or @) and !", False),
    ("@ or (@ and !)", True),
    ("not (@ and !)", True),
    ("not (! or @)", False),
    ("((@))", True),
    ("(( ! ) )", False),
    ("((! or @) and (@ and (not !)))", True),
])
def test_parentheses_group_whether_spaced_or_glued_to_their_words(check: str,
                                                                    expected: bool) -> None:
    assert decide(check) is expected


@pytest.mark.parametrize("check", [
    "project_id:%(project_id)s",
    "(project_id:%(project_id)s)",
    "((project_id:%(project_id)s))",
    "(role:admin or project_id:%(project_id)s)",
    "! or (project_id:%(project_id)s and @)",
])
def test_a_substitution_stays_one_word_even_next_to_parentheses(check: str) -> None:
    assert decide(check, caller("reader"), {"project_id": "project-a"})
    assert not decide(check, caller("reader"), {"project_id": "project-b"})


def test_role_checks_ignore_case_on_both_sides() -> None:
    assert decide("role:Member", caller("MEMBER"))
    assert decide("role:reader", caller("Member"))
    assert not decide("role:ADMIN", caller("Member"))


@pytest.mark.parametrize(("check", "roles", "expected"), [
    ("is_admin:True", ("admin",), True),
    ("is_admin:True", ("member",), False),
    ("is_admin:true", ("admin",), True),
    ("is_admin:False", ("member",), True),
    ("is_admin:False", ("admin",), False),
    ("is_admin:'True'", ("admin",), True),
    ('is_admin:"True"', ("member",), False),
])
def test_boolean_literals_test_the_attribute_s_truth(check: str, roles: tuple[str, ...],
                                                     expected: bool) -> None:
    assert decide(check, caller(*roles)) is expected


@pytest.mark.parametrize("check", [
    "project_id:project-a", "project_id:'project-a'", 'project_id:"project-a"',
    "user_id:user-a", "user_id:'user-a' and project_id:\"project-a\"",
])
def test_literal_values_compare_with_or_without_quotes(check: str) -> None:
    assert decide(check, caller("reader"))
    assert not decide(check, caller("reader", project="project-b", user="user-b"))


def test_a_literal_never_matches_an_attribute_the_caller_lacks() -> None:
    assert not decide("domain_id:default")
    assert not decide("domain_id:'default'")


@pytest.mark.parametrize("check", ["domain_id:None", "domain_id:False"])
def test_a_literal_none_or_false_never_matches_an_attribute_the_caller_lacks(
        check: str) -> None:
    assert not decide(check)


def test_rule_references_evaluate_the_named_rule() -> None:
    policy = rules(base="role:admin", derived="rule:base or user_id:%(user_id)s",
                   negated="not rule:base")
    assert policy.allows(caller("admin"), "derived", {"user_id": "someone-else"})
    assert not policy.allows(caller("member"), "derived", {"user_id": "someone-else"})
    assert policy.allows(caller("member"), "derived", {"user_id": "user-a"})
    assert policy.allows(caller("member"), "negated")
    assert not policy.allows(caller("admin"), "negated")


def test_a_reference_to_an_unknown_rule_stops_the_policy_from_loading() -> None:
    """oslo.policy evaluates such a reference as False, so a typo in an override file
    silently refuses everyone; strato refuses the file instead, naming the rule."""
    with pytest.raises(Invalid, match="admin_apii"):
        rules(typo="rule:admin_apii")
    with pytest.raises(Invalid, match="fallback"):
        rules(fallback="rule:admin_apii or role:member")


# Random and/or/not expressions over atoms whose truth for a member of project-a is known
# evaluate as Python evaluates the same expression over True and False.
_ATOMS = st.sampled_from([
    ("@", "True"), ("!", "False"), ("role:reader", "True"), ("role:admin", "False"),
    ("project_id:%(project_id)s", "True"), ("user_id:someone-else", "False"),
    ("rule:yes", "True"), ("rule:no", "False"), ("is_admin:False", "True"),
])


def _combine(children: st.SearchStrategy[tuple[str, str]]
             ) -> st.SearchStrategy[tuple[str, str]]:
    def joined(op: str) -> Callable[[tuple[str, str], tuple[str, str]], tuple[str, str]]:
        return lambda a, b: (f"{a[0]} {op} {b[0]}", f"{a[1]} {op} {b[1]}")

    return st.one_of(
        st.builds(joined("and"), children, children),
        st.builds(joined("or"), children, children),
        st.builds(lambda a: (f"not {a[0]}", f"not {a[1]}"), children),
        st.builds(lambda a: (f"({a[0]})", f"({a[1]})"), children),
        st.builds(lambda a: (f"( {a[0]} )", f"({a[1]})"), children),
    )


@given(st.recursive(_ATOMS, _combine, max_leaves=24),
       st.sampled_from([" ", "  ", "\t", "\n "]))
def test_random_expressions_evaluate_as_python_s_boolean_logic(
        expression: tuple[str, str], space: str) -> None:
    text, python = expression
    policy = rules(it=text.replace(" ", space), yes="@", no="!")
    expected = eval(python)  # noqa: S307 - our own generated text of True/False/and/or/not
    assert policy.allows(caller("member"), "it", {"project_id": "project-a"}) is expected


# -- malformed rules ---------------------------------------------------------------------

@pytest.mark.parametrize(("check", "reason"), [
    ("(role:admin", "never closed"),
    ("( role:admin or (role:member)", "never closed"),
    ("role:admin)", "unexpected ')'"),
    ("role:admin and", "ends too early"),
    ("role:admin or", "ends too early"),
    ("not", "ends too early"),
    ("(", "ends too early"),
    ("and role:admin", "cannot read 'and'"),
    ("role:admin or or role:member", "cannot read 'or'"),
    ("foo", "cannot read 'foo'"),
    ("admin", "cannot read 'admin'"),
    ("role:", "cannot read 'role:'"),
    (":admin", "cannot read ':admin'"),
    ("()", "cannot read ')'"),
    ("role:admin role:member", "unexpected 'role:member'"),
    ("@ !", "unexpected '!'"),
])
def test_a_malformed_rule_is_invalid_and_the_message_quotes_it(check: str,
                                                               reason: str) -> None:
    with pytest.raises(Invalid) as raised:
        parse_rule(check)
    assert repr(check) in str(raised.value)
    assert reason in str(raised.value)


def test_a_malformed_default_stops_the_policy_from_loading() -> None:
    with pytest.raises(Invalid, match="ends too early"):
        rules(good="@", bad="role:admin and")


def test_a_malformed_override_stops_the_policy_from_loading() -> None:
    with pytest.raises(Invalid, match="never closed"):
        Policy(DEFAULT_RULES, {CREATE: "(role:admin"})


def test_a_malformed_override_in_a_file_names_the_rule_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(f'"{CREATE}": "role:admin and"\n')
    with pytest.raises(Invalid) as raised:
        load_policy(path)
    assert CREATE in str(raised.value)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("overrides", [
    {"admin_api": "rule:admin_api"},
    {"project_member_api": "rule:project_member_or_admin"},
])
def test_a_cycle_of_rule_references_is_refused_at_load(overrides: dict[str, str]) -> None:
    with pytest.raises(Invalid, match="rule"):
        Policy(DEFAULT_RULES, overrides)


# -- implied roles -----------------------------------------------------------------------

def test_a_reader_may_read_but_not_change_its_project() -> None:
    policy = default_policy()
    reader = caller("reader")
    assert policy.allows(reader, "project_reader_api")
    assert not policy.allows(reader, "project_member_api")
    assert not policy.allows(reader, "admin_api")


def test_a_member_is_also_a_reader_but_not_an_admin() -> None:
    policy = default_policy()
    member = caller("member")
    assert policy.allows(member, "project_member_api")
    assert policy.allows(member, "project_reader_api")
    assert not policy.allows(member, "admin_api")
    assert not policy.allows(member, "context_is_admin")


def test_an_admin_is_also_a_member_and_a_reader() -> None:
    policy = default_policy()
    admin = caller("admin")
    for rule in ("admin_api", "context_is_admin", "project_member_api", "project_reader_api"):
        assert policy.allows(admin, rule), rule


def test_implied_roles_stay_within_the_project() -> None:
    """admin implies member in its own project; another project's member-only rule needs
    the membership, the ``_or_admin`` rules do not."""
    policy = default_policy()
    admin, elsewhere = caller("admin"), {"project_id": "project-b"}
    assert not policy.allows(admin, "project_member_api", elsewhere)
    assert policy.allows(admin, "project_member_or_admin", elsewhere)
    assert policy.allows(admin, "project_reader_or_admin", elsewhere)


@pytest.mark.parametrize("roles", [(), ("observer",), ("load-balancer_member",)])
def test_a_caller_without_a_known_role_passes_only_the_rules_for_anyone(
        roles: tuple[str, ...]) -> None:
    policy = default_policy()
    nobody = caller(*roles)
    assert policy.allows(nobody, "os_compute_api:flavors:index")
    assert policy.allows(nobody, "os_compute_api:os-keypairs:index")  # its own user's
    for name in ("os_compute_api:servers:index", CREATE, "project_reader_api",
                 "os_compute_api:os-flavor-manage:create"):
        assert not policy.allows(nobody, name), name


@pytest.mark.parametrize(("name", "reader", "member", "admin"), [
    ("os_compute_api:servers:index", True, True, True),
    ("os_compute_api:servers:show", True, True, True),
    (CREATE, False, True, True),
    ("os_compute_api:servers:delete", False, True, True),
    ("os_compute_api:os-console-output", False, True, True),
    ("os_compute_api:os-flavor-manage:create", False, False, True),
    ("os_compute_api:os-hypervisors:list", False, False, True),
    ("os_compute_api:flavors:index", True, True, True),
    ("image:get_image", True, True, True),
    ("image:add_image", False, True, True),
    ("get_network", True, True, True),
    ("create_port", False, True, True),
    ("identity:create_project", False, False, True),
])
def test_the_defaults_by_role_in_the_caller_s_own_project(name: str, reader: bool,
                                                          member: bool, admin: bool) -> None:
    policy = default_policy()
    assert [policy.allows(caller(role), name) for role in ("reader", "member", "admin")] == \
        [reader, member, admin]


# -- targets -----------------------------------------------------------------------------

def test_a_member_passes_project_member_api_only_for_its_own_project() -> None:
    policy, member = default_policy(), caller("member")
    assert policy.allows(member, "project_member_api", {"project_id": "project-a"})
    assert not policy.allows(member, "project_member_api", {"project_id": "project-b"})


def test_the_default_target_is_the_caller_s_own_project_and_user() -> None:
    policy, member = default_policy(), caller("member")
    assert policy.allows(member, "project_member_api")
    assert policy.allows(member, "os_compute_api:os-keypairs:show")
    assert not policy.allows(member, "os_compute_api:os-keypairs:show",
                             {"user_id": "user-b"})
    assert policy.allows(caller("admin"), "os_compute_api:os-keypairs:show",
                         {"user_id": "user-b"})


def test_a_target_key_the_rule_needs_but_the_target_lacks_fails() -> None:
    policy = rules(owner="user_id:%(owner_id)s", negated="not user_id:%(owner_id)s")
    assert not policy.allows(caller("admin"), "owner")
    assert not policy.allows(caller("admin"), "owner", {"user_id": "user-a"})
    assert policy.allows(caller("admin"), "owner", {"owner_id": "user-a"})
    assert policy.allows(caller("admin"), "negated")


def test_a_caller_without_a_project_never_matches_a_project_target() -> None:
    """An unscoped token's empty project does not equal an empty target project."""
    unscoped = caller("member", project="")
    assert not default_policy().allows(unscoped, "project_member_api")
    assert not default_policy().allows(unscoped, "project_member_api", {"project_id": ""})


def test_target_values_compare_as_strings() -> None:
    policy = rules(it="project_id:%(project_id)s")
    assert policy.allows(caller("reader", project="42"), "it", {"project_id": 42})


# -- override files ----------------------------------------------------------------------

def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize(("name", "text"), [
    ("policy.yaml", f'"{CREATE}": "role:admin"\n'),
    ("policy.yml", f"{CREATE}: role:admin\n"),
    ("policy.json", json.dumps({CREATE: "role:admin"})),
])
def test_an_override_file_changes_the_decision(tmp_path: Path, name: str, text: str) -> None:
    assert default_policy().allows(caller("member"), CREATE)
    policy = load_policy(_write(tmp_path, name, text))
    assert not policy.allows(caller("member"), CREATE)
    assert policy.allows(caller("admin"), CREATE)
    assert policy.rules == {**default_policy().rules, CREATE: "role:admin"}


def test_overriding_a_base_rule_changes_every_rule_built_on_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "policy.yaml", 'project_member_api: "role:admin"\n')
    policy = load_policy(path)
    assert not policy.allows(caller("member"), CREATE)
    assert not policy.allows(caller("member"), "os_compute_api:servers:delete")
    assert policy.allows(caller("member"), "os_compute_api:servers:show")


def test_readers_may_read_console_logs_with_an_override(tmp_path: Path) -> None:
    """The example of docs/policy.md."""
    name = "os_compute_api:os-console-output"
    assert not default_policy().allows(caller("reader"), name)
    policy = load_policy(_write(tmp_path, "policy.yaml",
                                f'"{name}": "rule:project_reader_or_admin"\n'))
    assert policy.allows(caller("reader"), name)
    assert not policy.allows(caller("reader"), name, {"project_id": "project-b"})


@pytest.mark.parametrize(("name", "text"), [
    ("policy.yaml", 'os_compute_api:servers:explode: "role:admin"\n'),
    ("policy.json", '{"os_compute_api:servers:explode": "role:admin"}'),
])
def test_a_file_naming_an_unknown_rule_is_invalid(tmp_path: Path, name: str,
                                                  text: str) -> None:
    with pytest.raises(Invalid, match="os_compute_api:servers:explode"):
        load_policy(_write(tmp_path, name, text))


@pytest.mark.parametrize("value", ["5", "true", "[role:admin]", "{a: b}", "", "!"])
def test_a_rule_whose_value_is_not_a_string_is_invalid(tmp_path: Path, value: str) -> None:
    """Unquoted ``!`` is a YAML tag (the value is null), so it too is refused rather
    than read as "never"."""
    with pytest.raises(Invalid, match=re.escape(repr(CREATE))):
        load_policy(_write(tmp_path, "policy.yaml", f"{CREATE}: {value}\n"))


@pytest.mark.parametrize(("name", "text"), [
    ("policy.yaml", "- role:admin\n"),
    ("policy.yaml", "role:admin\n"),
    ("policy.yaml", "42\n"),
    ("policy.json", '["role:admin"]'),
    ("policy.json", '"role:admin"'),
])
def test_a_document_that_is_not_a_mapping_is_invalid(tmp_path: Path, name: str,
                                                     text: str) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(Invalid, match="must map rule names") as raised:
        load_policy(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(("name", "text"), [
    ("policy.yaml", "admin_api: [role:admin\n"),
    ("policy.yaml", "admin_api: @\n"),
    ("policy.yaml", '"admin_api": "role:admin\n'),
    ("policy.json", '{"admin_api": "role:admin",}'),
    ("policy.json", "admin_api: role:admin\n"),
    ("policy.yaml", b"admin_api: \xff\xfe role:admin\n"),
])
def test_a_garbled_file_is_invalid_and_names_the_file(tmp_path: Path, name: str,
                                                      text: str | bytes) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(Invalid, match="cannot read the policy file") as raised:
        load_policy(path)
    assert str(path) in str(raised.value)


def test_a_missing_or_unreadable_file_is_invalid_and_names_it(tmp_path: Path) -> None:
    for path in (tmp_path / "absent.yaml", tmp_path):
        with pytest.raises(Invalid, match="cannot read the policy file") as raised:
            load_policy(path)
        assert str(path) in str(raised.value)


@pytest.mark.parametrize(("name", "text"), [
    ("policy.yaml", ""), ("policy.yaml", "\n\n"), ("policy.yaml", "# nothing yet\n"),
    ("policy.yaml", "{}\n"), ("policy.json", "{}"),
])
def test_an_empty_file_means_the_defaults(tmp_path: Path, name: str, text: str) -> None:
    assert load_policy(_write(tmp_path, name, text)).rules == default_policy().rules


def test_no_file_means_the_defaults() -> None:
    assert load_policy(None).rules == {rule.name: rule.check for rule in DEFAULT_RULES}


# -- the sample --------------------------------------------------------------------------

def test_the_sample_lists_every_default_commented_out_with_its_description() -> None:
    sample = default_policy().sample()
    lines = sample.splitlines()
    assert all(not line or line.startswith("#") for line in lines)
    for rule in DEFAULT_RULES:
        entry = f"#{json.dumps(rule.name)}: {json.dumps(rule.check)}"
        assert entry in lines, rule.name
        assert lines[lines.index(entry) - 1] == f"# {rule.description}", rule.name
    assert len([line for line in lines if line.startswith('#"')]) == len(DEFAULT_RULES)


def test_the_sample_as_printed_loads_as_the_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "policy.yaml", default_policy().sample())
    assert load_policy(path).rules == default_policy().rules


def test_the_sample_uncommented_loads_and_changes_nothing(tmp_path: Path) -> None:
    uncommented = "\n".join(line[1:] if line.startswith('#"') else line
                            for line in default_policy().sample().splitlines())
    path = _write(tmp_path, "policy.yaml", uncommented)
    assert len(yaml.safe_load(uncommented)) == len(DEFAULT_RULES)
    assert load_policy(path).rules == default_policy().rules


def test_an_edited_sample_overrides_just_the_edited_rule(tmp_path: Path) -> None:
    sample = default_policy().sample()
    entry = f"#{json.dumps(CREATE)}: {json.dumps('rule:project_member_api')}"
    assert entry in sample
    path = _write(tmp_path, "policy.yaml",
                  sample.replace(entry, f'{json.dumps(CREATE)}: "role:admin"'))
    assert load_policy(path).rules == {**default_policy().rules, CREATE: "role:admin"}


# -- actions -----------------------------------------------------------------------------

def test_an_action_nobody_declared_is_refused_even_to_an_admin() -> None:
    policy = default_policy()
    assert not policy.allows(caller("admin"), "os_compute_api:servers:explode")
    assert not policy.allows(caller("admin"), PER_BODY)
    with pytest.raises(PolicyDenied):
        policy.enforce(caller("admin"), "os_compute_api:servers:explode")


def test_public_is_always_allowed_even_without_a_token() -> None:
    assert default_policy().allows(RequestContext(), PUBLIC)
    assert rules().allows(RequestContext(), PUBLIC)
    default_policy().enforce(RequestContext(), PUBLIC)


@pytest.mark.parametrize(("name", "message"), [
    (CREATE, f"Policy doesn't allow {CREATE} to be performed."),
    ("identity:create_project", "You are not authorized to perform the requested action: "
                                "identity:create_project."),
    ("image:add_image", "You are not authorized to complete add_image action."),
    ("create_network", "rule:create_network is disallowed by policy"),
])
def test_a_denial_is_forbidden_in_the_refusing_api_s_words(name: str, message: str) -> None:
    with pytest.raises(PolicyDenied) as raised:
        default_policy().enforce(caller("reader"), name, {"project_id": "project-b"})
    assert isinstance(raised.value, Forbidden)
    assert str(raised.value) == message
    assert raised.value.action == name


def test_every_default_parses_and_every_name_is_unique() -> None:
    names = [rule.name for rule in DEFAULT_RULES]
    assert len(names) == len(set(names))
    for rule in DEFAULT_RULES:
        parse_rule(rule.check)
        assert rule.description.strip(), rule.name


def test_every_rule_reference_in_the_defaults_names_a_default() -> None:
    names = {rule.name for rule in DEFAULT_RULES}
    for rule in DEFAULT_RULES:
        for referenced in re.findall(r"rule:(\S+?)\)*(?:\s|$)", rule.check):
            assert referenced in names, (rule.name, referenced)


def test_every_body_action_names_a_default_rule() -> None:
    names = {rule.name for rule in DEFAULT_RULES}
    assert set(SERVER_ACTIONS.values()) <= names
    for body_action in ("add_host", "remove_host", "set_metadata"):
        assert aggregate_rule(body_action) in names


# -- the app-wide route check ------------------------------------------------------------

def _request(endpoint: object, ctx: RequestContext | None,
             path_params: dict[str, str] | None = None) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(deps=SimpleNamespace(policy=default_policy())))
    state = {} if ctx is None else {"ctx": ctx}
    return Request({"type": "http", "endpoint": endpoint, "app": app, "state": state,
                    "path_params": path_params or {}})


async def test_a_route_without_an_action_refuses_even_an_admin() -> None:
    async def forgot_its_action() -> None: ...

    with pytest.raises(PolicyDenied, match="forgot_its_action"):
        await enforce_route(_request(forgot_its_action, caller("admin")))


@pytest.mark.parametrize("name", [PUBLIC, PER_BODY])
async def test_public_and_per_body_routes_pass_the_route_check(name: str) -> None:
    @action(name)
    async def endpoint() -> None: ...

    await enforce_route(_request(endpoint, None))


async def test_the_route_check_targets_the_path_s_project() -> None:
    @action("os_compute_api:os-quota-sets:show")
    async def show_quotas() -> None: ...

    await enforce_route(_request(show_quotas, caller("reader"), {"project_id": "project-a"}))
    await enforce_route(_request(show_quotas, caller("admin"), {"project_id": "project-b"}))
    with pytest.raises(PolicyDenied, match="os-quota-sets:show"):
        await enforce_route(_request(show_quotas, caller("member"),
                                     {"project_id": "project-b"}))


# -- docs/policy.md ----------------------------------------------------------------------

def _documented_rules() -> list[tuple[str, str]]:
    """The ``| `name` | `check` | ... |`` rows of the doc's section "Default rules"."""
    _, heading, section = DOC.read_text().partition("\n## Default rules\n")
    assert heading, "docs/policy.md has no section '## Default rules'"
    return re.findall(r"^\| `([^`]+)` \| `([^`]*)` \|", section, re.MULTILINE)


def test_the_doc_lists_every_default_rule_with_its_default_check() -> None:
    """Regenerate the table when this fails (docs/policy.md says how)."""
    assert _documented_rules() == [(rule.name, rule.check) for rule in DEFAULT_RULES]


def test_the_doc_s_examples_are_valid_override_files(tmp_path: Path) -> None:
    blocks = re.findall(r"^```(yaml|json)\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 3
    for number, (kind, text) in enumerate(blocks):
        policy = load_policy(_write(tmp_path, f"example{number}.{kind}", text))
        assert policy.rules != default_policy().rules, text
