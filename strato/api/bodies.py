"""Reading request bodies: JSON parsing and pydantic validation with Nova's messages.

Routes never let FastAPI validate a body (its errors are 422s in its own shape); they
call :func:`read_json` and then :func:`parse_model`, and every failure becomes a domain
:class:`~strato.domain.errors.Invalid` that ``strato.api.errors`` answers as a 400.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import Request

from strato.domain.errors import Invalid

__all__ = ["nul_message", "parse_model", "read_json", "refuse_nul"]

M = TypeVar("M", bound=BaseModel)

async def read_json(request: Request) -> Any:
    """The request body as JSON; ``Invalid`` when it is missing or malformed.

    The body cap in front of every route (``strato.api.bodylimit``, Nova's 112 KiB
    ``osapi_max_request_body_size`` by default) bounds what this buffers: a larger body
    is a 413 before it is read.
    """
    raw = await request.body()
    if not raw.strip():
        raise Invalid("Malformed request body: the body is empty.")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers bad JSON and bad UTF-8; RecursionError absurd nesting.
        raise Invalid("Malformed request body") from None
    return refuse_nul(data)


def refuse_nul(data: Any) -> Any:
    """``data`` (parsed JSON) unchanged; ``Invalid`` naming the first string, key or
    value, that holds a NUL character. PostgreSQL cannot store one in text and SQLite
    would store what other tools cut short, so no field may hold one, on any backend.
    Iterative, so any depth the JSON parser accepted is walked without recursion."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise Invalid(nul_message(path or "body"))
        elif isinstance(value, dict):
            for key, item in value.items():
                inner = f"{path}.{key}" if path else str(key)
                if "\x00" in key:
                    raise Invalid(nul_message(inner))
                stack.append((inner, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{index}" if path else str(index), item)
                         for index, item in enumerate(value))
    return data


def nul_message(field: str) -> str:
    """Nova's words for a value that holds a NUL character (``\\u0000``); ``field`` is
    shown with its own NULs spelled out, and cut short when long."""
    shown = field.replace("\x00", "\\u0000")
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return (f"Invalid input for field/attribute {shown}. "
            "Control characters are not allowed: the value holds a NUL character (\\u0000).")


def parse_model(model: type[M], data: Any) -> M:
    """Validate ``data`` into ``model``; ``Invalid`` naming the first bad field."""
    if not isinstance(data, dict):
        raise Invalid("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # A union reports one error per member; the deepest is the most specific
        # ("networks.0.uuid: not a string" rather than "networks: not 'auto'").
        error = max(exc.errors(), key=lambda e: len(e["loc"]))
        raise Invalid(describe(error, data)) from None


def describe(error: ErrorDetails, data: Any) -> str:
    """One pydantic error in the words Nova's JSON-schema validation uses."""
    if error["type"] == "missing":
        return f"'{error['loc'][-1]}' is a required property"
    if error["type"] == "extra_forbidden":
        return f"Additional properties are not allowed ('{error['loc'][-1]}' was unexpected)"
    message = error["msg"].removeprefix("Value error, ").split(" or instance of ")[0]
    path = _field_path(error["loc"], data)
    if not path:  # a whole-model check, such as min_count <= max_count
        return message
    return (f"Invalid input for field/attribute {path}. Value: {_short(error.get('input'))}. "
            f"{message}")


def _field_path(loc: tuple[int | str, ...], data: Any) -> str:
    """The parts of ``loc`` that are keys or indexes of ``data``; pydantic mixes in the
    names of union members ("constrained-str", "literal[...]"), which mean nothing to a
    client."""
    path: list[str] = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            continue
        path.append(str(part))
    return ".".join(path)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
