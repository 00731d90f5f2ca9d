"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def clean_environ() -> Iterator[None]:
    """Strip the STRATO_* variables the code reads, so the caller's shell cannot leak in."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("STRATO_")}
    for key in saved:
        del os.environ[key]
    yield
    for key in [k for k in os.environ if k.startswith("STRATO_")]:
        del os.environ[key]
    os.environ.update(saved)
