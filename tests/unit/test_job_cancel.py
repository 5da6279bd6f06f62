"""Cancelling a job, deterministic: real actors on a ManualClock over a scripted kernel
(tests/unit/kernel_tree.py). A running cell is interrupted only once the kernel has begun it,
and again every 2 s until it ends; a queued job never reaches the kernel; the kernel and its
variables stay either way. The same behaviour over real kernels is in tests/integration/
test_tasks.py.
"""

from __future__ import annotations

import pytest

from tests.unit.kernel_tree import hang, running

pytestmark = pytest.mark.timeout(20)

INTERRUPTED = {"ename": "KeyboardInterrupt", "evalue": "", "traceback": []}


def silent(_pump, _msg_id, _code) -> None:
    """The request reached the kernel, which has not begun the cell yet."""


def end_interrupted(pump, msg_id: str) -> None:
    pump.reply("iopub", "error", INTERRUPTED, msg_id)
    pump.reply("shell", "execute_reply", {"status": "error", **INTERRUPTED}, msg_id)
    pump.reply("iopub", "status", {"execution_state": "idle"}, msg_id)


def test_a_cancelled_cell_is_interrupted_every_2_s_until_it_stops_and_the_kernel_stays(tree):
    t, done, kernel, pump, msg_id = running(tree, "while True: pass", "print('never')")
    assert t.cancel(1, "the agent changed its mind") == "running"
    t.settle()
    assert kernel.interrupts == 1
    t.clock.advance(1.95)
    t.settle()
    assert kernel.interrupts == 1  # the cell may be stopping: give it the 2 s
    t.clock.advance(0.1)
    t.settle()
    assert kernel.interrupts == 2 and not done.done()

    end_interrupted(pump, msg_id)
    snapshot = done.result(timeout=5)
    assert snapshot.state == "cancelled" and snapshot.reason == "the agent changed its mind"
    assert [(c.state, c.ename, c.detail) for c in snapshot.cells] == [
        ("cancelled", None, "the agent changed its mind"),
        ("skipped", None, "job cancelled"),
    ]
    assert "⊘ Cancelled at" in t.cell_text(0) and "step 1" in t.cell_text(0)
    t.clock.advance(4.0)
    t.settle()
    assert kernel.interrupts == 2  # ended: no interrupt after it
    assert kernel.alive and len(t.kernels.started) == 1  # its variables stay
    assert t.events.wait("job.finished")["status"] == "cancelled"


def test_a_cell_cancelled_before_the_kernel_began_it_is_interrupted_once_it_begins(tree):
    # ipykernel swallows an interrupt that lands between the execute_request and the cell's
    # start, and the cell then runs to its end: the interrupt must wait for execute_input.
    t, done, kernel, pump, msg_id = running(tree, "import time; time.sleep(600)", on_execute=silent)

    assert t.cancel(1, "too slow") == "running"
    t.settle()
    assert kernel.interrupts == 0
    pump.start_running(msg_id)
    t.settle()
    assert kernel.interrupts == 1

    end_interrupted(pump, msg_id)
    snapshot = done.result(timeout=5)
    assert [c.state for c in snapshot.cells] == ["cancelled"]


def test_a_cancelled_queued_job_never_reaches_the_kernel_and_the_job_ahead_runs_on(tree):
    t = tree("x = 1", "print('queued')")
    t.kernels.prepare = lambda kernel: setattr(kernel, "on_execute", hang)
    first = t.run(0)
    kernel = t.kernels.kernel(1)
    pump, msg_id, _ = kernel.wait_for_run()
    second = t.run(1)
    t.settle()

    assert t.cancel(2, "not needed") == "queued"
    cancelled = second.result(timeout=5)
    assert cancelled.state == "cancelled" and cancelled.started_at is None
    assert [(c.state, c.detail) for c in cancelled.cells] == [
        ("cancelled", "cancelled before it ran")
    ]
    assert kernel.interrupts == 0  # the job ahead is not touched

    pump.run_ok(msg_id, count=1)
    assert first.result(timeout=5).state == "ok"
    t.settle()
    assert len(kernel.runs) == 1  # the cancelled job's cell was never sent
    assert "queued" not in t.cell_text(1).lower()  # its Queued mark is gone again
