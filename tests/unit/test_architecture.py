"""The shape of the code, checked on every run: import layers, no import cycles, small modules.

The contracts are in `.importlinter` (import-linter, on grimp's import graph, which counts
imports inside functions too). The installed package `nb_mcp` is mapped from the repository's
folders by an editable finder grimp cannot see, so the graph is built from a folder of links
that lays the sources out as `nb_mcp/…` (the benchmark in ops/bench/ is not part of it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("actors", "supervisor", "mcp_front", "ops")
MAX_LINES = 400
# Modules that are over the limit today and may only shrink; each is split by issue 14.
STILL_TOO_BIG = {
    "actors/writer.py": 782,
    "supervisor/facade.py": 692,  # + cancel_job's delegate and the task registry (issue 17)
    "actors/notebook.py": 597,
}


def sources() -> Iterator[Path]:
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            if "bench" not in path.relative_to(REPO).parts[1:2]:
                yield path


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a process that sees `nb_mcp/` as a folder of links to the sources."""
    root = tmp_path_factory.mktemp("layout")
    for path in sources():
        link = root / "nb_mcp" / path.relative_to(REPO)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path, link)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(REPO)])}


def test_the_import_contracts_hold(layout: dict[str, str]) -> None:
    checked = subprocess.run(
        [
            str(Path(sys.executable).with_name("lint-imports")),
            "--no-cache",
            str(REPO / ".importlinter"),
        ],
        cwd=REPO,
        env=layout,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout[-6000:] + checked.stderr[-2000:]


def test_no_module_imports_a_module_that_imports_it_back(layout: dict[str, str]) -> None:
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.unit.test_architecture import print_cycles; print_cycles()",
        ],
        cwd=REPO,
        env=layout,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr[-3000:]
    cycles = json.loads(found.stdout)
    assert not cycles, "import cycles (function-level imports count):\n" + "\n".join(
        " <-> ".join(cycle) for cycle in cycles
    )


def print_cycles() -> None:
    """Run in a process whose `nb_mcp` is the folder of links: print the cycles as JSON."""
    graph = grimp.build_graph("nb_mcp", cache_dir=None)
    print(json.dumps(_cycles(graph, sorted(graph.modules))))


def test_every_module_is_under_the_size_limit() -> None:
    too_big = []
    for path in sources():
        name = str(path.relative_to(REPO))
        lines = len(path.read_text().splitlines())
        allowed = STILL_TOO_BIG.get(name, MAX_LINES)
        if lines > allowed:
            too_big.append(f"{name}: {lines} lines (limit {allowed})")
    assert not too_big, "modules over the limit:\n" + "\n".join(too_big)


def _cycles(graph: grimp.ImportGraph, modules: list[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found
