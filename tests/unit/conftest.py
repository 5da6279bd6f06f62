"""Fixtures for the unit tests: a WriterActor under a real supervisor, with its event log; the
kernel trees on a ManualClock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest
from nb_mcp.actors.log import LogActor
from nb_mcp.actors.writer import WriterActor
from nb_mcp.supervisor.tree import ChildSpec, start_root

from tests.helpers import read_events
from tests.unit.kernel_tree import Tree


class Harness:
    def __init__(self, path: Path, log: Path, flush_interval: float) -> None:
        self.path = path
        self.log = log
        self.root = start_root(
            "root",
            children=[
                ChildSpec("log", LogActor, {"path": log}),
                ChildSpec("writer", WriterActor, {"path": path, "flush_interval": flush_interval}),
            ],
        )
        self.writer = self.root.proxy().which_child("writer").get().proxy()

    def stream(self, cell_id: str, text: str) -> None:
        self.writer.cell_message(cell_id, "stream", {"name": "stdout", "text": text})

    def events(self) -> list[dict]:
        return read_events(self.log)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator:
    made: list[Harness] = []

    def make(path: Path, flush_interval: float = 0.2) -> Harness:
        h = Harness(path, tmp_path / "events.log", flush_interval)
        made.append(h)
        return h

    yield make
    for h in made:
        h.root.stop()
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[type[Tree]]:
    """Makes kernel trees (tests/unit/kernel_tree.py) on a ManualClock, closed after the test.
    A module may define its own `tree` (test_job_board.py does)."""
    made: list[Tree] = []

    def make(*sources: str, **kwargs) -> Tree:
        built = Tree(tmp_path, *sources, **kwargs)
        made.append(built)
        return built

    yield make  # type: ignore[misc]
    for built in made:
        built.close()
