"""Bounds on password guessing: Keystone's account lockout, and a per-address throttle.

- **Lockout** (Keystone's ``[security_compliance] lockout_failure_attempts`` and
  ``lockout_duration``): after ``failure_attempts`` failed password logins of one user,
  each within ``duration`` seconds of the one before, the user's password logins are
  refused (401, even with the right password) until ``duration`` seconds after the last
  failure. A successful login starts the count again.
- **Throttle**: every failed password login counts against the address it came from,
  whatever user it named (known or not, so the throttle tells nothing about which names
  exist). Past ``source_failures`` in ``source_window`` seconds, that address's password
  logins are refused with 429 and ``Retry-After`` until the window ends. It bounds
  password spraying (one guess for each of many users) and name guessing, which the
  per-user lockout does not see.

Both are counted in the API process (a bounded table each): with several API processes,
each counts for itself.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from strato.domain.identity import AuthFailed

__all__ = ["LockoutPolicy", "LoginGuard", "LoginThrottled"]

logger = logging.getLogger(__name__)

# Users and addresses remembered at most (the oldest are forgotten first).
CAPACITY = 100_000


class LoginThrottled(AuthFailed):
    """Too many failed password logins from one address: wait ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True, kw_only=True)
class LockoutPolicy:
    """The limits (see the module docstring); 0 attempts or failures: off."""

    failure_attempts: int = 6
    duration: float = 1800.0
    source_failures: int = 30
    source_window: float = 300.0


@dataclass(slots=True)
class _Count:
    count: int
    since: float  # the last failure (users) or the window's start (addresses)


class LoginGuard:
    """Counts failed password logins by user and by address (``clock``: seconds)."""

    def __init__(self, policy: LockoutPolicy = LockoutPolicy(), *,
                 clock: Callable[[], float] = time.monotonic,
                 capacity: int = CAPACITY) -> None:
        self.policy = policy
        self._clock = clock
        self._capacity = capacity
        self._users: OrderedDict[str, _Count] = OrderedDict()
        self._sources: OrderedDict[str, _Count] = OrderedDict()

    def check_source(self, source: str | None) -> None:
        """``LoginThrottled`` when ``source`` failed too often in the current window."""
        limit, window = self.policy.source_failures, self.policy.source_window
        entry = self._sources.get(source) if source and limit else None
        if entry is None:
            return
        left = entry.since + window - self._clock()
        if left <= 0:
            del self._sources[source or ""]
        elif entry.count >= limit:
            raise LoginThrottled("Too many failed authentication attempts from this "
                                 "address; try again later.",
                                 retry_after=max(1, math.ceil(left)))

    def locked(self, user_id: str) -> bool:
        """Whether the user's password logins are refused now."""
        entry = self._users.get(user_id)
        attempts = self.policy.failure_attempts
        if entry is None or not attempts:
            return False
        if self._clock() - entry.since >= self.policy.duration:
            del self._users[user_id]  # the lockout (or the run of failures) is over
            return False
        return entry.count >= attempts

    def failed(self, user_id: str | None, source: str | None) -> None:
        """A password login failed (``user_id``: the user it named, when one exists)."""
        now = self._clock()
        if user_id is not None and self.policy.failure_attempts:
            entry = self._users.get(user_id)
            if entry is None or now - entry.since >= self.policy.duration:
                entry = _Count(0, now)
            entry.count, entry.since = entry.count + 1, now
            self._remember(self._users, user_id, entry)
            if entry.count == self.policy.failure_attempts:
                logger.warning("identity.lockout: user %s locked for %g s after %d failed "
                               "password logins", user_id, self.policy.duration, entry.count)
        if source and self.policy.source_failures:
            entry = self._sources.get(source)
            if entry is None or now - entry.since >= self.policy.source_window:
                entry = _Count(0, now)
            entry.count += 1
            self._remember(self._sources, source, entry)

    def succeeded(self, user_id: str) -> None:
        """A password login of the user succeeded: its failures are forgotten."""
        self._users.pop(user_id, None)

    def _remember(self, table: OrderedDict[str, _Count], key: str, entry: _Count) -> None:
        table[key] = entry
        table.move_to_end(key)
        while len(table) > self._capacity:
            table.popitem(last=False)
