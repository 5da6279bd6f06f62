"""A job tells whoever waits on it each change as it happens: no one asks the job actor how it
is doing (the waiting tool call, `exec_status`, `status` read its board)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nb_mcp.actors.job import JobBoard, JobSnapshot

from tests.unit.kernel_tree import Tree

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    built = Tree(tmp_path, "print('one')", "print('two')")
    yield built
    built.close()


def test_a_watcher_is_told_every_change_of_the_job_and_the_final_state_before_the_future(tree):
    board = JobBoard()
    seen: list[JobSnapshot] = []
    board.watch(seen.append)
    done = tree.run(0, 1, board=board)
    final = done.result(timeout=10)

    assert final.state == "ok"
    assert board.latest() == final and seen[-1] == final
    states = [(s.state, tuple(c.state for c in s.cells)) for s in seen]
    assert states[0] == ("queued", ("queued", "queued"))
    first_runs = states.index(("running", ("running", "queued")))
    second_runs = states.index(("running", ("ok", "running")))
    assert first_runs < second_runs  # told in the order they happened
    assert states[-1] == ("ok", ("ok", "ok"))


def test_a_watcher_that_stops_watching_is_told_nothing_more(tree):
    board = JobBoard()
    seen: list[JobSnapshot] = []
    unwatch = board.watch(seen.append)
    unwatch()
    final = tree.run(0, board=board).result(timeout=10)
    assert not seen and board.latest() == final
