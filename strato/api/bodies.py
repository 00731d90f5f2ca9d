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

from strato.api.errors import ApiFault
from strato.domain.errors import Invalid

__all__ = ["parse_model", "read_json"]

M = TypeVar("M", bound=BaseModel)

# Nova caps request bodies (osapi_max_request_body_size, 112 KiB); the largest legal
# field, user_data, is 64 KiB of base64.
MAX_BODY = 114688


async def read_json(request: Request) -> Any:
    """The request body as JSON; ``Invalid`` when it is missing, too big or malformed."""
    raw = bytearray()
    # Read with a cap rather than request.body(), which would buffer any size.
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ApiFault(413, "Request is too large.")
    if not raw.strip():
        raise Invalid("Malformed request body: the body is empty.")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers bad JSON and bad UTF-8; RecursionError absurd nesting.
        raise Invalid("Malformed request body") from None


def parse_model(model: type[M], data: Any) -> M:
    """Validate ``data`` into ``model``; ``Invalid`` naming the first bad field."""
    if not isinstance(data, dict):
        raise Invalid("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid(describe(exc.errors()[0])) from None


def describe(error: ErrorDetails) -> str:
    """One pydantic error in the words Nova's JSON-schema validation uses."""
    loc = [str(part) for part in error["loc"]]
    last = loc[-1] if loc else "body"
    if error["type"] == "missing":
        return f"'{last}' is a required property"
    if error["type"] == "extra_forbidden":
        return f"Additional properties are not allowed ('{last}' was unexpected)"
    message = error["msg"].removeprefix("Value error, ")
    value = _short(error.get("input"))
    return f"Invalid input for field/attribute {'.'.join(loc)}. Value: {value}. {message}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
