"""Server action bodies (``POST /v2.1/servers/{id}/action``) -> their arguments
(microversion 2.1): pure, synchronous wire parsing, as Nova's JSON schemas
(nova/api/openstack/compute/schemas/) have them. ``strato.api.servers.actions`` does
the actions; ``strato.api.openapi`` documents the bodies from these models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from strato.api.bodies import parse_model
from strato.api.fields import Name, NovaBool
from strato.api.servers.schemas import (
    MAX_INJECTED_FILES,
    _check_ip,
    _check_metadata,
    _PersonalityBody,
)
from strato.domain.errors import Invalid
from strato.domain.requests import InjectedFile

__all__ = ["RebuildServer", "no_arguments", "parse_action", "parse_console_length",
           "parse_lock", "parse_reboot", "parse_rebuild"]

_Strict = ConfigDict(strict=True, extra="forbid", frozen=True)


def parse_action(body: Any) -> tuple[str, Any]:
    """A server action body: exactly one key, the action's name, and its arguments."""
    if not isinstance(body, dict) or len(body) != 1:
        raise Invalid("An action body must be an object with exactly one action.")
    [(name, args)] = body.items()
    return str(name), args


def no_arguments(action: str, args: Any) -> None:
    """Actions without arguments take ``null`` (what the SDKs send) or ``{}``."""
    if args is None or args == {}:
        return
    if isinstance(args, dict):
        raise Invalid(f"Invalid input for {action}: Additional properties are not allowed "
                      f"({', '.join(repr(k) for k in args)} was unexpected)")
    raise Invalid(f"Invalid input for {action}: {args!r} is not of type 'object', 'null'")


# --- reboot -----------------------------------------------------------------------------

class _Reboot(BaseModel):
    model_config = _Strict

    type: Literal["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]


class _RebootBody(BaseModel):
    model_config = _Strict

    reboot: _Reboot


def parse_reboot(args: Any) -> bool:
    """``reboot``'s arguments: whether the reboot is hard (``type`` HARD, any case)."""
    return parse_model(_RebootBody, {"reboot": args}).reboot.type.upper() == "HARD"


# --- lock -------------------------------------------------------------------------------

class _Lock(BaseModel):
    model_config = _Strict

    locked_reason: Annotated[str, Field(min_length=1, max_length=255)] | None = None


class _LockBody(BaseModel):
    model_config = _Strict

    lock: _Lock | None


def parse_lock(args: Any) -> str | None:
    """``lock``'s arguments (``null`` or ``{locked_reason}``): the reason, if given."""
    body = parse_model(_LockBody, {"lock": args}).lock
    return None if body is None else body.locked_reason


# --- rebuild ----------------------------------------------------------------------------

class _Rebuild(BaseModel):
    model_config = _Strict

    image_ref: str = Field(alias="imageRef")
    name: Name | None = None
    metadata: Annotated[dict[str, str], AfterValidator(_check_metadata)] | None = None
    admin_pass: str | None = Field(None, alias="adminPass")
    preserve_ephemeral: NovaBool = False
    personality: Annotated[list[_PersonalityBody],
                           Field(max_length=MAX_INJECTED_FILES)] = []
    disk_config: Literal["AUTO", "MANUAL"] | None = Field(None, alias="OS-DCF:diskConfig")
    access_ip_v4: Annotated[str, AfterValidator(_check_ip(4))] | None = Field(
        None, alias="accessIPv4")
    access_ip_v6: Annotated[str, AfterValidator(_check_ip(6))] | None = Field(
        None, alias="accessIPv6")


class _RebuildBody(BaseModel):
    model_config = _Strict

    rebuild: _Rebuild


@dataclass(frozen=True, slots=True, kw_only=True)
class RebuildServer:
    """A validated ``rebuild``: the image reference (looked up by the action), the new
    name and metadata when given, and the files to inject. (``preserve_ephemeral``,
    ``OS-DCF:diskConfig`` and the access IPs are accepted and ignored.)"""

    image_ref: str
    name: str | None = None
    metadata: dict[str, str] | None = None
    admin_pass: str | None = None
    files: tuple[InjectedFile, ...] = ()


def parse_rebuild(args: Any) -> RebuildServer:
    """``rebuild``'s arguments; ``Invalid`` (400) names the first bad field."""
    body = parse_model(_RebuildBody, {"rebuild": args}).rebuild
    return RebuildServer(
        image_ref=body.image_ref, name=body.name,
        metadata=None if body.metadata is None else dict(body.metadata),
        admin_pass=body.admin_pass,
        files=tuple(InjectedFile(path=f.path, contents=f.contents) for f in body.personality))


# --- os-getConsoleOutput ----------------------------------------------------------------

def parse_console_length(args: Any) -> int | None:
    """``os-getConsoleOutput``'s ``length``: lines from the end; absent, null or -1 for
    all (Nova also takes the number as a string)."""
    if args is None:
        args = {}
    if not isinstance(args, dict) or set(args) - {"length"}:
        raise Invalid("Invalid input for os-getConsoleOutput: only 'length' is allowed.")
    length = args.get("length")
    if length is None:
        return None
    if isinstance(length, bool) or not isinstance(length, int | str):
        raise Invalid("Invalid input for field/attribute length: must be an integer.")
    try:
        value = int(length)
    except ValueError:
        raise Invalid("Invalid input for field/attribute length: must be an integer."
                      ) from None
    if value < -1:
        raise Invalid("Invalid input for field/attribute length: must be -1 or more.")
    return None if value == -1 else value
