"""``PUT /os-quota-sets/{id}`` and ``PUT /os-quota-class-sets/{id}`` bodies -> limits.

Nova's schema: each value an integer (or a string of digits) from -1 (unlimited) to
the database's largest integer; unknown keys are a 400; ``force`` (quota sets only)
skips the check that a new limit is not below the project's usage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from strato.api.bodies import parse_model
from strato.api.fields import MAX_DB_INT, NovaBool
from strato.domain.quotas import UNLIMITED

__all__ = ["QuotaUpdate", "parse_class_update", "parse_update"]

_SIGNED_DIGITS = re.compile(r"^-?[0-9]+$")


def _digits_to_int(value: Any) -> Any:
    if isinstance(value, str) and _SIGNED_DIGITS.fullmatch(value):
        return int(value)
    return value


Limit = Annotated[int, BeforeValidator(_digits_to_int), Field(ge=UNLIMITED, le=MAX_DB_INT)]

_Strict = ConfigDict(strict=True, extra="forbid", frozen=True)


class _Limits(BaseModel):
    """One optional value per resource of :data:`strato.domain.quotas.RESOURCES`."""

    model_config = _Strict

    instances: Limit | None = None
    cores: Limit | None = None
    ram: Limit | None = None
    metadata_items: Limit | None = None
    injected_files: Limit | None = None
    injected_file_content_bytes: Limit | None = None
    injected_file_path_bytes: Limit | None = None
    key_pairs: Limit | None = None
    server_groups: Limit | None = None
    server_group_members: Limit | None = None
    fixed_ips: Limit | None = None
    floating_ips: Limit | None = None
    security_groups: Limit | None = None
    security_group_rules: Limit | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        # A field is optional, but null is not a value (Nova's schema says so).
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None:
                    raise ValueError(f"Invalid input for field/attribute {key}. Value: None. "
                                     "None is not of type 'integer', 'string'")
        return data

    def values(self) -> dict[str, int]:
        """The resources the body sets."""
        return {name: value for name in _Limits.model_fields
                if (value := getattr(self, name)) is not None}


class _QuotaSet(_Limits):
    force: NovaBool = False


class _QuotaSetBody(BaseModel):
    model_config = _Strict

    quota_set: _QuotaSet


class _QuotaClassSetBody(BaseModel):
    model_config = _Strict

    quota_class_set: _Limits


# The resources a body may set (the tests check these are the domain's resources).
SETTABLE: tuple[str, ...] = tuple(_Limits.model_fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaUpdate:
    """A validated quota set update."""

    limits: dict[str, int]
    force: bool = False


def parse_update(body: Any) -> QuotaUpdate:
    """``{"quota_set": {...}}``; ``Invalid`` (400) names the first bad field."""
    quota_set = parse_model(_QuotaSetBody, body).quota_set
    return QuotaUpdate(limits=quota_set.values(), force=quota_set.force)


def parse_class_update(body: Any) -> dict[str, int]:
    """``{"quota_class_set": {...}}``; ``Invalid`` (400) names the first bad field."""
    return parse_model(_QuotaClassSetBody, body).quota_class_set.values()
