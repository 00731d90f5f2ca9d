"""Nova's JSON-schema parameter types (``nova/api/validation/parameter_types.py``) as
pydantic annotated types, so each schema reads like Nova's and rejects what Nova rejects.

Models using these run in strict mode: a JSON string is never silently an integer,
except where Nova explicitly accepts digit strings (counts, flavor sizes) or the
word forms of booleans ("true", "on", "1", ...).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

__all__ = ["MAX_DB_INT", "Name", "NonNegativeInt", "NovaBool", "PositiveInt", "PositiveFloat"]

# The largest value the integer columns hold (Nova's db.MAX_INT): larger is a 400, not
# a database overflow.
MAX_DB_INT = 2**31 - 1

_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})


def _digits_to_int(value: Any) -> Any:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value


def _number_to_float(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value) if value.replace(".", "", 1).isdigit() else value
        except ValueError:
            return value
    return value


def _words_to_bool(value: Any) -> Any:
    if isinstance(value, str):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
    return value


def _check_name(value: str) -> str:
    if value.strip() != value:
        raise ValueError("Leading or trailing whitespace is not allowed")
    if not value.isprintable():
        raise ValueError("Control characters are not allowed")
    return value


PositiveInt = Annotated[int, BeforeValidator(_digits_to_int), Field(ge=1, le=MAX_DB_INT)]
NonNegativeInt = Annotated[int, BeforeValidator(_digits_to_int), Field(ge=0, le=MAX_DB_INT)]
PositiveFloat = Annotated[float, BeforeValidator(_number_to_float),
                          Field(gt=0, le=3.40282e38, allow_inf_nan=False)]
NovaBool = Annotated[bool, BeforeValidator(_words_to_bool)]
# A resource name: 1 to 255 printable characters, no leading or trailing whitespace.
Name = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_check_name)]
