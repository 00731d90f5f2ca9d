"""The one error tree of strato.

    StratoError
    ├── NotFound                 a named thing does not exist (or is not visible)
    ├── Conflict                 the request clashes with the current state
    │   └── InvalidState         an instance is not in a state that allows the action
    ├── Invalid                  the request itself is wrong
    │   └── InvalidReference     the request names something unusable (image, flavor)
    ├── Forbidden                the caller may not do this
    ├── OverQuota                the project would exceed a limit
    ├── NoValidHost              no host can take the instance; carries the reasons
    ├── Unavailable              a service or dependency cannot answer now (timeouts)
    └── BuildFailed              a build on one host failed
        ├── RescheduleBuild      ... in a way another host may not repeat (retryable)
        └── AbortBuild           ... in a way every host would repeat (not retryable)

The classes carry no HTTP status: ``strato.api.errors`` maps them once. They cross the bus
by class name (see :func:`error_from_wire`), so only these types travel between services.
"""

from __future__ import annotations

__all__ = [
    "AbortBuild", "BuildFailed", "Conflict", "Forbidden", "Invalid", "InvalidReference",
    "InvalidState", "NoValidHost", "NotFound", "OverQuota", "RescheduleBuild", "StratoError",
    "Unavailable", "error_from_wire", "error_to_wire",
]


class StratoError(Exception):
    """Base of every error strato raises on purpose."""

    def __init__(self, message: str = "", *, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message or self.__class__.__name__
        # More than the message, for operators only (a NoValidHost's per-host reasons).
        self.details = details

    def __str__(self) -> str:
        return self.message


class NotFound(StratoError):
    pass


class Conflict(StratoError):
    pass


class InvalidState(Conflict):
    pass


class Invalid(StratoError):
    pass


class InvalidReference(Invalid):
    pass


class Forbidden(StratoError):
    pass


class OverQuota(StratoError):
    pass


class NoValidHost(StratoError):
    pass


class Unavailable(StratoError):
    pass


class BuildFailed(StratoError):
    pass


class RescheduleBuild(BuildFailed):
    pass


class AbortBuild(BuildFailed):
    pass


_BY_NAME: dict[str, type[StratoError]] = {
    cls.__name__: cls
    for cls in (StratoError, NotFound, Conflict, InvalidState, Invalid, InvalidReference,
                Forbidden, OverQuota, NoValidHost, Unavailable, BuildFailed, RescheduleBuild,
                AbortBuild)
}


def error_to_wire(exc: StratoError) -> dict[str, str]:
    """The JSON form of a domain error, as it crosses the bus. A subclass defined
    elsewhere (an adapter's ``InspectError(Invalid)``) travels as its nearest ancestor in
    this tree, so the receiver still sees an ``Invalid``."""
    known = next(c for c in type(exc).__mro__ if c in _BY_NAME.values())
    wire = {"type": known.__name__, "message": exc.message}
    if exc.details is not None:
        wire["details"] = exc.details
    return wire


def error_from_wire(data: dict[str, str]) -> StratoError:
    """Rebuild a domain error from :func:`error_to_wire` output; unknown types degrade to
    :class:`StratoError` so a newer peer never crashes an older one."""
    cls = _BY_NAME.get(data.get("type", ""), StratoError)
    return cls(data.get("message", ""), details=data.get("details"))
