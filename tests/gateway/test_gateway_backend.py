"""GatewayBackend against a real Kernel Gateway: what it records (0600, no token), how a new
daemon reattaches to the kernel an earlier one left (same variables, the output the gateway
buffered meanwhile replayed), and how starting fails (clearly, nothing local started)."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import psutil
import pytest
from nb_mcp.actors.backend import KernelStartError
from nb_mcp.actors.gateway_backend import GatewayBackend, KernelGone, gateway_records
from nb_mcp.actors.gateway_client import GatewayClient
from nb_mcp.actors.gateway_settings import GatewaySettings

from tests.gateway.cells import Recorder, execute, run_cell, stream_text, wait_ready
from tests.gateway.support import RunningGateway
from tests.helpers import wait_for


def settings_of(gateway: RunningGateway, **extra: str) -> GatewaySettings:
    settings = GatewaySettings.from_env(gateway.env(**extra))
    assert settings is not None
    return settings


def every_file_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def test_a_started_kernel_is_recorded_0600_with_its_gateway_and_never_the_token(
    kernel_gateway: RunningGateway, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    backend = GatewayBackend(settings_of(kernel_gateway), "python3", state, tmp_path / "a.ipynb")
    started = backend.start()
    try:
        assert started.pid is None and backend.pid is None and backend.exit_code() is None
        assert started.connection_info["kernel_id"] == backend.kernel_id
        backend.record_execution({"job_id": "j-1", "cell_id": "c1", "msg_id": "m1"})
        [record] = gateway_records(state)
        path = Path(record["record_path"])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert record["kernel_id"] == backend.kernel_id
        assert record["gateway_url"] == kernel_gateway.url
        assert record["in_flight"]["cell_id"] == "c1"
        assert record["server_pid"] == os.getpid()
        for file in every_file_under(state):
            assert kernel_gateway.token not in file.read_text()
    finally:
        backend.stop(grace=0.0)
    assert gateway_records(state) == []
    client = GatewayClient(settings_of(kernel_gateway))
    assert client.kernel(started.connection_info["kernel_id"]) is None  # deleted
    client.close()


def test_a_new_daemon_reattaches_with_the_variables_and_the_output_it_missed(
    kernel_gateway: RunningGateway, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    settings = settings_of(kernel_gateway)
    first = GatewayBackend(settings, "python3", state, tmp_path / "b.ipynb")
    first.start()
    earlier = Recorder()
    later = Recorder()
    flag = tmp_path / "go"
    try:
        channels = first.open_channels(earlier.ref, "first")
        wait_ready(channels, earlier)
        run_cell(channels, earlier, "answer = 42")
        msg_id = execute(
            channels,
            "import os, time\nprint('before', flush=True)\n"
            f"while not os.path.exists({str(flag)!r}):\n    time.sleep(0.02)\n"
            "print('while nobody listened', flush=True)",
        )
        wait_for(lambda: "before" in stream_text(earlier.answers(msg_id)), what="the first line")
        first.record_execution({"job_id": "j-2", "cell_id": "c2", "msg_id": msg_id})
        channels.stop()  # the daemon dies; the kernel and its cell run on
        first.close()
        flag.touch()
        [record] = gateway_records(state)
        again = GatewayBackend.reattach(record, settings, state)
        assert again.kernel_id == first.kernel_id and again.is_alive()
        resumed = again.open_channels(later.ref, "second")
        wait_for(lambda: later.idle(msg_id), timeout=15, what="the replayed end of the cell")
        assert "while nobody listened" in stream_text(later.answers(msg_id))
        check = run_cell(resumed, later, "print(answer)")
        assert stream_text(later.answers(check)) == "42\n"
        resumed.stop()
        [adopted] = gateway_records(state)
        assert adopted["in_flight"]["msg_id"] == msg_id
        assert adopted["kernel_session"]  # the process it knows, to tell a replacement
        again.stop(grace=0.0)
    finally:
        earlier.stop()
        later.stop()
        cleanup = GatewayClient(settings)
        if first.kernel_id:
            cleanup.delete_kernel(first.kernel_id)
        cleanup.close()


def test_reattaching_to_a_kernel_the_gateway_no_longer_has_forgets_it(
    kernel_gateway: RunningGateway, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    settings = settings_of(kernel_gateway)
    first = GatewayBackend(settings, "python3", state, tmp_path / "c.ipynb")
    first.start()
    [record] = gateway_records(state)
    assert first.kernel_id is not None
    first.client.delete_kernel(first.kernel_id)
    with pytest.raises(KernelGone, match="no longer has kernel"):
        GatewayBackend.reattach(record, settings, state)
    assert gateway_records(state) == []


def test_reattaching_under_another_gateway_url_is_refused_and_the_record_kept(
    kernel_gateway: RunningGateway, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = GatewayBackend(settings_of(kernel_gateway), "python3", state, tmp_path / "d.ipynb")
    first.start()
    try:
        [record] = gateway_records(state)
        elsewhere = GatewaySettings.from_env({"JUPYTER_GATEWAY_URL": "http://127.0.0.1:9"})
        assert elsewhere is not None
        with pytest.raises(KernelStartError, match=re.escape("now names http://127.0.0.1:9")):
            GatewayBackend.reattach(record, elsewhere, state)
        assert len(gateway_records(state)) == 1
    finally:
        first.stop(grace=0.0)


def test_a_refused_start_is_a_clear_error_and_nothing_runs_anywhere(
    kernel_gateway: RunningGateway, tmp_path: Path
) -> None:
    kernels_before = {p.pid for p in kernel_gateway.kernel_processes()}
    ours_before = {p.pid for p in psutil.Process().children(recursive=True)}
    backend = GatewayBackend(
        settings_of(kernel_gateway, JUPYTER_GATEWAY_AUTH_TOKEN="not-the-token"),
        "python3",
        tmp_path / "state",
        tmp_path / "e.ipynb",
    )
    with pytest.raises(KernelStartError) as refused:
        backend.start()
    assert kernel_gateway.url in str(refused.value)
    assert "JUPYTER_GATEWAY_AUTH_TOKEN is wrong" in str(refused.value)
    assert "not-the-token" not in str(refused.value)
    assert not backend.is_alive()
    assert gateway_records(tmp_path / "state") == []
    assert {p.pid for p in kernel_gateway.kernel_processes()} == kernels_before
    assert {p.pid for p in psutil.Process().children(recursive=True)} == ours_before
    backend.close()


def test_the_record_never_holds_a_secret_header_either(
    kernel_gateway: RunningGateway, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    settings = settings_of(kernel_gateway, JUPYTER_GATEWAY_HEADERS=json.dumps({"X-Key": "s3cr3t"}))
    backend = GatewayBackend(settings, "python3", state, tmp_path / "f.ipynb")
    backend.start()
    try:
        for file in every_file_under(state):
            assert "s3cr3t" not in file.read_text()
        assert "s3cr3t" not in repr(settings) and kernel_gateway.token not in str(settings)
    finally:
        backend.stop(grace=0.0)
