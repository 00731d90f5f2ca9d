"""docs/architecture.md agrees with the code: its package picture is the one the imports
draw, and every function its create path names exists."""

from __future__ import annotations

import importlib
import re

import pytest

from strato.testing.architecture import BEGIN, DOC, END, mermaid, package_edges, render

TEXT = DOC.read_text()


def _create_path() -> list[str]:
    block = TEXT.split("<!-- create-path:begin -->")[1].split("<!-- create-path:end -->")[0]
    return re.findall(r"`(strato(?:\.\w+)+:\w+)`", block)


def test_the_package_picture_is_the_one_the_imports_draw() -> None:
    drawn = TEXT.split(BEGIN)[1].split(END)[0].strip()
    assert drawn == mermaid(package_edges()), (
        "docs/architecture.md is stale: run python -m strato.testing.architecture")


def test_the_picture_has_the_edges_the_layering_promises() -> None:
    edges = set(package_edges())
    assert ("api", "conductor") in edges          # the edge casts to the services
    assert ("bootstrap", "virt") in edges         # the composition root picks adapters
    assert not any(a == "virt" and b == "api" for a, b in edges)
    assert not any(b == "bootstrap" for a, b in edges if a != "cli")


def test_render_replaces_only_the_marked_block() -> None:
    text = f"before\n{BEGIN}\nold\n{END}\nafter\n"
    assert render(text, [("a", "b")]) == (
        f"before\n{BEGIN}\n```mermaid\nflowchart TD\n    a --> b\n```\n{END}\nafter\n")
    with pytest.raises(ValueError, match="marker"):
        render("no markers", [])


def test_the_create_path_names_functions_that_exist() -> None:
    names = _create_path()
    assert len(names) >= 8
    for name in names:
        module, attr = name.split(":")
        assert hasattr(importlib.import_module(module), attr), name
