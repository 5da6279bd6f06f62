"""Losing the gateway: a websocket cut mid-cell is resumed (the cell finishes, the gap is
reported), a gateway unreachable for a moment is waited for, and one gone for longer than the
request timeout is a GatewayLost naming it, never a hang. Faults are real: a TCP proxy that
cuts or refuses connections, and a gateway process killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nb_mcp.actors.gateway_backend import GatewayBackend
from nb_mcp.actors.gateway_channels import ChannelsResumed, GatewayLost, RemoteKernelDied
from nb_mcp.actors.gateway_settings import GatewaySettings

from tests.gateway.cells import Recorder, execute, stream_text, wait_ready
from tests.gateway.support import COUNTING_CELL, RunningGateway, TcpProxy
from tests.helpers import wait_for


def backend_via(url: str, gateway: RunningGateway, state: Path, **extra: str) -> GatewayBackend:
    settings = GatewaySettings.from_env(gateway.env(url=url, **extra))
    assert settings is not None
    backend = GatewayBackend(settings, "python3", state, state / "nb.ipynb")
    backend.start()
    return backend


@pytest.fixture
def proxied(
    kernel_gateway: RunningGateway, proxy: TcpProxy, tmp_path: Path
) -> Iterator[GatewayBackend]:
    backend = backend_via(
        proxy.url, kernel_gateway, tmp_path / "state", JUPYTER_GATEWAY_REQUEST_TIMEOUT="30"
    )
    yield backend
    proxy.start()  # a test may leave it refusing
    backend.stop(grace=0.0)


def test_a_websocket_cut_mid_cell_is_resumed_and_the_cell_finishes(
    proxied: GatewayBackend, proxy: TcpProxy, recorder: Recorder, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    channels = proxied.open_channels(recorder.ref, "cut")
    try:
        wait_ready(channels, recorder)
        msg_id = execute(channels, COUNTING_CELL.format(flag=str(flag)))
        wait_for(lambda: "tick 10" in stream_text(recorder.answers(msg_id)), what="tick 10")
        assert proxy.cut() >= 1
        flag.touch()
        resumed = wait_for(lambda: recorder.of_type(ChannelsResumed), timeout=10, what="resume")
        wait_for(lambda: recorder.idle(msg_id), timeout=20, what="the cell's idle after resume")
        reply = wait_for(lambda: recorder.reply(msg_id), what="the cell's reply")
    finally:
        channels.stop()
    assert reply["content"]["status"] == "ok"
    assert stream_text(recorder.answers(msg_id)).endswith("done\n")
    assert 0 <= resumed[0].gap_sec < 8
    assert proxy.accepted >= 2  # it did reconnect, through the proxy
    assert proxied.is_alive()
    assert not recorder.of_type(GatewayLost) and not recorder.of_type(RemoteKernelDied)


def test_a_gateway_unreachable_for_a_moment_is_waited_for(
    proxied: GatewayBackend, proxy: TcpProxy, recorder: Recorder
) -> None:
    channels = proxied.open_channels(recorder.ref, "blip")
    try:
        wait_ready(channels, recorder)
        proxy.stop()  # connections cut and refused from now on
        time.sleep(1.5)  # the outage being simulated, not a wait for a result
        proxy.start()
        resumed = wait_for(lambda: recorder.of_type(ChannelsResumed), timeout=10, what="resume")
        msg_id = execute(channels, "print('still here')")
        wait_for(lambda: recorder.idle(msg_id), timeout=15, what="a cell after the outage")
    finally:
        channels.stop()
    assert resumed[0].gap_sec >= 1.5
    assert stream_text(recorder.answers(msg_id)) == "still here\n"
    assert not recorder.of_type(GatewayLost)


def test_a_gateway_unreachable_past_the_request_timeout_is_lost(
    proxy: TcpProxy, recorder: Recorder, kernel_gateway: RunningGateway, tmp_path: Path
) -> None:
    fast = backend_via(
        proxy.url, kernel_gateway, tmp_path / "state", JUPYTER_GATEWAY_REQUEST_TIMEOUT="2"
    )
    channels = fast.open_channels(recorder.ref, "lost")
    try:
        wait_ready(channels, recorder)
        # Taken before the cut: the loss is timed from the moment the websocket drops, which
        # happens inside proxy.stop(), so a clock started after it could read under 2 s.
        began = time.monotonic()
        proxy.stop()
        lost = wait_for(lambda: recorder.of_type(GatewayLost), timeout=10, what="GatewayLost")
        took = time.monotonic() - began
        assert fast.is_alive()  # unreachable is not dead: the kernel may well be running
    finally:
        channels.stop()
        proxy.start()
        fast.stop(grace=0.0)
    assert 2 <= took < 5
    assert lost[0].url == proxy.url and lost[0].unreachable_sec >= 2


def test_the_gateway_killed_mid_cell_is_lost_within_the_request_timeout(
    own_kernel_gateway: RunningGateway, recorder: Recorder, tmp_path: Path
) -> None:
    backend = backend_via(
        own_kernel_gateway.url,
        own_kernel_gateway,
        tmp_path / "state",
        JUPYTER_GATEWAY_REQUEST_TIMEOUT="3",
    )
    channels = backend.open_channels(recorder.ref, "killed")
    try:
        wait_ready(channels, recorder)
        msg_id = execute(channels, "import time\nprint('busy', flush=True)\ntime.sleep(60)")
        wait_for(lambda: "busy" in stream_text(recorder.answers(msg_id)), what="the cell")
        own_kernel_gateway.kill()
        began = time.monotonic()
        lost = wait_for(lambda: recorder.of_type(GatewayLost), timeout=15, what="GatewayLost")
        took = time.monotonic() - began
    finally:
        channels.stop()
    assert took < 3 + 2
    assert lost[0].url == own_kernel_gateway.url
    assert recorder.reply(msg_id) is None and not recorder.idle(msg_id)
    assert not recorder.of_type(RemoteKernelDied)


def test_a_kernel_restarted_while_the_gateway_was_unreachable_is_a_death_on_return(
    proxied: GatewayBackend, proxy: TcpProxy, recorder: Recorder, kernel_gateway: RunningGateway
) -> None:
    channels = proxied.open_channels(recorder.ref, "restarted-unseen")
    try:
        wait_ready(channels, recorder)
        msg_id = execute(channels, "import os; print(os.getpid())")
        wait_for(lambda: recorder.idle(msg_id), what="the pid")
        pid = int(stream_text(recorder.answers(msg_id)))
        proxy.stop()  # no websocket: the gateway's restart notice reaches nobody
        os.kill(pid, signal.SIGKILL)
        wait_for(
            lambda: (p := kernel_gateway.kernel_process(proxied.kernel_id or "")) and p.pid != pid,
            timeout=20,
            what="the gateway to restart the kernel",
        )
        assert proxied.is_alive()  # nothing told us yet
        proxy.start()
        died = wait_for(lambda: recorder.of_type(RemoteKernelDied), timeout=15, what="a death")
    finally:
        channels.stop()
    assert "restarted" in died[0].reason
    assert not proxied.is_alive()
