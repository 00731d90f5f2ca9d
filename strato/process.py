"""Running a host tool: the one subprocess runner (disk tools, ``ip``, ``nft``,
``dnsmasq``, the KVM probe, the tiny guest's build tools).

Every run needs the same care, and getting it wrong once is a security bug or a hung
service: argument lists only, never a shell; stdin closed unless the caller feeds it; and
the process killed (and reaped) when it outlives its timeout or its caller is cancelled,
so no orphan keeps writing a disk the caller is about to delete. :func:`run` gives the
exit status and output; :func:`execute` is the usual call on top of it, with failures as
domain errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from strato.domain.errors import NotFound, Unavailable

__all__ = ["TIMEOUT", "Finished", "execute", "run"]

# Seconds an :func:`execute` call may take by default.
TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class Finished:
    """A process that ran to its end."""

    returncode: int
    stdout: bytes
    stderr: bytes


async def run(*argv: str, stdin: bytes | None = None, timeout: float | None = None,
              env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Finished:
    """Run ``argv`` (no shell) to its end, with ``stdin`` as its input (none when None).

    ``FileNotFoundError`` when the program is missing, ``TimeoutError`` after ``timeout``
    seconds; in both of the latter cases and on cancellation the process is killed and
    reaped first. ``env`` replaces the environment (None: this process's)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=None if env is None else dict(env), cwd=cwd)
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(stdin)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.shield(proc.wait())
    assert proc.returncode is not None
    return Finished(proc.returncode, out, err)


async def execute(*cmd: str, timeout: float = TIMEOUT) -> bytes:
    """Run ``cmd`` (no shell), return its stdout; map a failure to a domain error:
    ``NotFound`` when a file is missing, ``Unavailable`` (with the command and its
    stderr) otherwise. ``LC_ALL=C`` keeps stderr parseable."""
    try:
        done = await run(*cmd, timeout=timeout, env=dict(os.environ, LC_ALL="C"))
    except FileNotFoundError as exc:
        raise Unavailable(f"{cmd[0]} is not installed on this host") from exc
    except TimeoutError:
        raise Unavailable(f"{shlex.join(cmd)} timed out after {timeout:g} s") from None
    if done.returncode != 0:
        raise _failure(cmd, done.returncode, done.stderr.decode(errors="replace").strip())
    return done.stdout


def _failure(cmd: tuple[str, ...], code: int, stderr: str) -> Exception:
    text = f"{shlex.join(cmd)} failed (exit {code}): {stderr}"
    if "No such file or directory" in stderr:
        return NotFound(text)
    return Unavailable(text)
