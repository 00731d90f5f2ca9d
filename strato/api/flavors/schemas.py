"""``POST /v2.1/flavors`` bodies and the flavor list query -> domain values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.datastructures import QueryParams

from strato.api.bodies import parse_model
from strato.api.fields import Name, NonNegativeInt, NovaBool, PositiveFloat, PositiveInt
from strato.domain.context import RequestContext
from strato.domain.errors import Invalid
from strato.domain.ids import FlavorId, new_uuid
from strato.domain.resources import Flavor

__all__ = ["FlavorFilter", "flavor_from_create", "parse_filter"]

_ID_RE = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )$")


def _check_id(value: str | int | None) -> str | int | None:
    if isinstance(value, str) and not (len(value) <= 255 and _ID_RE.fullmatch(value)):
        raise ValueError("Flavor id may use letters, digits, '.', '_', '-' and inner spaces")
    return value


class _FlavorBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: Name
    id: Annotated[int | str | None, AfterValidator(_check_id)] = None
    ram: PositiveInt
    vcpus: PositiveInt
    disk: NonNegativeInt
    ephemeral: NonNegativeInt = Field(0, alias="OS-FLV-EXT-DATA:ephemeral")
    swap: NonNegativeInt | Literal[""] = 0  # Nova lets "" mean no swap
    rxtx_factor: PositiveFloat = 1.0
    is_public: NovaBool = Field(True, alias="os-flavor-access:is_public")


class _CreateFlavor(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    flavor: _FlavorBody


def flavor_from_create(body: Any) -> Flavor:
    """The flavor a ``POST /v2.1/flavors`` body describes (a fresh UUID id if none)."""
    fields = parse_model(_CreateFlavor, body).flavor
    flavor_id = new_uuid() if fields.id is None else str(fields.id)
    return Flavor(id=FlavorId(flavor_id), name=fields.name, vcpus=fields.vcpus,
                  memory_mb=fields.ram, root_gb=fields.disk, ephemeral_gb=fields.ephemeral,
                  swap_mb=fields.swap or 0, rxtx_factor=fields.rxtx_factor,
                  is_public=fields.is_public)


@dataclass(frozen=True, slots=True, kw_only=True)
class FlavorFilter:
    """What a flavor listing shows: ``is_public`` None means public and private."""

    is_public: bool | None = True
    include_disabled: bool = False
    min_ram: int = 0
    min_disk: int = 0

    def matches(self, flavor: Flavor) -> bool:
        """Whether ``flavor`` belongs in the listing (the repository already applied the
        size filters; visibility and disabled are checked here)."""
        if self.is_public is not None and flavor.is_public != self.is_public:
            return False
        return self.include_disabled or not flavor.disabled


def parse_filter(params: QueryParams, ctx: RequestContext) -> FlavorFilter:
    """The listing filter from the query, as Nova: only an admin may ask for private
    flavors (``is_public=false`` or ``none``); others see public, enabled ones."""
    min_ram = _non_negative(params, "minRam")
    min_disk = _non_negative(params, "minDisk")
    if not ctx.is_admin:
        return FlavorFilter(min_ram=min_ram, min_disk=min_disk)
    return FlavorFilter(is_public=_is_public(params.get("is_public")), include_disabled=True,
                        min_ram=min_ram, min_disk=min_disk)


def _non_negative(params: QueryParams, name: str) -> int:
    raw = params.get(name)
    if raw is None:
        return 0
    if not (raw.isascii() and raw.isdigit()):
        raise Invalid(f"Invalid {name} filter [{raw}]")
    return int(raw)


def _is_public(raw: str | None) -> bool | None:
    if raw is None:
        return True
    if raw.lower() == "none":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "on", "yes", "t", "y"):
        return True
    if lowered in ("false", "0", "off", "no", "f", "n"):
        return False
    raise Invalid(f"Invalid is_public filter [{raw}]")
