"""Files that hold credentials: the database (password hashes), ``clouds.yaml`` (the
admin password), the Fernet keys, the service token. They are made readable by their
owner only, whatever the umask, and tightened when found looser (as Keystone's
``keystone-manage fernet_setup`` does for its keys).

The data directory itself is 0711: others cannot list it, but may pass through it, since
QEMU (its own user) must reach the instances directory inside it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["DATA_DIR_MODE", "PRIVATE_DIR_MODE", "PRIVATE_FILE_MODE", "private_dir",
           "private_file", "tighten"]

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
DATA_DIR_MODE = 0o711


def private_dir(path: Path, mode: int = PRIVATE_DIR_MODE) -> Path:
    """``path`` as a directory with exactly ``mode`` (made with its parents if missing;
    ``mkdir`` alone would let the umask decide)."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    path.chmod(mode)
    return path


def private_file(path: Path) -> Path:
    """``path`` as a file only its owner reads: created empty if missing, else its
    content kept and its mode tightened."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return path


def tighten(paths: Iterable[Path]) -> None:
    """Make each of ``paths`` that exists readable by its owner only."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.chmod(PRIVATE_FILE_MODE)
