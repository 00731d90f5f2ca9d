"""HTTP ``Range`` requests on image data (RFC 9110, one range per request, as Glance)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from strato.api.errors import ApiFault

__all__ = ["ByteRange", "parse_range"]

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive of a ``size``-byte image."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` header of the 206 answer."""
        return f"bytes {self.start}-{self.end}/{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range ``header`` asks for in ``size`` bytes: ``None`` for the whole image, else
    one :class:`ByteRange`.
    ``bytes=a-b``, ``bytes=a-`` and the suffix form ``bytes=-n`` are understood. A header
    that cannot be parsed (another unit, several ranges, garbage) is ignored and the whole
    image is served (RFC 9110 section 14.2; Glance does the same through webob). A
    well-formed range outside the image is a 416 naming the size."""
    if header is None:
        return None
    match = _RANGE.match(header)
    if match is None or not (match.group(1) or match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return ByteRange(max(size - suffix, 0), size - 1, size)
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range-spec: ignored like any unparsable header
    end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        raise _unsatisfiable(size)
    return ByteRange(start, end, size)


def _unsatisfiable(size: int) -> ApiFault:
    return ApiFault(416, "Requested range not satisfiable.",
                    headers={"Content-Range": f"bytes */{size}"})
