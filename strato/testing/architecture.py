"""The package picture in docs/architecture.md, drawn from the imports the code has.

``python -m strato.testing.architecture`` rewrites the block between the ``packages``
markers in docs/architecture.md; a unit test fails when the block and the code disagree,
so the picture cannot drift. Each arrow is "imports" between two of strato's top-level
packages or modules (imports made only for type checking left out). Arrows into the
packages nearly everything uses (``domain``, ``config``, ``log``) are left out to keep the
picture readable; the text says so.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import grimp

# Everything may import these; an arrow to them carries no information.
EVERYWHERE = frozenset({"domain", "config", "log"})
# Not part of the running cloud.
LEFT_OUT = frozenset({"__main__", "testing"})
BEGIN = "<!-- packages:begin (python -m strato.testing.architecture) -->"
END = "<!-- packages:end -->"
DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


@cache
def package_edges(package: str = "strato") -> tuple[tuple[str, str], ...]:
    """(importer, imported) for each pair of top-level parts of ``package`` where one
    imports the other at run time, sorted (the import graph is built once per process)."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=True)
    parts = sorted({m.split(".")[1] for m in graph.modules if "." in m} - LEFT_OUT)
    edges = []
    for importer in parts:
        for imported in parts:
            if importer == imported or imported in EVERYWHERE:
                continue
            if graph.direct_import_exists(importer=f"{package}.{importer}",
                                          imported=f"{package}.{imported}",
                                          as_packages=True):
                edges.append((importer, imported))
    return tuple(edges)


def mermaid(edges: Sequence[tuple[str, str]]) -> str:
    """The edges as a Mermaid flowchart, importers above what they import."""
    lines = ["```mermaid", "flowchart TD"]
    lines += [f"    {a} --> {b}" for a, b in edges]
    lines.append("```")
    return "\n".join(lines)


def render(text: str, edges: Sequence[tuple[str, str]]) -> str:
    """``text`` (the document) with the block between the markers redrawn."""
    head, found, rest = text.partition(BEGIN)
    if not found:
        raise ValueError(f"{DOC} has no {BEGIN!r} marker")
    _, found, tail = rest.partition(END)
    if not found:
        raise ValueError(f"{DOC} has no {END!r} marker")
    return f"{head}{BEGIN}\n{mermaid(edges)}\n{END}{tail}"


def main() -> int:
    DOC.write_text(render(DOC.read_text(), package_edges()))
    print(f"redrew the package picture in {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
