"""A session whose environment names a Jupyter Kernel Gateway runs its notebooks' kernels there,
through the real MCP path: `nb mcp` spawned with the session's environment, the MCP SDK client,
a real Kernel Gateway (tests/gateway/support.py). The notebook, the jobs, the markers and the
events stay here; only the kernel runs on the gateway."""

from __future__ import annotations

import os
import re
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import validate_logs
from tests.gateway.support import RunningGateway
from tests.helpers import (
    McpServer,
    events_named,
    gate,
    load,
    notebook,
    outputs_text,
    read_events,
    server_env,
    wait_for,
)

PID_CELL = "import os\nprint('pid', os.getpid())"


def printed_pid(text: str) -> int:
    return int(re.search(r"pid (\d+)", text).group(1))


@pytest.fixture(scope="module")
def remote(
    kernel_gateway: RunningGateway, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[McpServer]:
    """One `nb mcp` whose session's kernels run on the shared Kernel Gateway."""
    tmp = tmp_path_factory.mktemp("remote")
    workdir = tmp / "work"
    workdir.mkdir()
    env = server_env(tmp, **kernel_gateway.env())
    with McpServer(workdir, env, tmp / "server.stderr") as running:
        yield running
    validate_logs(tmp)


def test_a_cell_runs_on_the_gateway_and_its_outputs_stream_into_the_file(
    remote: McpServer, kernel_gateway: RunningGateway, tmp_path: Path
) -> None:
    flag = tmp_path / "go.flag"
    path = notebook(
        remote,
        "remote.ipynb",
        PID_CELL,
        gate(flag, before="print('first half', flush=True)", after="print('second half')"),
    )
    ran = remote.call("exec_cell", path="remote.ipynb", index=0)
    assert not ran.is_error, ran.text
    pid = printed_pid(ran.text)
    assert pid in {p.pid for p in kernel_gateway.kernel_processes()}  # the gateway's child
    assert pid not in {p.pid for p in psutil.Process(remote.pid).children(recursive=True)}
    remote.call("exec_cell", path="remote.ipynb", index=1, block_for=0)
    wait_for(
        lambda: "first half" in outputs_text(path, 1), timeout=30, what="streamed output on disk"
    )
    assert "Running" in outputs_text(path, 1) and "second half" not in outputs_text(path, 1)
    flag.touch()
    wait_for(lambda: "✓ Done" in outputs_text(path, 1), timeout=30, what="the cell to finish")
    assert "second half" in outputs_text(path, 1)
    assert load(path)["metadata"]["kernelspec"]["name"] == "python3"
    ready = [e for e in events_named(remote.events(), "kernel.ready") if e["notebook"] == str(path)]
    assert ready and ready[0]["gateway_url"] == kernel_gateway.url and ready[0]["kernel_id"]
    assert ready[0].get("kernel_pid") is None
    status = remote.call("status")
    assert f"kernel {ready[0]['kernel_id']}" in status.text or kernel_gateway.url in status.text


def test_the_token_is_never_in_a_reply_an_event_or_a_readable_state_file(
    remote: McpServer, kernel_gateway: RunningGateway
) -> None:
    notebook(remote, "token.ipynb", "print('hello')")
    replies = [
        remote.call("exec_cell", path="token.ipynb", index=0).text,
        remote.call("list_kernels", path="token.ipynb").text,
        remote.call("status").text,
    ]
    token = kernel_gateway.token
    assert all(token not in reply for reply in replies)
    assert token not in remote.log_path.read_text()
    state = remote.env_path("NB_MCP_STATE_DIR")
    for file in state.rglob("*"):
        if file.is_file() and token.encode() in file.read_bytes():
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_list_kernels_and_kernel_name_use_the_gateways_kernelspecs(
    remote: McpServer, kernel_gateway: RunningGateway
) -> None:
    listing = remote.call("list_kernels")
    assert f"Kernelspecs of the gateway at {kernel_gateway.url}" in listing.text
    assert "broken · test: broken" in listing.text  # a kernelspec only the gateway has
    notebook(remote, "named.ipynb", "print('x')")
    wrong = remote.call("exec_cell", path="named.ipynb", index=0, kernel_name="no-such-spec")
    assert wrong.is_error
    assert kernel_gateway.url in wrong.text and "'no-such-spec'" in wrong.text
    assert "python3" in wrong.text and "broken" in wrong.text  # what it has
    local_env = remote.call("exec_cell", path="named.ipynb", index=0, kernel_name="/usr")
    assert local_env.is_error and "gateway" in local_env.text


def test_a_refused_start_is_a_clear_error_naming_the_gateway_and_nothing_starts_here(
    remote: McpServer, kernel_gateway: RunningGateway
) -> None:
    path = notebook(remote, "broken.ipynb", "print('x')")
    reply = remote.call("exec_cell", path="broken.ipynb", index=0, kernel_name="broken")
    assert kernel_gateway.url in reply.text or kernel_gateway.url in outputs_text(path, 0)
    failed = events_named(remote.events(), "kernel.start_failed")
    failed = [e for e in failed if e["notebook"] == str(path)]
    assert failed and kernel_gateway.url in failed[0]["reason"]
    assert "ipykernel" not in " ".join(
        " ".join(p.cmdline()) for p in psutil.Process(remote.pid).children(recursive=True)
    )


def test_interrupt_and_a_timeout_reach_the_remote_kernel(remote: McpServer, tmp_path: Path) -> None:
    flag = tmp_path / "never.flag"
    path = notebook(remote, "control.ipynb", "kept = 1", gate(flag), "import time\ntime.sleep(60)")
    remote.call("exec_cell", path="control.ipynb", index=0)
    remote.call("exec_cell", path="control.ipynb", index=1, block_for=0)
    wait_for(lambda: "Running" in outputs_text(path, 1), timeout=30, what="the cell to run")
    assert "interrupt" in remote.call("interrupt", path="control.ipynb").text
    wait_for(lambda: "KeyboardInterrupt" in outputs_text(path, 1), timeout=30, what="the interrupt")
    timed = remote.call("exec_cell", path="control.ipynb", index=2, timeout=1, block_for=25)
    assert "timed out" in timed.text, timed.text
    assert "⏱ Timed out at" in outputs_text(path, 2)
    kept = remote.call("run_scratch", path="control.ipynb", code="print('kept', kept)")
    assert "kept 1" in kept.text  # interrupted, not restarted


def test_sigkill_of_the_remote_kernel_is_a_kernel_death_and_the_next_cell_gets_a_new_kernel(
    remote: McpServer, kernel_gateway: RunningGateway, tmp_path: Path
) -> None:
    flag = tmp_path / "never.flag"
    path = notebook(remote, "killed.ipynb", PID_CELL, gate(flag, before="x = 1"))
    pid = printed_pid(remote.call("exec_cell", path="killed.ipynb", index=0).text)
    remote.call("exec_cell", path="killed.ipynb", index=1, block_for=0)
    wait_for(lambda: "Running" in outputs_text(path, 1), timeout=30, what="the cell to run")
    os.kill(pid, signal.SIGKILL)  # the gateway restarts it in place: its state is gone
    wait_for(
        lambda: "NbMcpKernelDied" in outputs_text(path, 1), timeout=30, what="the death marker"
    )
    died = [e for e in events_named(remote.events(), "kernel.died") if e["notebook"] == str(path)]
    assert died and died[0]["gateway_url"] == kernel_gateway.url and died[0]["kernel_id"]
    again = remote.call("exec_cell", path="killed.ipynb", index=0)
    assert not again.is_error and printed_pid(again.text) != pid


def test_restart_kernel_restarts_it_on_the_gateway_and_the_next_cell_outputs_at_once(
    remote: McpServer,
) -> None:
    notebook(remote, "restart.ipynb", "kept = 1", "print('after restart', 'kept' in dir())")
    remote.call("exec_cell", path="restart.ipynb", index=0)
    assert "restart" in remote.call("restart_kernel", path="restart.ipynb").text
    after = remote.call("exec_cell", path="restart.ipynb", index=1, block_for=25)
    assert "after restart False" in after.text, after.text  # at once, and variables gone
    events = [e for e in remote.events() if e.get("notebook", "").endswith("restart.ipynb")]
    ready = events_named(events, "kernel.ready")
    assert len(ready) == 2 and ready[0]["kernel_id"] == ready[1]["kernel_id"]  # in place
    assert events_named(events, "kernel.restarted")


def test_a_wrong_token_is_a_clear_error_and_nothing_runs_locally(
    kernel_gateway: RunningGateway, tmp_path: Path, workdir: Path
) -> None:
    env = server_env(tmp_path, **kernel_gateway.env(JUPYTER_GATEWAY_AUTH_TOKEN="not-the-token"))
    with McpServer(workdir, env, tmp_path / "server.stderr") as server:
        notebook(server, "denied.ipynb", "print('x')")
        reply = server.call("exec_cell", path="denied.ipynb", index=0)
        assert reply.is_error
        assert kernel_gateway.url in reply.text and "JUPYTER_GATEWAY_AUTH_TOKEN" in reply.text
        assert not psutil.Process(server.pid).children(recursive=True)
        assert not events_named(read_events(tmp_path / "events.log"), "kernel.ready")
        assert "not-the-token" not in reply.text


def test_a_cell_that_ignores_its_timeouts_interrupt_gets_the_kernel_restarted_on_the_gateway(
    remote: McpServer,
) -> None:
    stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    path = notebook(remote, "stubborn.ipynb", "kept = 1", stubborn, "print('kept' in dir())")
    remote.call("exec_cell", path="stubborn.ipynb", index=0)
    timed = remote.call("exec_cell", path="stubborn.ipynb", index=1, timeout=1, block_for=25)
    assert "timed out" in timed.text, timed.text
    assert "⏱ Timed out at" in outputs_text(path, 1)
    after = remote.call("exec_cell", path="stubborn.ipynb", index=2, block_for=25)
    assert "False" in after.text, after.text  # a restarted kernel: the variables are gone
    events = [e for e in remote.events() if e.get("notebook") == str(path)]
    ready = events_named(events, "kernel.ready")
    assert len(ready) == 2 and ready[0]["kernel_id"] == ready[1]["kernel_id"]  # in place
    restarted = events_named(events, "kernel.restarted")
    assert restarted and "did not stop after its timeout" in restarted[0]["reason"]
