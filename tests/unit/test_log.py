"""The LogActor: JSON lines, flushed per event, rotated by size, fanned out, never on stdout."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pykka
import pytest
from nb_mcp.actors.log import LogActor, RotatingLineFile, emit, emit_written
from nb_mcp.supervisor.tree import ChildSpec, start_root

from tests.helpers import read_events


@pytest.fixture
def log_tree(tmp_path: Path):
    roots: list[pykka.ActorRef] = []

    def start(path: Path, **kwargs) -> pykka.ActorRef:
        root = start_root("root", children=[ChildSpec("log", LogActor, {"path": path, **kwargs})])
        roots.append(root)
        return root.proxy().which_child("log").get()

    yield start
    for root in roots:
        root.stop()
    pykka.ActorRegistry.stop_all()


def test_every_event_is_one_json_line_with_the_common_fields(log_tree, tmp_path: Path):
    path = tmp_path / "events.log"
    log_tree(path)
    emit("notebook.created", "created x.ipynb", sync=True, notebook="/tmp/x.ipynb")
    (event,) = read_events(path)
    assert list(event)[:5] == ["timestamp", "level", "event", "message", "pid"]
    assert event["timestamp"].endswith("Z") and event["level"] == "info"
    assert event["pid"] == os.getpid() and event["notebook"] == "/tmp/x.ipynb"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_events_below_the_configured_level_are_dropped(log_tree, tmp_path: Path):
    path = tmp_path / "events.log"
    log_tree(path, level="warning")
    emit("notebook.created", "not written", notebook="/tmp/a.ipynb")
    emit(
        "kernel.unresponsive",
        "written",
        level="warning",
        sync=True,
        notebook="/tmp/a.ipynb",
        silent_sec=3.0,
    )
    assert [e["message"] for e in read_events(path)] == ["written"]


def test_an_event_loop_waiting_for_its_event_to_be_written_keeps_serving(log_tree, tmp_path: Path):
    path = tmp_path / "events.log"
    actor = log_tree(path)
    writing, release = threading.Event(), threading.Event()

    def slow_disk(event: dict) -> None:  # holds the LogActor just after the line is written
        writing.set()
        release.wait(10)

    actor.proxy().subscribe(slow_disk).get()

    async def scenario() -> None:
        waiting = asyncio.create_task(
            emit_written("notebook.created", "slow", notebook="/tmp/a.ipynb")
        )
        assert await asyncio.to_thread(writing.wait, 5)
        # The loop runs other work meanwhile; the waiter is still waiting for the LogActor.
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done()
        release.set()
        await asyncio.wait_for(waiting, 5)
        assert [e["message"] for e in read_events(path)] == ["slow"]

    try:
        asyncio.run(scenario())
    finally:
        release.set()


def test_waiting_for_an_event_below_the_level_returns_at_once(log_tree, tmp_path: Path):
    path = tmp_path / "events.log"
    log_tree(path, level="warning")

    async def scenario() -> None:
        # Well under the 5 s bound of a wait for a line that never comes.
        await asyncio.wait_for(
            emit_written("notebook.created", "dropped", notebook="/tmp/a.ipynb"), 1
        )

    asyncio.run(scenario())
    assert read_events(path) == []


def test_subscribers_receive_every_event_in_order(log_tree, tmp_path: Path):
    actor = log_tree(tmp_path / "events.log")
    seen: list[str] = []
    done = threading.Event()

    def subscriber(event: dict) -> None:
        seen.append(event["message"])
        if len(seen) == 50:
            done.set()

    token = actor.proxy().subscribe(subscriber).get()
    for n in range(50):
        emit("notebook.created", f"event {n}", notebook="/tmp/a.ipynb")
    assert done.wait(5)
    assert seen == [f"event {n}" for n in range(50)]
    actor.proxy().unsubscribe(token).get()


def test_a_failing_subscriber_does_not_stop_the_log(log_tree, tmp_path: Path):
    path = tmp_path / "events.log"
    actor = log_tree(path)

    def broken(event: dict) -> None:
        raise RuntimeError("subscriber bug")

    actor.proxy().subscribe(broken).get()
    emit("notebook.created", "first", sync=True, notebook="/tmp/a.ipynb")
    emit("notebook.created", "second", sync=True, notebook="/tmp/a.ipynb")
    assert [e["message"] for e in read_events(path)] == ["first", "second"]
    assert actor.is_alive()


def test_the_file_rotates_by_size_and_keeps_every_line(tmp_path: Path):
    folder = tmp_path / "rotation"
    folder.mkdir()
    path = folder / "lines.jsonl"  # not *.log: these lines are not events
    lines = RotatingLineFile(path, max_bytes=1_000, backups=3)
    for n in range(200):
        lines.write(json.dumps({"n": n, "pad": "x" * 20}).encode() + b"\n")
    lines.close()
    assert sorted(p.name for p in folder.iterdir()) == [
        "lines.jsonl",
        "lines.jsonl.1",
        "lines.jsonl.2",
        "lines.jsonl.3",
    ]
    numbers = [event["n"] for event in read_events(path)]
    assert numbers == list(range(numbers[0], 200))  # the newest lines, none missing in between
    assert all(p.stat().st_size < 1_100 for p in folder.iterdir())


_WRITER = """
import json, os, sys, time
from pathlib import Path
from nb_mcp.actors.log import RotatingLineFile
path, name, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
lines = RotatingLineFile(path, max_bytes=10_000, backups=1_000)
while not go.exists():
    time.sleep(0.001)
for n in range(count):
    lines.write(json.dumps({"writer": name, "n": n, "pad": "x" * 40}).encode() + b"\\n")
lines.close()
"""


def test_two_processes_sharing_one_log_rotate_it_without_losing_or_misplacing_a_line(
    tmp_path: Path,
):
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "lines.jsonl"  # not *.log: these lines are not events
    go = tmp_path / "go"
    count = 4000
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), name, str(count), str(go)])
        for name in ("a", "b")
    ]
    go.touch()
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    lines = read_events(path)
    for name in ("a", "b"):
        assert [line["n"] for line in lines if line["writer"] == name] == list(range(count))
    longest = max(len(json.dumps(line)) + 1 for line in lines)
    # A file is rotated as soon as a write takes it past the limit; while the rotation waits
    # for its lock, the other process adds at most one line. A process that kept writing to
    # a file rotated away by the other (where a reader following the log never looks)
    # would leave rotated files far past the limit.
    for rotated in folder.glob("lines.jsonl.*"):
        assert rotated.stat().st_size < 10_000 + 2 * longest, rotated.name


def test_an_unwritable_log_falls_back_to_stderr_with_one_warning_and_stdout_stays_clean(
    tmp_path: Path,
):
    script = (
        "from pathlib import Path\n"
        "from actors.log import LogActor, emit\n"
        "from supervisor.tree import ChildSpec, start_root\n"
        f"log = ChildSpec('log', LogActor, {{'path': Path({str(tmp_path)!r})}})\n"
        "root = start_root('root', children=[log])\n"
        "emit('notebook.created', 'one', sync=True, notebook='/tmp/a.ipynb')\n"
        "emit('notebook.created', 'two', sync=True, notebook='/tmp/a.ipynb')\n"
        "root.stop()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    warnings = [line for line in result.stderr.splitlines() if line.startswith("nb: warning")]
    assert len(warnings) == 1 and "cannot write the event log" in warnings[0]
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [e["message"] for e in events] == ["one", "two"]
