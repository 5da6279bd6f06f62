"""A cell ends when the kernel has both gone idle on iopub and answered on the shell.

ipykernel replies before it goes idle, but the two arrive on different sockets. An idle with
no reply at all is what ipykernel does when an interrupt lands between the cell's
execute_input and its code: it catches the KeyboardInterrupt itself ("KeyboardInterrupt caught
in kernel"), sends no reply and no error, and the code never ran. Such a cell was reported
"✓ ok · 0.0s". Deterministic: real actors on a ManualClock over a scripted kernel.
"""

from __future__ import annotations

import pytest

from tests.unit.kernel_tree import running

pytestmark = pytest.mark.timeout(20)


def begun_then_idle(pump, msg_id, _code) -> None:
    """The kernel begins the cell, then goes idle without a word about it."""
    pump.reply("iopub", "status", {"execution_state": "busy"}, msg_id)
    pump.reply("iopub", "execute_input", {"execution_count": 1, "code": ""}, msg_id)
    pump.reply("iopub", "status", {"execution_state": "idle"}, msg_id)


def test_a_cell_the_kernel_goes_idle_on_without_a_reply_is_an_error_not_ok(tree):
    t = tree("train()", "print('after')")
    t.kernels.prepare = lambda kernel: setattr(kernel, "on_execute", begun_then_idle)
    done = t.run()
    t.kernels.kernel(1).wait_for_run()
    t.settle()
    t.clock.advance(0.95)
    t.settle()
    assert not done.done()  # the reply may still be on its way
    t.clock.advance(0.2)  # the first tick past the 1 s the reply may lag
    snapshot = done.result(timeout=5)
    assert [(c.state, c.ename) for c in snapshot.cells] == [
        ("error", "NbMcpNoReply"),
        ("skipped", None),
    ]
    assert "NbMcpNoReply" in t.cell_text(0) and "most likely never ran" in t.cell_text(0)
    assert len(t.kernels.started) == 1  # the kernel itself is fine


def test_an_idle_that_overtakes_its_reply_waits_for_it_and_the_reply_decides(tree):
    t = tree("x = 1")
    t.kernels.prepare = lambda kernel: setattr(kernel, "on_execute", begun_then_idle)
    done = t.run()
    pump, msg_id, _ = t.kernels.kernel(1).wait_for_run()
    t.settle()
    assert not done.done()
    pump.reply("shell", "execute_reply", {"status": "aborted"}, msg_id)
    snapshot = done.result(timeout=5)
    assert [(c.state, c.ename) for c in snapshot.cells] == [("error", "NbMcpAborted")]


def test_a_cancelled_cell_the_kernel_goes_idle_on_without_a_reply_is_cancelled(tree):
    t, done, kernel, pump, msg_id = running(tree, "import time; time.sleep(600)", "print('x')")
    assert t.cancel(1, "changed my mind") == "running"
    t.settle()
    assert kernel.interrupts == 1
    pump.reply("iopub", "status", {"execution_state": "idle"}, msg_id)  # caught, no reply
    t.settle()
    t.clock.advance(0.95)
    t.settle()
    assert not done.done()
    t.clock.advance(0.2)  # the first tick past the 1 s the reply may lag
    snapshot = done.result(timeout=5)
    assert snapshot.state == "cancelled"
    assert [c.state for c in snapshot.cells] == ["cancelled", "skipped"]
    assert "⊘ Cancelled at" in t.cell_text(0)
