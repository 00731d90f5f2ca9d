"""Policy: who may call which API action, decided in one place.

Every route names its action with :func:`action` (``os_compute_api:servers:create``,
``get_network``, ``identity:create_project``, ...). One app-wide dependency,
:func:`enforce_route`, evaluates that action's rule before the route runs; a route with
no action refuses everyone, so a new route cannot slip out of policy by omission.

Rules use oslo.policy's language, so an operator's existing habits carry over::

    role:admin                        the caller holds the role (or one implying it)
    project_id:%(project_id)s         a caller attribute equals a target attribute
    user_id:%(user_id)s
    rule:project_member_api           another rule, by name
    @  /  ""                          always; ``!`` never
    A and B, A or B, not A, ( ... )

Roles imply others as Keystone's bootstrap sets them up: ``admin`` implies ``member``,
which implies ``reader``. An operator overrides any rule with a YAML or JSON file of
``name: "check string"`` (setting ``identity.policy_file``); unknown names and
unparsable rules in that file stop the API from starting, with the reason.

The target of a route's check is the caller's own project and user, overlaid with the
route's path parameters (``/os-quota-sets/{project_id}`` checks the named project).
Resources of other projects are not the policy's business: the queries filter them out,
so they are a 404 (as Nova, Glance and Neutron answer), never a 403.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import yaml
from starlette.requests import Request

from strato.domain.context import RequestContext
from strato.domain.errors import Forbidden, Invalid

__all__ = ["PER_BODY", "PUBLIC", "Policy", "PolicyDenied", "RuleDefault", "action", "enforce_route",
           "parse_rule"]

F = TypeVar("F", bound=Callable[..., object])

# Routes anyone may call, even without a token (version documents, issuing a token).
PUBLIC = "public"
# Routes whose body names the action (``POST /servers/{id}/action``): the route calls
# :meth:`Policy.enforce` itself once it has read which action is asked for.
PER_BODY = "per-body"

_IMPLIED_ROLES: Mapping[str, tuple[str, ...]] = {"admin": ("member", "reader"),
                                                 "member": ("reader",)}


class PolicyDenied(Forbidden):
    """The caller's roles do not allow this action. The message names the action in the
    form of the API that refused it."""

    def __init__(self, action_name: str) -> None:
        super().__init__(_denial(action_name))
        self.action = action_name


def _denial(name: str) -> str:
    if name.startswith("os_compute_api:"):
        return f"Policy doesn't allow {name} to be performed."
    if name.startswith("identity:"):
        return f"You are not authorized to perform the requested action: {name}."
    if name.startswith("image:"):
        return f"You are not authorized to complete {name.removeprefix('image:')} action."
    return f"rule:{name} is disallowed by policy"


@dataclass(frozen=True, slots=True)
class RuleDefault:
    """One action's default rule, documented (``strato policy sample`` prints them)."""

    name: str
    check: str
    description: str


# -- the rule language -------------------------------------------------------------------

Creds = Mapping[str, object]
Target = Mapping[str, object]
Check = Callable[[Creds, Target, "Policy"], bool]

_SUBST = re.compile(r"^%\((\w+)\)s$")


def parse_rule(text: str, refs: set[str] | None = None) -> Check:
    """A check string -> a callable. ``Invalid`` with the reason when it does not parse.
    ``refs``, when given, receives the names of the rules it references (``rule:x``)."""
    tokens = _tokens(text)
    if not tokens:
        return lambda _c, _t, _p: True
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def expr() -> Check:
        left = term()
        while peek() == "or":
            take()
            left = _either(left, term())
        return left

    def term() -> Check:
        left = factor()
        while peek() == "and":
            take()
            left = _both(left, factor())
        return left

    def factor() -> Check:
        token = peek()
        if token is None:
            raise Invalid(f"policy rule {text!r} ends too early")
        take()
        if token == "not":
            inner = factor()
            return lambda c, t, p: not inner(c, t, p)
        if token == "(":
            inner = expr()
            if peek() != ")":
                raise Invalid(f"policy rule {text!r}: a '(' is never closed")
            take()
            return inner
        if refs is not None and token.startswith("rule:"):
            refs.add(token.removeprefix("rule:"))
        return _atom(token, text)

    check = expr()
    if pos != len(tokens):
        raise Invalid(f"policy rule {text!r}: unexpected {tokens[pos]!r}")
    return check


def _tokens(text: str) -> list[str]:
    """Words split on whitespace, with parentheses peeled off their ends (as oslo.policy
    does, so ``%(project_id)s`` stays one word)."""
    tokens: list[str] = []
    for word in text.split():
        closing = 0
        while word.startswith("("):
            tokens.append("(")
            word = word[1:]
        while word.endswith(")") and word.count(")") > word.count("("):
            word = word[:-1]
            closing += 1
        if word:
            tokens.append(word)
        tokens.extend(")" * closing)
    return tokens


def _either(a: Check, b: Check) -> Check:
    return lambda c, t, p: a(c, t, p) or b(c, t, p)


def _both(a: Check, b: Check) -> Check:
    return lambda c, t, p: a(c, t, p) and b(c, t, p)


def _atom(token: str, text: str) -> Check:
    if token == "@":
        return lambda _c, _t, _p: True
    if token == "!":
        return lambda _c, _t, _p: False
    kind, sep, value = token.partition(":")
    if not sep or not kind or not value:
        raise Invalid(f"policy rule {text!r}: cannot read {token!r} (expected kind:value)")
    if kind == "rule":
        return lambda c, t, p: p.check_rule(value, c, t)
    if kind == "role":
        role = value.lower()
        return lambda c, _t, _p: role in cast(frozenset[str], c["roles"])
    subst = _SUBST.match(value)
    if subst is not None:
        key = subst.group(1)
        return lambda c, t, _p: key in t and c.get(kind) is not None and \
            str(c.get(kind)) == str(t[key])
    literal = value.strip("'\"")
    if literal.lower() in ("true", "false"):
        wanted = literal.lower() == "true"
        return lambda c, _t, _p: c.get(kind) is not None and bool(c.get(kind)) is wanted
    return lambda c, _t, _p: c.get(kind) is not None and str(c.get(kind)) == literal


# -- the engine --------------------------------------------------------------------------

class Policy:
    """The rules in force: the defaults, overlaid with the operator's file."""

    def __init__(self, defaults: Iterable[RuleDefault],
                 overrides: Mapping[str, str] | None = None) -> None:
        self.defaults = {rule.name: rule for rule in defaults}
        self.rules: dict[str, str] = {name: rule.check for name, rule in self.defaults.items()}
        for name, check in (overrides or {}).items():
            if name not in self.rules:
                raise Invalid(f"policy file names an unknown rule {name!r}")
            if not isinstance(check, str):
                raise Invalid(f"policy rule {name!r} must be a string, not {check!r}")
            self.rules[name] = check
        self._checks: dict[str, Check] = {}
        refs: dict[str, set[str]] = {}
        for name, check in self.rules.items():
            refs[name] = set()
            try:
                self._checks[name] = parse_rule(check, refs[name])
            except Invalid as exc:
                raise Invalid(f"policy rule {name!r}: {exc}") from exc
            unknown = sorted(refs[name] - self.rules.keys())
            if unknown:
                raise Invalid(f"policy rule {name!r} refers to unknown rule(s) "
                              f"{', '.join(unknown)}")
        _refuse_cycles(refs)

    @classmethod
    def from_file(cls, defaults: Iterable[RuleDefault], path: Path | None) -> Policy:
        """The defaults, overridden by ``path`` (YAML or JSON; ``None``: no file)."""
        if path is None:
            return cls(defaults)
        try:
            text = path.read_text(encoding="utf-8")
            loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise Invalid(f"cannot read the policy file {path}: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise Invalid(f"the policy file {path} must map rule names to check strings")
        try:
            return cls(defaults, cast(dict[str, str], loaded))
        except Invalid as exc:
            raise Invalid(f"the policy file {path}: {exc}") from exc

    def check_rule(self, name: str, creds: Creds, target: Target) -> bool:
        check = self._checks.get(name)
        return check is not None and check(creds, target, self)

    def allows(self, ctx: RequestContext, action_name: str,
               target: Mapping[str, object] | None = None) -> bool:
        """Whether ``ctx`` may perform ``action_name`` on ``target`` (default: the
        caller's own project and user)."""
        if action_name == PUBLIC:
            return True
        if action_name not in self._checks:
            return False  # an action nobody declared is nobody's
        return self.check_rule(action_name, credentials(ctx), _target(ctx, target))

    def enforce(self, ctx: RequestContext, action_name: str,
                target: Mapping[str, object] | None = None) -> None:
        """Raise :class:`PolicyDenied` unless ``ctx`` may perform ``action_name``."""
        if not self.allows(ctx, action_name, target):
            raise PolicyDenied(action_name)

    def sample(self) -> str:
        """Every rule with its description and default, as a YAML file an operator can
        start from (every line commented out)."""
        lines = []
        for rule in self.defaults.values():
            lines.append(f"# {rule.description}")
            lines.append(f"#{json.dumps(rule.name)}: {json.dumps(rule.check)}")
            lines.append("")
        return "\n".join(lines)


def _refuse_cycles(refs: Mapping[str, set[str]]) -> None:
    """``Invalid`` naming the loop when rules refer to each other in a circle (it would
    recurse without end on the first request)."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            loop = " -> ".join([*path[path.index(name):], name])
            raise Invalid(f"policy rules form a cycle: {loop}")
        if name in done:
            return
        for ref in sorted(refs.get(name, ())):
            visit(ref, [*path, name])
        done.add(name)

    for name in refs:
        visit(name, [])


def credentials(ctx: RequestContext) -> dict[str, object]:
    """What a rule can test about the caller."""
    roles = {role.lower() for role in ctx.roles}
    for role in list(roles):
        roles.update(_IMPLIED_ROLES.get(role, ()))
    return {"roles": frozenset(roles), "user_id": ctx.user_id or None,
            "project_id": ctx.project_id or None, "is_admin": ctx.is_admin}


def _target(ctx: RequestContext, target: Mapping[str, object] | None) -> dict[str, object]:
    base: dict[str, object] = {"project_id": ctx.project_id, "user_id": ctx.user_id}
    base.update(target or {})
    return base


# -- routes ------------------------------------------------------------------------------

_ACTION_ATTR = "__strato_policy_action__"


def action(name: str) -> Callable[[F], F]:
    """Name the policy action of a route; put it under the ``@router.<method>(...)``
    line. ``PUBLIC`` for routes that need no token at all."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _ACTION_ATTR, name)
        return endpoint

    return mark


def action_of(endpoint: object) -> str | None:
    """The action a route declared, or ``None``."""
    return cast(str | None, getattr(endpoint, _ACTION_ATTR, None))


async def enforce_route(request: Request) -> None:
    """App-wide dependency: check the route's declared action (see the module doc)."""
    endpoint = request.scope.get("endpoint")
    name = action_of(endpoint)
    if name in (PUBLIC, PER_BODY):
        return
    policy = cast(Policy, request.app.state.deps.policy)
    ctx = cast(RequestContext, request.state.ctx)
    if name is None:
        raise PolicyDenied(getattr(endpoint, "__name__", "unknown"))
    target = {key: str(value) for key, value in request.path_params.items()}
    policy.enforce(ctx, name, target)
