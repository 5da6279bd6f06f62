"""The kernel actors over the backend seam, deterministic: what a remote kernel's channels say
(a gateway's ChannelsResumed, GatewayLost, RemoteKernelDied), a backend's own start timeout and
non-blocking interrupt, the tools' requests, and a kernel taken over with its running cell.

Real actors on a ManualClock over a scripted kernel process (tests/unit/kernel_double.py).
"""

from __future__ import annotations

import uuid
from concurrent.futures import Future

import pytest
from nb_mcp.actors.attached_backend import AttachedBackend
from nb_mcp.actors.backend import KernelBackend, LocalBackend
from nb_mcp.actors.gateway_backend import GatewayBackend
from nb_mcp.actors.gateway_channels import ChannelsResumed, GatewayLost, RemoteKernelDied
from nb_mcp.actors.job import JobSpec
from nb_mcp.actors.kernel_process import Inheritance
from nb_mcp.actors.kernel_protocol import KernelState, Resumed
from nb_mcp.supervisor.notebook_tree import TakenOver

from tests.unit.kernel_double import ScriptedBackend, ScriptedKernel
from tests.unit.kernel_tree import LAUNCH, running

pytestmark = pytest.mark.timeout(20)


def test_a_remote_kernel_death_takes_the_path_of_a_local_one_without_waiting_for_a_tick(tree):
    t, done, kernel, pump, _ = running(tree, "fit()", "print('next')")
    reason = "the gateway no longer has this kernel (deleted or culled)"
    kernel.die(exit_code=None, reason=reason)
    pump.tell(RemoteKernelDied(reason))  # no clock.advance: the news itself is enough

    died = t.events.wait("kernel.died")
    assert died["reason"] == reason and "exit_code" not in died  # no exit code from afar
    snapshot = done.result(timeout=5)
    assert [c.state for c in snapshot.cells] == ["died", "skipped"]
    assert reason in snapshot.cells[0].evalue
    assert t.events.wait("supervisor.child_restarted")["child"] == "kernel"


def test_a_request_the_dropped_connection_may_have_lost_ends_the_cell_and_is_never_resent(tree):
    t, done, kernel, pump, msg_id = running(tree, "charge_card()")
    pump.tell(ChannelsResumed(gap_sec=1.5, maybe_lost=(msg_id,)))

    snapshot = done.result(timeout=5)
    assert snapshot.cells[0].ename == "NbMcpRequestLost"
    assert "did not send it again" in snapshot.cells[0].evalue
    assert len(kernel.runs) == 1  # sent once, whatever happened to it
    resumed = t.events.wait("gateway.channels_resumed")
    assert resumed["gap_sec"] == 1.5 and resumed["maybe_lost"] == 1


def test_a_resumed_connection_marks_the_gap_and_a_lost_idle_ends_the_cell_after_the_probe(tree):
    t, done, kernel, pump, _ = running(tree, "train()")
    pump.tell(ChannelsResumed(gap_sec=0.4))
    t.events.wait("gateway.channels_resumed")
    t.settle()
    assert "⚠ Lost the connection to the kernel and reconnected" in t.cell_text(0)
    assert not done.done()

    t.clock.advance(1.15)  # the probe sent at the resume was answered at once; no idle came
    snapshot = done.result(timeout=5)
    assert snapshot.state == "ok" and "may be missing" in snapshot.cells[0].detail
    assert len(kernel.pumps) == 1  # the same channels: the pump reconnected by itself


def test_a_lost_gateway_ends_the_cell_keeps_the_kernel_and_the_next_run_reconnects(tree):
    t, done, kernel, pump, _ = running(tree, "remote()", "print('again')")
    pump.tell(GatewayLost("https://gw.example:8888", 30.0, "ConnectError: refused"))

    snapshot = done.result(timeout=5)
    assert snapshot.cells[0].ename == "NbMcpGatewayLost"
    assert "https://gw.example:8888" in snapshot.cells[0].evalue
    lost = t.events.wait("gateway.lost")
    assert lost["gateway_url"] == "https://gw.example:8888" and lost["unreachable_sec"] == 30.0
    assert pump.stopped and kernel.alive and not kernel.stopped_with

    kernel.on_execute = lambda pump, msg_id, _: pump.run_ok(msg_id)
    again = t.run(1).result(timeout=5)
    assert again.state == "ok"
    assert len(t.kernels.started) == 1 and len(kernel.pumps) == 2  # same kernel, new channels
    assert len(t.events.named("kernel.ready")) == 1  # not a new kernel


def test_an_interrupt_that_fails_later_is_an_event_and_never_blocks_the_process(tree):
    t, done, kernel, _, _ = running(tree, "spin()")
    refused: Future[None] = Future()
    kernel.interrupt_outcome = refused
    reply = t.refs.kernel().interrupt().get(timeout=5)
    assert reply == f"sent an interrupt to the running cell {t.cell_ids[0]}"
    assert t.events.wait("kernel.interrupted")["reason"] == "user"

    refused.set_exception(RuntimeError("HTTP 503 from the gateway"))
    failed = t.events.wait("kernel.interrupt_failed")
    assert "503" in failed["error"]
    assert t.kernel_info().state is KernelState.BUSY  # the process answered throughout
    assert not done.done()


def test_a_backend_may_lengthen_the_start_timeout(tree):
    t = tree("print('slow')")
    t.kernels.start_timeout = 10.0  # e.g. a gateway pulling an image
    t.kernels.prepare = lambda kernel: setattr(kernel, "answers_probes", False)
    done = t.run()
    t.kernels.kernel(1)
    t.clock.advance(9.95)
    t.settle()
    assert not done.done(), "nb's own 2 s start timeout was applied"
    t.clock.advance(0.1)
    assert "no answer within 10s" in done.result(timeout=5).cells[0].evalue


def test_restart_kernel_ends_the_running_cell_and_starts_a_fresh_kernel(tree):
    t, done, kernel, _, _ = running(tree, "x = 1", "print('later')")
    reply = t.refs.kernel().restart_kernel(LAUNCH).get(timeout=5)
    assert "restarting the kernel" in reply

    snapshot = done.result(timeout=5)
    assert snapshot.cells[0].ename == "NbMcpKernelRestarted"
    assert t.events.wait("kernel.restarted")["reason"] == "restart_kernel"
    assert not kernel.alive and len(t.kernels.started) == 2
    assert not t.events.named("kernel.stopped")  # a restart, not a stop
    assert t.run(1).result(timeout=5).state == "ok"


def test_shutdown_kernel_stops_it_before_it_answers(tree):
    t, done, kernel, _, _ = running(tree, "x = 1")
    reply = t.refs.kernel().shutdown_kernel().get(timeout=5)
    assert reply == "the kernel is shut down; the next execution starts a new one"
    assert kernel.stopped_with == [2.0] and not kernel.alive  # stopped when the tool answers
    assert t.events.wait("kernel.stopped")["reason"] == "shutdown_kernel"
    assert done.result(timeout=5).cells[0].ename == "NbMcpKernelStopped"
    assert t.kernel_info().state is KernelState.NONE
    assert t.refs.kernel().shutdown_kernel().get(timeout=5) == "no kernel was running"


def test_every_backend_has_every_member_of_the_seam():
    members = {name for name in vars(KernelBackend) if not name.startswith("_")}
    members |= set(KernelBackend.__annotations__)
    assert {"open_channels", "death_reason", "start_timeout", "interrupt"} <= members
    for backend in (LocalBackend, AttachedBackend, GatewayBackend, ScriptedBackend):
        missing = {name for name in members if not hasattr(backend, name)}
        missing -= {"kernel_name", "limits"}  # set per instance
        assert not missing, f"{backend.__name__} lacks {missing}"


def test_a_kernel_taken_over_with_a_running_cell_gets_a_job_that_ends_that_cell(tree, tmp_path):
    kernel = ScriptedKernel(LAUNCH)
    kernel.alive = True
    backend = ScriptedBackend(kernel)
    job_id, msg_id = f"j-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    notebook = tmp_path / "n.ipynb"

    def taken_over(cell_ids: list[str]) -> TakenOver:
        cell_id = cell_ids[0]
        resumed = Resumed(job_id, cell_id, msg_id, started_at=1_799_999_990.0, note="⚠ gap")
        inheritance = Inheritance(backend, LAUNCH.choice, 1_799_999_000.0, resumed)
        spec = JobSpec(
            job_id=job_id,
            notebook=notebook,
            kind="resumed",
            cell_ids=(cell_id,),
            launch=LAUNCH,
            timeout=None,
            submitted_at=1_799_999_990.0,
            resumed=resumed,
        )
        return TakenOver(inheritance, spec)

    t = tree("train()", taken_over=taken_over)
    reattached = t.events.wait("kernel.reattached")
    assert reattached["kernel_pid"] == kernel.pid and reattached["job_id"] == job_id
    pump = kernel.pumps[0]
    pump.reply("iopub", "stream", {"name": "stdout", "text": "epoch 9\n"}, msg_id)
    pump.reply("iopub", "status", {"execution_state": "idle"}, msg_id)

    finished = t.events.wait("job.finished", job_id=job_id)
    assert finished["status"] == "ok"
    assert t.events.wait("cell.finished", job_id=job_id)["status"] == "ok"
    text = t.cell_text(0)
    assert "⚠ gap" in text and "epoch 9" in text and "✓ Done" in text
    assert "▶ Running" not in text
    info = t.kernel_info()
    assert info.reattached and info.state is KernelState.IDLE and not t.kernels.started
