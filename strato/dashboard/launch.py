"""The Launch Instance wizard: Horizon's steps, each validated before the next, and the
``POST /servers`` body they add up to.

The wizard is server-rendered: every step's answers travel with the form (the current
step's as inputs, the others' as hidden fields), so a reload or the browser's back
button loses nothing and no state lives on the server.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STEPS", "Fit", "LaunchForm", "flavor_fit", "step_of_error"]

# (key, title) in Horizon's order.
STEPS: tuple[tuple[str, str], ...] = (
    ("details", "Details"),
    ("source", "Source"),
    ("flavor", "Flavor"),
    ("networks", "Networks"),
    ("access", "Security groups & key pair"),
    ("configuration", "Configuration"),
)
MAX_COUNT = 100
MAX_USER_DATA = 65535  # bytes before base64, Nova's limit


def _first(fields: dict[str, list[str]], key: str) -> str:
    return (fields.get(key) or [""])[0].strip()


@dataclass(slots=True)
class LaunchForm:
    """The wizard's answers so far."""

    name: str = ""
    count: str = "1"
    zone: str = ""
    image: str = ""
    flavor: str = ""
    networks: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=lambda: ["default"])
    key_name: str = ""
    user_data: str = ""
    config_drive: bool = False
    # which steps' answers the form carries (a fresh wizard has none)
    seen: set[str] = field(default_factory=set)

    @classmethod
    def from_fields(cls, fields: dict[str, list[str]]) -> LaunchForm:
        seen = set(_first(fields, "seen").split(",")) - {""}
        form = cls(name=_first(fields, "name"), count=_first(fields, "count") or "1",
                   zone=_first(fields, "zone"), image=_first(fields, "image"),
                   flavor=_first(fields, "flavor"),
                   networks=[n for n in fields.get("networks", []) if n],
                   key_name=_first(fields, "key_name"),
                   # Browsers send a textarea's line breaks as CRLF; a script's "#!/bin/sh\r"
                   # would name no interpreter.
                   user_data=(fields.get("user_data") or [""])[0].replace("\r\n", "\n"),
                   config_drive=_first(fields, "config_drive") in ("1", "on", "true"),
                   seen=seen)
        if "access" in seen or _first(fields, "step") == "access":
            form.security_groups = [g for g in fields.get("security_groups", []) if g]
        return form

    def hidden(self, current: str) -> list[tuple[str, str]]:
        """The answers of the steps other than ``current``, as hidden fields."""
        fields: list[tuple[str, str]] = []
        by_step: dict[str, list[tuple[str, str]]] = {
            "details": [("name", self.name), ("count", self.count), ("zone", self.zone)],
            "source": [("image", self.image)],
            "flavor": [("flavor", self.flavor)],
            "networks": [("networks", n) for n in self.networks],
            "access": [*(("security_groups", g) for g in self.security_groups),
                       ("key_name", self.key_name)],
            "configuration": [("user_data", self.user_data),
                              ("config_drive", "1" if self.config_drive else "")],
        }
        for key, _ in STEPS:
            if key != current:
                fields.extend(by_step[key])
        fields.append(("seen", ",".join(sorted(self.seen | {current}))))
        return fields

    def count_value(self) -> int | None:
        try:
            count = int(self.count)
        except ValueError:
            return None
        return count if 1 <= count <= MAX_COUNT else None

    def validate(self, step: str, *, images: dict[str, dict[str, Any]] | None = None,
                 flavors: dict[str, dict[str, Any]] | None = None,
                 limits: dict[str, Any] | None = None) -> dict[str, str]:
        """Field -> what is wrong with it, for ``step`` (empty: the step is complete)."""
        errors: dict[str, str] = {}
        if step == "details":
            if not self.name:
                errors["name"] = "An instance needs a name."
            elif len(self.name) > 255:
                errors["name"] = "The name is longer than 255 characters."
            if self.count_value() is None:
                errors["count"] = f"The count must be a whole number from 1 to {MAX_COUNT}."
        elif step == "source":
            if not self.image:
                errors["image"] = "Choose the image the instance boots from."
            elif images is not None and self.image not in images:
                errors["image"] = "That image is not available (any more)."
        elif step == "flavor":
            if not self.flavor:
                errors["flavor"] = "Choose a flavor."
            elif flavors is not None:
                flavor = flavors.get(self.flavor)
                if flavor is None:
                    errors["flavor"] = "That flavor is not available (any more)."
                elif limits is not None:
                    fit = flavor_fit(flavor, self.count_value() or 1, limits)
                    if not fit.fits:
                        errors["flavor"] = ("Not enough quota left for this flavor: "
                                            + "; ".join(fit.reasons) + ".")
                if (flavor is not None and images is not None and self.image in images
                        and int(images[self.image].get("min_disk") or 0)
                        > int(flavor.get("disk") or 0) > 0):
                    errors["flavor"] = (f"The image needs a disk of at least "
                                        f"{images[self.image]['min_disk']} GB; this "
                                        f"flavor has {flavor.get('disk')} GB.")
        elif step == "configuration":
            if len(self.user_data.encode()) > MAX_USER_DATA:
                errors["user_data"] = f"User data is limited to {MAX_USER_DATA} bytes."
        return errors

    def body(self) -> dict[str, Any]:
        """The ``server`` object of ``POST /v2.1/servers``."""
        count = self.count_value() or 1
        server: dict[str, Any] = {"name": self.name, "imageRef": self.image,
                                  "flavorRef": self.flavor,
                                  "min_count": count, "max_count": count}
        if self.zone:
            server["availability_zone"] = self.zone
        if self.networks:
            server["networks"] = [{"uuid": n} for n in self.networks]
        if self.security_groups:
            server["security_groups"] = [{"name": g} for g in self.security_groups]
        if self.key_name:
            server["key_name"] = self.key_name
        if self.user_data:
            server["user_data"] = base64.b64encode(self.user_data.encode()).decode()
        if self.config_drive:
            server["config_drive"] = True
        return server


@dataclass(frozen=True, slots=True)
class Fit:
    """How a flavor (times the count) fits the project's quota: each resource's use after
    the launch, in percent of its limit (None: unlimited), and why it does not fit."""

    fits: bool
    reasons: tuple[str, ...]
    usage: tuple[tuple[str, int, int, int | None], ...]  # (what, used, adding, limit)

    def percent(self, used: int, adding: int, limit: int | None) -> int:
        if not limit or limit < 0:
            return 0
        return min(100, round((used + adding) * 100 / limit))


def flavor_fit(flavor: dict[str, Any], count: int, limits: dict[str, Any]) -> Fit:
    """Whether ``count`` instances of ``flavor`` fit the ``absolute`` limits of
    ``GET /limits`` (-1: unlimited)."""
    wants = (("instances", "totalInstancesUsed", "maxTotalInstances", count),
             ("vCPUs", "totalCoresUsed", "maxTotalCores", count * int(flavor.get("vcpus", 0))),
             ("RAM MB", "totalRAMUsed", "maxTotalRAMSize", count * int(flavor.get("ram", 0))))
    reasons, usage = [], []
    for what, used_key, max_key, adding in wants:
        used, limit = int(limits.get(used_key, 0)), int(limits.get(max_key, -1))
        usage.append((what, used, adding, None if limit < 0 else limit))
        if limit >= 0 and used + adding > limit:
            reasons.append(f"{what} {used} used + {adding} > {limit} allowed")
    return Fit(fits=not reasons, reasons=tuple(reasons), usage=tuple(usage))


_HINTS = (("flavor", "flavor"), ("image", "source"), ("network", "networks"),
          ("port", "networks"), ("security group", "access"), ("security_group", "access"),
          ("key", "access"),
          ("user_data", "configuration"), ("user data", "configuration"),
          ("availability zone", "details"), ("name", "details"), ("count", "details"),
          ("quota", "flavor"))


def step_of_error(message: str) -> str:
    """The wizard step an API refusal is about (its words name the field)."""
    lowered = message.lower()
    for word, step in _HINTS:
        if word in lowered:
            return step
    return "configuration"
