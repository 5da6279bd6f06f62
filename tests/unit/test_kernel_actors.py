"""The kernel's state machines, deterministic: real actors on a clock the test moves, over a
scripted kernel process (tests/unit/kernel_double.py). No real kernel, no sleeps.

The same faults run against real kernels in tests/faults/; these pin down the timing rules:
a death found at the next 0.1 s tick, a timeout's interrupt and the restart 5 s later, a desync
resumed on the same msg_id, a start that never answers, a heartbeat that stops.
"""

from __future__ import annotations

import pytest
from nb_mcp.actors.channels import ChannelsFailed, Heartbeat
from nb_mcp.actors.kernel_protocol import KernelState

pytestmark = pytest.mark.timeout(20)


def hang(pump, msg_id, _code) -> None:
    pump.start_running(msg_id, "working\n")


def test_a_kernel_killed_mid_cell_is_found_at_the_next_tick_and_the_next_run_gets_a_fresh_one(
    tree,
):
    t = tree("x = 1", "print('after')")
    t.kernels.prepare = lambda kernel: setattr(kernel, "on_execute", hang)
    done = t.run()
    first = t.kernels.kernel(1)
    first.wait_for_run()
    t.settle()

    first.die(exit_code=-9)
    t.clock.advance(0.1)  # one tick of the process's watch: no more

    died = t.events.wait("kernel.died")
    assert died["exit_code"] == -9 and died["kernel_pid"] == first.pid
    assert "SIGKILL" in died["reason"] and died["job_id"]
    snapshot = done.result(timeout=5)
    assert snapshot.state == "error"
    assert [(c.state, c.ename) for c in snapshot.cells] == [
        ("died", "NbMcpKernelDied"),
        ("skipped", None),
    ]
    assert "variables are gone" in snapshot.cells[0].evalue
    restarted = t.events.wait("supervisor.child_restarted")
    assert restarted["child"] == "kernel" and restarted["supervisor"] == f"notebook:{t.path}"
    assert "NbMcpKernelDied" in t.cell_text(0) and "✗ Kernel died" in t.cell_text(0)
    assert first.stopped_with  # its files and record are cleaned up
    assert t.kernel_info().state is KernelState.DEAD

    t.kernels.prepare = lambda kernel: None
    again = t.run(1).result(timeout=5)
    assert again.state == "ok"
    assert len(t.kernels.started) == 2  # a fresh kernel, not the dead one


def test_a_kernel_killed_while_idle_is_found_too_and_status_says_dead(tree):
    t = tree("x = 1")
    assert t.run().result(timeout=5).state == "ok"
    kernel = t.kernels.kernel(1)
    assert t.kernel_info().state is KernelState.IDLE

    kernel.die(exit_code=1)
    t.clock.advance(0.1)
    died = t.events.wait("kernel.died")
    assert died["reason"] == "exit code 1" and "job_id" not in died
    info = t.kernel_info()
    assert info.state is KernelState.DEAD and info.pid is None


def test_queued_jobs_survive_a_kernel_death_and_run_on_a_fresh_kernel(tree):
    t = tree("print('one')", "print('two')")
    t.kernels.prepare = lambda kernel: setattr(kernel, "on_execute", hang)
    first = t.run(0)
    kernel = t.kernels.kernel(1)
    kernel.wait_for_run()
    second = t.run(1)
    t.settle()
    assert t.kernel_info().queued_jobs  # the second job waits for the kernel

    t.kernels.prepare = lambda kernel: None
    kernel.die()
    t.clock.advance(0.1)
    assert first.result(timeout=5).state == "error"
    assert second.result(timeout=5).state == "ok"
    assert len(t.kernels.started) == 2


def test_a_cell_past_its_timeout_is_interrupted_then_the_kernel_restarted_5_s_later(tree):
    t = tree("while True: pass", "print('later')")
    t.kernels.prepare = lambda kernel: setattr(kernel, "on_execute", hang)
    done = t.run(timeout=2)
    first = t.kernels.kernel(1)
    first.wait_for_run()

    t.clock.advance(1.95)
    t.settle()
    assert first.interrupts == 0
    t.clock.advance(0.1)  # the tick at 2 s
    interrupted = t.events.wait("kernel.interrupted")
    assert interrupted["reason"] == "timeout" and first.interrupts == 1
    assert interrupted["cell_id"] == t.cell_ids[0]
    assert not done.done()  # it may still stop by itself

    t.kernels.prepare = lambda kernel: None
    t.clock.advance(4.95)
    t.settle()
    assert not done.done(), "restarted before the 5 s grace was over"
    t.clock.advance(0.1)  # the first tick past 5 s after the interrupt
    snapshot = done.result(timeout=5)
    assert [(c.state, c.ename) for c in snapshot.cells] == [
        ("timeout", "NbMcpTimeout"),
        ("skipped", None),
    ]
    restarted = t.events.wait("kernel.restarted")
    assert restarted["reason"] == "the cell did not stop after its timeout"
    assert first.stopped_with == [0.0] and len(t.kernels.started) == 2
    assert not t.events.named("supervisor.child_restarted")  # a timeout is not a failure
    assert "⏱ Timed out" in t.cell_text(0)


def test_a_cell_that_stops_when_interrupted_after_its_timeout_keeps_the_kernel(tree):
    t = tree("import time; time.sleep(60)", "print('later')")

    def obey(kernel):
        kernel.on_execute = hang
        kernel.interrupt_outcome = None

    t.kernels.prepare = obey
    done = t.run(timeout=1)
    kernel = t.kernels.kernel(1)
    pump, msg_id, _ = kernel.wait_for_run()
    t.clock.advance(1.05)
    t.events.wait("kernel.interrupted")
    error = {"ename": "KeyboardInterrupt", "evalue": "", "traceback": []}
    pump.reply("iopub", "error", error, msg_id)
    pump.reply("shell", "execute_reply", {"status": "error", **error}, msg_id)
    pump.reply("iopub", "status", {"execution_state": "idle"}, msg_id)

    snapshot = done.result(timeout=5)
    assert [c.state for c in snapshot.cells] == ["timeout", "skipped"]
    assert snapshot.cells[0].ename == "KeyboardInterrupt"
    assert len(t.kernels.started) == 1 and kernel.alive


def test_a_desync_rebuilds_only_the_channels_and_the_cell_resumes_on_the_same_msg_id(tree):
    t = tree("train()")
    t.kernels.prepare = lambda kernel: setattr(kernel, "on_execute", hang)
    done = t.run()
    kernel = t.kernels.kernel(1)
    old_pump, msg_id, _ = kernel.wait_for_run()

    old_pump.tell(ChannelsFailed("iopub", "ValueError: '<IDS|MSG>' is not in list"))
    recovered = t.events.wait("iopub.recovered")
    assert recovered["resumed_msg_id"] == msg_id
    assert t.events.wait("iopub.desync")["error"].startswith("iopub: ValueError")
    assert t.events.wait("supervisor.child_restarted")["child"] == "kernel"
    assert old_pump.stopped and len(kernel.pumps) == 2
    assert len(t.kernels.started) == 1 and kernel.alive  # the same kernel, variables and all

    new_pump = kernel.pumps[1]
    new_pump.reply("iopub", "stream", {"name": "stdout", "text": "after the gap\n"}, msg_id)
    new_pump.reply("iopub", "status", {"execution_state": "idle"}, msg_id)
    snapshot = done.result(timeout=5)
    assert snapshot.state == "ok"
    text = t.cell_text(0)
    assert "working" in text and "after the gap" in text
    assert "⚠ Lost the kernel's output stream and reconnected" in text
    assert not t.events.named("kernel.ready", kernel_pid=None)
    assert len(t.events.named("kernel.ready")) == 1  # no second start


def test_a_desync_whose_idle_was_lost_ends_the_cell_a_second_after_the_probe_answers(tree):
    t = tree("print('last words')")
    t.kernels.prepare = lambda kernel: setattr(kernel, "on_execute", hang)
    done = t.run()
    kernel = t.kernels.kernel(1)
    pump, _, _ = kernel.wait_for_run()
    pump.tell(ChannelsFailed("iopub", "bad signature"))
    t.events.wait("iopub.recovered")  # the new channels' probe is answered at once

    t.clock.advance(0.95)
    t.settle()
    assert not done.done()
    t.clock.advance(0.2)
    snapshot = done.result(timeout=5)
    assert snapshot.state == "ok" and "may be missing" in snapshot.cells[0].detail


def test_repeated_desyncs_past_the_intensity_give_up_on_the_notebook_and_stop_its_kernel(tree):
    t = tree("spam()")
    t.kernels.prepare = lambda kernel: setattr(kernel, "on_execute", hang)
    done = t.run()
    kernel = t.kernels.kernel(1)
    kernel.wait_for_run()
    for failure in range(6):
        kernel.pumps[-1].tell(ChannelsFailed("iopub", f"broken {failure}"))
        if failure < 5:
            t.events.count("iopub.recovered", failure + 1)  # the next session is up
    gave_up = t.events.wait("supervisor.gave_up")
    assert gave_up["supervisor"] == f"notebook:{t.path}" and gave_up["restarts"] == 6
    snapshot = done.result(timeout=5)
    assert snapshot.state == "error" and "gave up" in snapshot.reason
    assert not kernel.alive and t.events.wait("kernel.stopped")


def test_a_kernel_that_never_answers_fails_at_its_start_timeout_and_is_stopped(tree):
    t = tree("print('never')")
    t.kernels.prepare = lambda kernel: setattr(kernel, "answers_probes", False)
    done = t.run()
    kernel = t.kernels.kernel(1)
    t.events.wait("kernel.starting")

    t.clock.advance(1.95)  # LAUNCH.start_timeout is 2 s
    t.settle()
    assert not done.done()
    t.clock.advance(0.1)
    failed = t.events.wait("kernel.start_failed")
    assert "no answer within 2s" in failed["reason"]
    snapshot = done.result(timeout=5)
    assert snapshot.cells[0].ename == "NbMcpKernelStartFailed"
    assert not kernel.alive and kernel.stopped_with == [0.0]
    assert t.kernel_info().state is KernelState.NONE
    assert not t.events.named("supervisor.child_restarted")  # a failed start is no restart


def test_a_kernel_that_exits_while_starting_says_why_and_nothing_retries(tree):
    t = tree("print('never')")

    def exits(kernel):
        kernel.start_error = "kernel 'python3' failed to start: exec format error"

    t.kernels.prepare = exits
    snapshot = t.run().result(timeout=5)
    assert "exec format error" in snapshot.cells[0].evalue
    t.clock.advance(3.0)
    t.settle()
    assert len(t.kernels.started) == 1 and len(t.events.named("kernel.starting")) == 1


def test_a_heartbeat_that_stops_makes_the_kernel_unresponsive_until_it_beats_again(tree):
    t = tree("spin()")
    t.kernels.prepare = lambda kernel: setattr(kernel, "on_execute", hang)
    done = t.run()
    kernel = t.kernels.kernel(1)
    pump, msg_id, _ = kernel.wait_for_run()

    pump.tell(Heartbeat(False, 3.2))
    unresponsive = t.events.wait("kernel.unresponsive")
    assert unresponsive["silent_sec"] == 3.2 and unresponsive["kernel_pid"] == kernel.pid
    assert t.kernel_info().state is KernelState.UNRESPONSIVE
    assert "stopped answering" in t.cell_text(0)

    pump.tell(Heartbeat(True, 0.0))
    pump.reply("shell", "execute_reply", {"status": "ok", "execution_count": 1}, msg_id)
    pump.reply("iopub", "status", {"execution_state": "idle"}, msg_id)
    assert done.result(timeout=5).state == "ok"
    assert t.kernel_info().state is KernelState.IDLE


def test_a_failure_of_the_process_actor_itself_stops_its_kernel_and_the_next_run_starts_fresh(
    tree,
):
    t = tree("fit()", "print('next')")
    t.kernels.prepare = lambda kernel: setattr(kernel, "on_execute", hang)
    done = t.run()
    first = t.kernels.kernel(1)
    first.wait_for_run()
    t.settle()
    t.kernels.prepare = lambda kernel: None

    first.fault = OSError("a bug in a backend")  # its next is_alive() raises
    t.clock.advance(0.1)
    snapshot = done.result(timeout=5)
    assert snapshot.cells[0].ename == "NbMcpKernelDied"
    assert "kernel process actor failed" in snapshot.cells[0].evalue
    assert not first.alive and first.stopped_with == [0.0]  # a kernel nobody owns is stopped
    restarted = t.events.count("supervisor.child_restarted", 2)
    assert {e["child"] for e in restarted} == {"process", "kernel"}

    assert t.run(1).result(timeout=5).state == "ok"
    assert len(t.kernels.started) == 2
