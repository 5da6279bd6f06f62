"""The daemon's MCP task registry: unguessable ids, a result rendered once, a TTL after the end."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pykka
import pytest
from nb_mcp.actors.job_data import JobSnapshot
from nb_mcp.actors.log import LogActor
from nb_mcp.supervisor.task_registry import (
    CANCELLED,
    COMPLETED,
    FAILED,
    WORKING,
    TaskRegistry,
)
from nb_mcp.supervisor.tree import ChildSpec, start_root

from tests.helpers import read_events, wait_for

NOTEBOOK = Path("/tmp/train.ipynb")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log(tmp_path: Path):
    path = tmp_path / "events.log"
    root = start_root("root", children=[ChildSpec("log", LogActor, {"path": path})])
    yield path
    root.stop()
    pykka.ActorRegistry.stop_all()


def snapshot(job_id: str, state: str) -> JobSnapshot:
    return JobSnapshot(job_id, NOTEBOOK, "exec_cell", state, 1.0, ())


def test_a_task_is_working_until_its_job_ends_then_completed_with_its_result_kept_for_the_ttl(log):
    clock, done = Clock(), Future()
    registry = TaskRegistry(clock)
    rendered: list[str] = []

    def render(ended: JobSnapshot) -> dict:
        rendered.append(ended.job_id)
        return {"content": [{"type": "text", "text": f"{ended.job_id} {ended.state}"}]}

    task = registry.create("j-00000001", NOTEBOOK, done, render, 60.0, "exec_cell")
    other = registry.create("j-00000001", NOTEBOOK, Future(), render, 60.0, "exec_cell")
    assert len(task.task_id) >= 40 and task.task_id != other.task_id
    assert "j-00000001" not in task.task_id and task.task_id not in repr(task)
    assert registry.get(task.task_id) is task and task.outcome == WORKING
    clock.now += 10 * 86400  # no TTL while working: days later it is still there
    assert registry.get(task.task_id) is task and task.ttl_ms() is None
    done.set_result(snapshot("j-00000001", "ok"))
    wait_for(lambda: task.outcome == COMPLETED, what="the result rendered")
    assert task.result == {"content": [{"type": "text", "text": "j-00000001 ok"}]}
    assert rendered == ["j-00000001"]  # once
    assert task.ttl_ms() == ((10 * 86400 + 60) * 1000)
    clock.now += 59.0
    assert registry.get(task.task_id) is task
    clock.now += 1.0
    assert registry.get(task.task_id) is None  # forgotten at its TTL
    events = [e for e in read_events(log) if e["event"].startswith("task.")]
    assert all(task.task_id not in str(event) for event in events)


def test_a_cancelled_job_makes_a_cancelled_task_and_a_render_that_fails_a_failed_one(log):
    registry = TaskRegistry()
    cancelled_job, broken_job = Future(), Future()

    def broken(_: JobSnapshot) -> dict:
        raise RuntimeError("the writer is gone")

    cancelled = registry.create("j-0000000a", NOTEBOOK, cancelled_job, broken, 60.0, "exec_all")
    failed = registry.create("j-0000000b", NOTEBOOK, broken_job, broken, 60.0, "exec_all")
    cancelled_job.set_result(snapshot("j-0000000a", "cancelled"))
    broken_job.set_result(snapshot("j-0000000b", "error"))
    wait_for(lambda: cancelled.outcome == CANCELLED and failed.outcome == FAILED)
    assert cancelled.result is None
    assert "the writer is gone" in failed.failure
    wait_for(lambda: len([e for e in read_events(log) if e["event"].startswith("task.")]) >= 4)
    events = {(e["event"], e["job_id"]) for e in read_events(log) if e["event"].startswith("task")}
    assert ("task.cancelled", "j-0000000a") in events
    assert ("task.finished", "j-0000000b") in events
    statuses = [e["status"] for e in read_events(log) if e["event"] == "task.finished"]
    assert statuses == ["failed"]
