"""The channels websocket against a real Jupyter Kernel Gateway: what a cell prints arrives as
the same Incoming messages the local pump sends, in order, over either wire protocol; REST
interrupts; and what the gateway does to a kernel (a restart after SIGKILL, a delete, a
freeze) reaches the actor as a death or a heartbeat, never as a success."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from nb_mcp.actors.channels import Heartbeat
from nb_mcp.actors.gateway_backend import GatewayBackend
from nb_mcp.actors.gateway_channels import GatewayChannels, RemoteKernelDied
from nb_mcp.actors.gateway_settings import GatewaySettings
from nb_mcp.actors.gateway_wire import V1_PROTOCOL

from tests.gateway.cells import Recorder, execute, output_types, run_cell, stream_text, wait_ready
from tests.gateway.support import RunningGateway
from tests.helpers import wait_for


@pytest.fixture
def backend(kernel_gateway: RunningGateway, tmp_path: Path) -> Iterator[GatewayBackend]:
    settings = GatewaySettings.from_env(kernel_gateway.env())
    assert settings is not None
    started = GatewayBackend(settings, "python3", tmp_path / "state", tmp_path / "nb.ipynb")
    started.start()
    yield started
    started.stop(grace=0.0)


def open_ready(backend: GatewayBackend, recorder: Recorder, **tuning: float) -> GatewayChannels:
    channels = backend.open_channels(recorder.ref, "test", **tuning)
    wait_ready(channels, recorder)
    return channels


def kernel_pid(channels: GatewayChannels, recorder: Recorder) -> int:
    msg_id = run_cell(channels, recorder, "import os; print(os.getpid())")
    return int(stream_text(recorder.answers(msg_id)))


def freeze_until_missed_then_thaw(pid: int, recorder: Recorder) -> Heartbeat:
    """SIGSTOP the kernel until the pump tells a missed heartbeat, then SIGCONT it and wait
    until it beats again; return the missed beat."""
    os.kill(pid, signal.SIGSTOP)
    try:
        missed = wait_for(
            lambda: [b for b in recorder.of_type(Heartbeat) if not b.beating],
            timeout=10,
            what="a missed heartbeat",
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(
        lambda: [b for b in recorder.of_type(Heartbeat) if b.beating],
        timeout=10,
        what="the heartbeat back",
    )
    return missed[0]


def test_a_cells_outputs_arrive_in_order_from_a_kernel_under_the_gateway(
    backend: GatewayBackend, recorder: Recorder, kernel_gateway: RunningGateway
) -> None:
    channels = open_ready(backend, recorder)
    try:
        msg_id = run_cell(
            channels,
            recorder,
            "import os, sys\nprint('one')\nprint('two', file=sys.stderr)\nprint(os.getpid())\n"
            "display({'text/plain': 'shown'}, raw=True)\n6 * 7",
        )
        answers = recorder.answers(msg_id)
        pid = int(stream_text(answers).split()[-1])
        assert channels.protocol == V1_PROTOCOL
    finally:
        channels.stop()
    kinds = output_types(answers)
    assert kinds[0] == "status" and answers[0]["content"]["execution_state"] == "busy"
    assert kinds[-1] == "status" and answers[-1]["content"]["execution_state"] == "idle"
    assert (
        kinds.index("execute_input") < kinds.index("display_data") < kinds.index("execute_result")
    )
    assert stream_text(answers).startswith("one\n")
    assert stream_text(answers, "stderr") == "two\n"
    assert answers[kinds.index("execute_result")]["content"]["data"]["text/plain"] == "42"
    reply = recorder.reply(msg_id)
    assert reply is not None and reply["content"]["status"] == "ok"
    assert reply["msg_type"] == "execute_reply" and reply["header"]["msg_type"] == "execute_reply"
    # The kernel is the gateway's child, running the gateway's Python, not ours.
    kernel = psutil.Process(pid)
    assert kernel.ppid() == kernel_gateway.process.pid
    assert kernel.cmdline()[0] == kernel_gateway.process.args[0]
    assert psutil.Process(kernel_gateway.process.pid).cmdline()[0] != sys.executable


def test_the_legacy_json_protocol_carries_the_same_messages(
    kernel_gateway: RunningGateway, tmp_path: Path, recorder: Recorder
) -> None:
    settings = GatewaySettings.from_env(kernel_gateway.env())
    assert settings is not None
    legacy = GatewayBackend(
        settings, "python3", tmp_path / "state", tmp_path / "nb.ipynb", offer_v1=False
    )
    legacy.start()
    try:
        channels = open_ready(legacy, recorder)
        msg_id = run_cell(channels, recorder, "print('plain json')\n{'a': 1}")
        assert channels.protocol is None
        channels.stop()
    finally:
        legacy.stop(grace=0.0)
    answers = recorder.answers(msg_id)
    assert stream_text(answers) == "plain json\n"
    assert (
        next(m for m in answers if m["msg_type"] == "execute_result")["content"]["data"][
            "text/plain"
        ]
        == "{'a': 1}"
    )


def test_ten_thousand_lines_all_arrive_in_order(
    backend: GatewayBackend, recorder: Recorder
) -> None:
    channels = open_ready(backend, recorder)
    try:
        msg_id = run_cell(channels, recorder, "for i in range(10000):\n    print(f'line {i}')", 60)
    finally:
        channels.stop()
    lines = stream_text(recorder.answers(msg_id)).splitlines()
    assert lines == [f"line {i}" for i in range(10000)]


def test_an_interrupt_over_rest_stops_a_sleeping_cell_with_keyboardinterrupt(
    backend: GatewayBackend, recorder: Recorder
) -> None:
    channels = open_ready(backend, recorder)
    try:
        msg_id = execute(channels, "import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
        wait_for(lambda: "sleeping" in stream_text(recorder.answers(msg_id)), what="the sleep")
        backend.interrupt().result(timeout=10)
        wait_for(lambda: recorder.idle(msg_id), timeout=15, what="the interrupted cell's idle")
        reply = wait_for(lambda: recorder.reply(msg_id), what="the interrupted cell's reply")
    finally:
        channels.stop()
    errors = [m for m in recorder.answers(msg_id) if m["msg_type"] == "error"]
    assert errors and errors[0]["content"]["ename"] == "KeyboardInterrupt"
    assert reply["content"]["status"] == "error"
    assert backend.is_alive()


def test_a_sigkilled_remote_kernel_is_a_death_even_though_the_gateway_restarts_it(
    backend: GatewayBackend, recorder: Recorder, kernel_gateway: RunningGateway
) -> None:
    channels = open_ready(backend, recorder)
    try:
        pid = kernel_pid(channels, recorder)
        msg_id = execute(channels, "import time\nprint('working', flush=True)\ntime.sleep(60)")
        wait_for(lambda: "working" in stream_text(recorder.answers(msg_id)), what="the cell")
        os.kill(pid, signal.SIGKILL)
        died = wait_for(lambda: recorder.of_type(RemoteKernelDied), timeout=20, what="a death")
        assert not backend.is_alive()
        assert "restarted" in died[0].reason and "variables are gone" in died[0].reason
        assert backend.death_reason() == died[0].reason
        # The gateway did restart it, under the same id, in a new process.
        assert wait_for(
            lambda: (p := kernel_gateway.kernel_process(backend.kernel_id or "")) and p.pid != pid,
            timeout=20,
            what="the gateway's restarted kernel",
        )
    finally:
        channels.stop()
    # Never a success: no ok reply, no idle for the cell that was running.
    reply = recorder.reply(msg_id)
    assert reply is None or reply["content"]["status"] != "ok"
    assert len(recorder.of_type(RemoteKernelDied)) == 1


def test_a_kernel_deleted_behind_our_back_is_a_death(
    backend: GatewayBackend, recorder: Recorder
) -> None:
    channels = open_ready(backend, recorder, probe_interval=0.5)
    try:
        assert backend.kernel_id is not None
        backend.client.delete_kernel(backend.kernel_id)
        died = wait_for(lambda: recorder.of_type(RemoteKernelDied), timeout=15, what="a death")
    finally:
        channels.stop()
    assert "no longer has this kernel" in died[0].reason
    assert not backend.is_alive()


def test_a_frozen_remote_kernel_stops_beating_and_beats_again_when_thawed(
    backend: GatewayBackend, recorder: Recorder
) -> None:
    channels = open_ready(backend, recorder, hb_interval=0.3, hb_timeout=1.5)
    try:
        missed = freeze_until_missed_then_thaw(kernel_pid(channels, recorder), recorder)
    finally:
        channels.stop()
    assert missed.silent_sec >= 1.5
    assert backend.is_alive()  # frozen is not dead
    assert not recorder.of_type(RemoteKernelDied)


def test_a_restart_nb_asks_for_loses_the_variables_but_is_not_a_death(
    backend: GatewayBackend, recorder: Recorder, kernel_gateway: RunningGateway
) -> None:
    channels = open_ready(backend, recorder)
    try:
        pid = kernel_pid(channels, recorder)
        run_cell(channels, recorder, "x = 1")
        backend.restart()
        assert wait_for(
            lambda: (p := kernel_gateway.kernel_process(backend.kernel_id or "")) and p.pid != pid,
            timeout=20,
            what="the restarted kernel's new process",
        )
        wait_ready(channels, recorder)
        msg_id = run_cell(channels, recorder, "print('x' in globals())")
        assert stream_text(recorder.answers(msg_id)) == "False\n"
    finally:
        channels.stop()
    assert backend.is_alive()
    assert not recorder.of_type(RemoteKernelDied)


def test_a_remote_kernel_frozen_mid_cell_stops_beating(
    backend: GatewayBackend, recorder: Recorder
) -> None:
    channels = open_ready(backend, recorder, hb_interval=0.3, hb_timeout=1.5)
    try:
        pid = kernel_pid(channels, recorder)
        msg_id = execute(channels, "import time\nprint('computing', flush=True)\ntime.sleep(30)")
        wait_for(lambda: "computing" in stream_text(recorder.answers(msg_id)), what="the cell")
        wait_for(lambda: channels._control_while_busy, what="a ping answered while busy")
        missed = freeze_until_missed_then_thaw(pid, recorder)
        # Only now: a SIGINT that reaches a process still resuming from SIGSTOP may land on
        # another of its threads and leave the main thread's sleep running.
        backend.interrupt().result(timeout=10)
        wait_for(lambda: recorder.idle(msg_id), timeout=15, what="the interrupted cell")
    finally:
        channels.stop()
    assert missed.silent_sec >= 1.5
    assert [b.beating for b in recorder.of_type(Heartbeat)] == [False, True]
