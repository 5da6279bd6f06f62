"""The same backend against a real Jupyter Enterprise Gateway (its own venv: it pins
jupyter_server 1.x and jupyter_client 6), in its default local-process mode."""

from __future__ import annotations

from pathlib import Path

import psutil
from nb_mcp.actors.gateway_backend import GatewayBackend, gateway_records
from nb_mcp.actors.gateway_client import GatewayClient
from nb_mcp.actors.gateway_settings import GatewaySettings
from nb_mcp.actors.gateway_wire import V1_PROTOCOL

from tests.gateway.cells import Recorder, run_cell, stream_text, wait_ready
from tests.gateway.support import RunningGateway
from tests.helpers import wait_for


def test_a_cell_runs_on_enterprise_gateway_and_the_kernel_is_deleted_after(
    enterprise_gateway: RunningGateway, recorder: Recorder, tmp_path: Path
) -> None:
    settings = GatewaySettings.from_env(enterprise_gateway.env(KERNEL_TEAM="ml"))
    assert settings is not None
    state = tmp_path / "state"
    backend = GatewayBackend(settings, "python3", state, tmp_path / "eg.ipynb")
    started = backend.start()
    assert started.pid is None
    try:
        channels = backend.open_channels(recorder.ref, "eg")
        wait_ready(channels, recorder)
        msg_id = run_cell(
            channels,
            recorder,
            "import os\nprint(os.getpid(), os.environ['KERNEL_USERNAME'])\n1 + 1",
        )
        protocol = channels.protocol
        channels.stop()
    except BaseException:
        backend.stop(grace=0.0)
        raise
    answers = recorder.answers(msg_id)
    pid, user = stream_text(answers).split()
    assert user == "nb-test"
    assert (
        next(m for m in answers if m["msg_type"] == "execute_result")["content"]["data"][
            "text/plain"
        ]
        == "2"
    )
    assert recorder.reply(msg_id)["content"]["status"] == "ok"
    assert psutil.Process(int(pid)).ppid() == enterprise_gateway.process.pid
    assert protocol in (V1_PROTOCOL, None)  # 3.3.0 offers v1; older ones speak legacy JSON
    backend.stop(grace=0.0)
    client = GatewayClient(settings)
    assert client.kernel(started.connection_info["kernel_id"]) is None  # deleted: 404
    client.close()
    assert gateway_records(state) == []
    wait_for(
        lambda: not psutil.pid_exists(int(pid)) or psutil.Process(int(pid)).status() == "zombie",
        timeout=15,
        what="the deleted kernel's process to exit",
    )
