"""The writer's flush policy on a clock the test moves: coalesced streaming writes, the retry
back-off of a write that cannot happen, and fewer writes for a notebook that is costly to
write. Real WriterActor, real files; no sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest
from nb_mcp.actors.flush_policy import FlushPolicy
from nb_mcp.actors.log import LogActor
from nb_mcp.actors.writer import WriterActor
from nb_mcp.supervisor.clock import ManualClock
from nb_mcp.supervisor.tree import ChildSpec, start_root

from tests.helpers import events_named, read_events
from tests.unit.test_writer import stdout_of, write_notebook

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator:
    clock = ManualClock()
    path = tmp_path / "n.ipynb"
    root = start_root(
        "root",
        children=[
            ChildSpec("log", LogActor, {"path": tmp_path / "events.log"}),
            ChildSpec(
                "writer",
                WriterActor,
                {"path": path, "flush_interval": 0.2, "clock": clock},
            ),
        ],
    )
    proxy = root.proxy().which_child("writer").get().proxy()
    yield proxy, clock, path
    root.stop()
    pykka.ActorRegistry.stop_all()


def stream(proxy, cell_id: str, text: str) -> None:
    proxy.cell_message(cell_id, "stream", {"name": "stdout", "text": text}).get()


def test_streamed_output_is_written_once_per_flush_interval_with_every_line(writer):
    proxy, clock, path = writer
    (cell,) = write_notebook(path, "train()")
    proxy.open().get()
    proxy.cell_started(cell, 1, 1, clock.time()).get()
    for epoch in range(5):
        stream(proxy, cell, f"epoch {epoch}\n")
    clock.advance(0.19)
    assert proxy.stats().get().writes == 0  # nothing before the interval is over
    clock.advance(0.01)
    assert proxy.stats().get().writes == 1
    assert stdout_of(path, cell) == "".join(f"epoch {e}\n" for e in range(5))
    for epoch in range(5, 50):
        stream(proxy, cell, f"epoch {epoch}\n")
    clock.advance(0.19)
    assert proxy.stats().get().writes == 1  # 45 outputs, still one write per interval
    clock.advance(0.01)
    assert proxy.stats().get().writes == 2
    assert stdout_of(path, cell) == "".join(f"epoch {e}\n" for e in range(50))
    clock.advance(5.0)
    assert proxy.stats().get().writes == 2  # nothing new: nothing written


def test_a_write_that_cannot_happen_is_retried_with_growing_back_off_then_recovers(writer):
    proxy, clock, path = writer
    (cell,) = write_notebook(path, "train()")
    proxy.open().get()
    proxy.cell_started(cell, 1, 1, clock.time()).get()
    stream(proxy, cell, "epoch 1\n")
    clock.advance(0.2)
    assert proxy.stats().get().writes == 1
    good = path.read_bytes()
    path.write_text('{"cells": [')  # half saved by an editor: never overwritten
    stream(proxy, cell, "epoch 2\n")
    clock.advance(0.2)
    assert proxy.stats().get().failed_writes == 1
    attempts = []
    for delay in (0.5, 1.0, 2.0, 5.0, 10.0, 10.0):
        clock.advance(delay - 0.01)
        attempts.append(proxy.stats().get().failed_writes)
        clock.advance(0.01)
        attempts.append(proxy.stats().get().failed_writes)
    assert attempts == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7]
    assert path.read_text() == '{"cells": ['
    stats = proxy.stats().get()
    assert stats.pending and stats.failing_for_sec == pytest.approx(28.5)
    path.write_bytes(good)  # the editor's save completes
    clock.advance(10.0)
    stats = proxy.stats().get()
    assert (stats.writes, stats.failing_for_sec, stats.pending) == (2, None, False)
    assert stdout_of(path, cell) == "epoch 1\nepoch 2\n"
    notices = proxy.take_notices().get()
    assert "n.ipynb is written to disk again" in notices


def test_a_big_notebook_is_written_less_often_while_it_streams_and_its_reply_does_not_wait():
    clock = ManualClock()
    policy = FlushPolicy(clock, interval=0.2)
    policy.wrote(size=200_000)  # a small notebook
    assert policy.spacing == pytest.approx(0.2) and not policy.big
    policy.wrote(size=52_000_000)  # 300 plots
    assert policy.spacing == pytest.approx(2.6) and policy.big
    policy.wrote(size=900_000_000)  # bounded
    assert policy.spacing == 5.0


def test_the_writer_leaves_no_timer_behind_when_it_stops(tmp_path: Path):
    clock = ManualClock()
    path = tmp_path / "n.ipynb"
    (cell,) = write_notebook(path, "train()")
    root = start_root(
        "root",
        children=[
            ChildSpec("log", LogActor, {"path": tmp_path / "events.log"}),
            ChildSpec("writer", WriterActor, {"path": path, "flush_interval": 0.2, "clock": clock}),
        ],
    )
    proxy = root.proxy().which_child("writer").get().proxy()
    proxy.open().get()
    proxy.cell_started(cell, 1, 1, clock.time()).get()
    stream(proxy, cell, "epoch 1\n")
    assert clock.pending() >= 1
    root.stop()
    assert clock.pending() == 0
    assert stdout_of(path, cell) == "epoch 1\n"  # stopping wrote what was pending
    assert not events_named(read_events(tmp_path / "events.log"), "error.unhandled")
