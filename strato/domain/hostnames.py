"""Guest hostnames derived from server names, the way Nova derives them.

A server's display name is free text ("My Web Server #1", "Ünïcode"); the hostname the
guest is given (metadata, config drive, DHCP) must be a DNS label a resolver and a guest's
init scripts accept. :func:`sanitize_hostname` follows ``nova.utils.sanitize_hostname``
and :func:`hostname_for` applies Nova's naming for one instance of a multi-create.
"""

from __future__ import annotations

import re
import unicodedata

from strato.domain.errors import Invalid

__all__ = ["FALLBACK_HOSTNAME", "HOSTNAME_PATTERN", "MAX_HOSTNAME_LENGTH", "hostname_for",
           "sanitize_hostname"]

MAX_HOSTNAME_LENGTH = 63
"""The longest DNS label (RFC 1035); Linux, Windows and dnsmasq all accept it."""

FALLBACK_HOSTNAME = "server"
"""The hostname used when neither the name nor the default leaves anything usable."""

HOSTNAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
"""What every hostname this module returns matches."""

_SEPARATORS = re.compile(r"[ _]")
_DISALLOWED = re.compile(r"[^a-z0-9.-]")
_EDGE = ".-"


def _clean(name: str) -> str:
    """Reduce ``name`` to a hostname, or to ``""`` when nothing usable is left.

    Accents fold to their base letter (NFKD, then ASCII) so "Ünïcode" keeps its letters
    instead of losing them; spaces and underscores become '-' so words stay apart; the
    edges are stripped again after truncation so a cut never leaves a trailing '-'."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    text = _DISALLOWED.sub("", _SEPARATORS.sub("-", folded.lower())).strip(_EDGE)
    return text[:MAX_HOSTNAME_LENGTH].rstrip(_EDGE)


def sanitize_hostname(name: str, default: str | None = None) -> str:
    """The hostname for a server called ``name``: lowercase letters, digits, '.' and '-',
    at most 63 characters, starting and ending with a letter or digit.

    When ``name`` leaves nothing (all punctuation, all CJK), ``default`` is cleaned the
    same way and used; when that leaves nothing either, the result is ``"server"``, so a
    guest never gets an empty hostname."""
    return _clean(name) or _clean(default or "") or FALLBACK_HOSTNAME


def hostname_for(display_name: str, instance_id: str, launch_index: int,
                 multiple: bool) -> str:
    """The hostname of instance ``launch_index`` (0-based) of a create request.

    A request for several servers gives each ``<name>-<launch_index + 1>`` as Nova does,
    so the guests do not share a hostname; the name is cut first so the suffix always
    survives the 63-character limit. A name that cleans to nothing becomes
    ``server-<instance_id>``, which is unique on its own and takes no suffix."""
    if launch_index < 0:
        raise Invalid(f"launch index must not be negative, got {launch_index}")
    base = _clean(display_name)
    if not base:
        return sanitize_hostname(f"{FALLBACK_HOSTNAME}-{instance_id}")
    if not multiple:
        return base
    suffix = f"-{launch_index + 1}"
    return base[:MAX_HOSTNAME_LENGTH - len(suffix)].rstrip(_EDGE) + suffix
