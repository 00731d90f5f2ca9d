"""A thin async wrapper around ``qemu-img`` (the disk tools run through
:func:`strato.process.execute`, as every host tool does).

Why a wrapper and not ad-hoc calls: every invocation needs the same care, and getting it
wrong once is a security bug or a hung compute service:

* argument lists only, never a shell; paths are made absolute so a ``:`` in a file name
  is never read as a protocol prefix (``qemu-img info a:b`` would), and values put in
  ``-o`` strings have their commas doubled (qemu's option syntax);
* a timeout on every call, after which the process is killed (:mod:`strato.process`);
* ``info`` runs with ``-U`` (force-share) so it can read a disk a running guest holds, and
  under ``prlimit`` so a hostile image cannot make ``qemu-img`` eat the host's memory or
  CPU while we inspect it;
* failures become domain errors: ``NotFound`` when a file is missing, ``Unavailable``
  (with the command and its stderr) otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strato.domain.errors import Unavailable
from strato.process import execute

__all__ = ["CONVERT_TIMEOUT", "DiskImageInfo", "convert", "create", "create_overlay",
           "find_tool", "info", "resize"]

log = logging.getLogger(__name__)

# A convert copies the whole image; a large one takes minutes on a busy host.
CONVERT_TIMEOUT = 3600.0
# Nova's limits for inspecting untrusted images (CVE-2015-5162): 1 GiB address space, 30 s CPU.
_INFO_LIMITS = ("--as=1073741824", "--cpu=30")
# qcow2's extended L2 entries (needed to preallocate an overlay) want clusters >= 16 KiB.
_MIN_EXTENDED_L2_CLUSTER = 16 * 1024


@dataclass(frozen=True, slots=True)
class DiskImageInfo:
    """What ``qemu-img info`` says about one file.

    ``backing_file`` is the resolved (``full-backing-filename``) path when qemu gives it.
    ``external_files`` lists the other files qemu would read to serve this image's data (a
    qcow2 external data file, a vmdk's separate extents): an image from a user that names
    any is an attempt to read host files and must be refused.
    """

    format: str
    virtual_size: int
    actual_size: int | None
    backing_file: str | None
    backing_format: str | None
    cluster_size: int | None
    external_files: tuple[str, ...] = ()


def find_tool(name: str) -> str:
    """The path of a disk tool. ``mkfs.*`` and ``mkswap`` live in ``/usr/sbin``, which a
    service user's ``PATH`` often lacks on Debian, so look there too."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise Unavailable(f"{name} is not installed on this host")
    return found


def _path(path: Path) -> str:
    """An absolute path: qemu reads ``name:rest`` as protocol ``name`` unless a ``/``
    comes before the colon, and an absolute path can never start like an option."""
    return os.path.abspath(path)


def _options(**values: str | int | None) -> list[str]:
    """``-o k=v,k=v`` with commas in values doubled (qemu's escape); empty when none."""
    pairs = [f"{k}={str(v).replace(',', ',,')}" for k, v in values.items() if v is not None]
    return ["-o", ",".join(pairs)] if pairs else []


async def info(path: Path, *, fmt: str | None = None) -> DiskImageInfo:
    """Inspect ``path``. Without ``fmt`` qemu probes the format, which is what inspecting
    an untrusted download needs; callers that know the format pass it."""
    cmd = ["qemu-img", "info", "--output=json", "-U"]
    if fmt is not None:
        cmd += ["-f", fmt]
    cmd.append(_path(path))
    prlimit = shutil.which("prlimit")
    if prlimit is not None:
        cmd = [prlimit, *_INFO_LIMITS, "--", *cmd]
    out = await execute(*cmd)
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise Unavailable(f"qemu-img info {path}: unreadable output: {exc}") from exc
    return _parse_info(Path(_path(path)), data)


def _parse_info(path: Path, data: dict[str, Any]) -> DiskImageInfo:
    backing = data.get("full-backing-filename") or data.get("backing-filename")
    return DiskImageInfo(
        format=str(data["format"]),
        virtual_size=int(data["virtual-size"]),
        actual_size=_int_or_none(data.get("actual-size")),
        backing_file=str(backing) if backing else None,
        backing_format=data.get("backing-filename-format"),
        cluster_size=_int_or_none(data.get("cluster-size")),
        external_files=_external_files(path, data.get("format-specific") or {}),
    )


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) else None


def _external_files(path: Path, specific: dict[str, Any]) -> tuple[str, ...]:
    """Files other than ``path`` that hold this image's data (see :class:`DiskImageInfo`)."""
    data = specific.get("data") or {}
    found: list[str] = []
    if data.get("data-file"):
        found.append(str(data["data-file"]))
    for extent in data.get("extents") or ():
        name = extent.get("filename")
        if name and (path.parent / name) != path:
            found.append(str(name))
    return tuple(found)


async def create(path: Path, fmt: str, size: int, *, preallocation: str | None = None) -> None:
    """A new empty image of ``size`` bytes."""
    await execute("qemu-img", "create", "-f", fmt, *_options(preallocation=preallocation),
                  _path(path), str(size))


async def create_overlay(base: Path, base_format: str, path: Path, size: int | None = None, *,
                         preallocation: str | None = None) -> None:
    """A qcow2 overlay at ``path`` backed by ``base`` (absolute path, explicit format so
    qemu never probes the base). A qcow2 base's cluster size is reused, so the overlay's
    clusters line up with its backing file's. Preallocating an overlay needs qcow2's
    extended L2 entries (qemu refuses ``preallocation`` with a backing file otherwise)."""
    cluster: int | None = None
    if base_format == "qcow2":
        cluster = (await info(base, fmt="qcow2")).cluster_size
    extended_l2: str | None = None
    if preallocation is not None:
        extended_l2 = "on"
        if cluster is not None and cluster < _MIN_EXTENDED_L2_CLUSTER:
            cluster = None
    opts = _options(cluster_size=cluster, extended_l2=extended_l2, preallocation=preallocation)
    cmd = ["qemu-img", "create", "-f", "qcow2", "-F", base_format, "-b", _path(base), *opts,
           _path(path)]
    if size is not None:
        cmd.append(str(size))
    await execute(*cmd)


async def resize(path: Path, size: int, *, fmt: str | None = None,
                 preallocation: str | None = None) -> None:
    """Grow ``path`` to ``size`` bytes. Never shrinks: a smaller or equal ``size`` is a
    no-op, since shrinking would silently cut off a guest's data. Pass ``fmt`` whenever
    it is known: probing a raw guest disk lets the guest choose how it is read."""
    current = (await info(path, fmt=fmt)).virtual_size
    if size <= current:
        log.debug("not resizing %s: %d bytes requested, already %d", path, size, current)
        return
    cmd = ["qemu-img", "resize"]
    if fmt is not None:
        cmd += ["-f", fmt]
    if preallocation is not None:
        cmd.append(f"--preallocation={preallocation}")
    await execute(*cmd, _path(path), str(size))


async def convert(src: Path, src_fmt: str, dest: Path, dest_fmt: str, *,
                  preallocation: str | None = None) -> None:
    """Copy ``src`` into a new image ``dest`` of ``dest_fmt`` (zeroes stay sparse)."""
    await execute("qemu-img", "convert", "-f", src_fmt, "-O", dest_fmt,
                  *_options(preallocation=preallocation), _path(src), _path(dest),
                  timeout=CONVERT_TIMEOUT)
