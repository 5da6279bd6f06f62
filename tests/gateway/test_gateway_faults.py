"""Faults of a session's gateway, through the real MCP path: the gateway killed mid-cell, the
websocket cut by a proxy mid-cell, a kernel slow to start, plain http:// to another host; and
the same smoke test against Jupyter Enterprise Gateway."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from tests.gateway.support import COUNTING_CELL, RunningGateway, TcpProxy
from tests.gateway.venvs import kernel_gateway_venv
from tests.helpers import (
    McpServer,
    events_named,
    gate,
    notebook,
    outputs_text,
    read_events,
    server_env,
    wait_for,
)


def test_the_gateway_killed_mid_cell_ends_the_job_with_gateway_lost_and_tools_answer(
    own_kernel_gateway: RunningGateway, tmp_path: Path, workdir: Path
) -> None:
    env = server_env(tmp_path, **own_kernel_gateway.env(JUPYTER_GATEWAY_REQUEST_TIMEOUT="3"))
    flag = tmp_path / "never.flag"
    with McpServer(workdir, env, tmp_path / "server.stderr") as server:
        path = notebook(server, "lost.ipynb", gate(flag, before="print('running', flush=True)"))
        server.call("exec_cell", path="lost.ipynb", index=0, block_for=0)
        wait_for(lambda: "running" in outputs_text(path, 0), timeout=30, what="the cell to run")
        own_kernel_gateway.kill()
        began = time.monotonic()
        wait_for(
            lambda: "NbMcpGatewayLost" in outputs_text(path, 0),
            timeout=15,
            what="the cell to end with NbMcpGatewayLost",
        )
        assert time.monotonic() - began < 3 + 5  # the request timeout, and a few ticks
        assert own_kernel_gateway.url in outputs_text(path, 0)
        status = server.call("status")
        assert not status.is_error and "lost.ipynb" in status.text
        listed = server.call("list_cells", path="lost.ipynb")
        assert not listed.is_error
        lost = events_named(server.events(), "gateway.lost")
        assert lost and lost[0]["gateway_url"] == own_kernel_gateway.url
        assert not [p for p in psutil.Process(server.pid).children(recursive=True)]


def test_a_websocket_cut_by_a_proxy_mid_cell_is_resumed_and_the_cell_finishes_with_a_marker(
    kernel_gateway: RunningGateway, proxy: TcpProxy, tmp_path: Path, workdir: Path
) -> None:
    env = server_env(tmp_path, **kernel_gateway.env(url=proxy.url))
    flag = tmp_path / "go.flag"
    with McpServer(workdir, env, tmp_path / "server.stderr") as server:
        path = notebook(server, "cut.ipynb", COUNTING_CELL.format(flag=str(flag)))
        server.call("exec_cell", path="cut.ipynb", index=0, block_for=0)
        wait_for(lambda: "tick 10" in outputs_text(path, 0), timeout=30, what="tick 10 on disk")
        assert proxy.cut() >= 1
        flag.touch()
        wait_for(lambda: "✓ Done" in outputs_text(path, 0), timeout=30, what="the cell to finish")
        text = outputs_text(path, 0)
        assert "done" in text and "may be missing" in text
        resumed = events_named(server.events(), "gateway.channels_resumed")
        assert resumed and resumed[0]["notebook"] == str(path)
        assert not events_named(server.events(), "kernel.died")


def test_a_kernel_slow_to_start_shows_as_starting_in_progress_and_exec_status(
    kernel_gateway: RunningGateway, tmp_path: Path, workdir: Path
) -> None:
    python = str(kernel_gateway_venv().python)
    slow_start = f"sleep 4; exec {python} -m ipykernel_launcher -f $0"
    kernel_gateway.add_kernelspec("slow", ["/bin/sh", "-c", slow_start, "{connection_file}"])
    env = server_env(tmp_path, **kernel_gateway.env())
    with McpServer(workdir, env, tmp_path / "server.stderr") as server:
        path = notebook(server, "slow.ipynb", "print('at last')")
        waiting, progress = server.start_call(
            "exec_cell", path="slow.ipynb", index=0, kernel_name="slow", block_for=2
        )
        reply = waiting.result(timeout=30)
        job_id = reply.text.split("Job ", 1)[1].split()[0]
        assert any("waiting for the kernel to start" in (p[2] or "") for p in progress), progress
        status = server.call("exec_status", job_id=job_id)
        if "✓" not in status.text:  # still starting (a loaded machine may be quicker: done)
            assert "waiting for the kernel to start" in status.text, status.text
        done = server.call("exec_status", job_id=job_id, block_for=25)
        assert "at last" in done.text, done.text
        assert "at last" in outputs_text(path, 0)


def test_plain_http_to_another_host_is_a_warning_event_and_a_clear_start_error(
    tmp_path: Path, workdir: Path
) -> None:
    # 192.0.2.1 is TEST-NET-1: never routed, so the connection attempt times out.
    env = server_env(
        tmp_path,
        JUPYTER_GATEWAY_URL="http://192.0.2.1:8888",
        JUPYTER_GATEWAY_AUTH_TOKEN="secret-token-value",
        JUPYTER_GATEWAY_CONNECT_TIMEOUT="1",
        JUPYTER_GATEWAY_REQUEST_TIMEOUT="2",
    )
    with McpServer(workdir, env, tmp_path / "server.stderr") as server:
        notebook(server, "far.ipynb", "print('x')")
        reply = server.call("exec_cell", path="far.ipynb", index=0)
        assert reply.is_error and "http://192.0.2.1:8888" in reply.text
        assert not psutil.Process(server.pid).children(recursive=True)  # nothing local
    (warning,) = events_named(read_events(tmp_path / "events.log"), "gateway.insecure")
    assert warning["gateway_url"] == "http://192.0.2.1:8888" and "192.0.2.1" in warning["warning"]
    log = (tmp_path / "events.log").read_text()
    assert "secret-token-value" not in log and "secret-token-value" not in reply.text
    assert not events_named(read_events(tmp_path / "events.log"), "kernel.ready")


def test_a_cell_runs_on_enterprise_gateway_through_mcp(
    enterprise_gateway: RunningGateway, tmp_path: Path, workdir: Path
) -> None:
    env = server_env(tmp_path, **enterprise_gateway.env())
    with McpServer(workdir, env, tmp_path / "server.stderr") as server:
        cell = "import os\nprint('pid', os.getpid(), os.environ['KERNEL_USERNAME'])"
        path = notebook(server, "eg.ipynb", cell)
        reply = server.call("exec_cell", path="eg.ipynb", index=0, block_for=25)
        assert not reply.is_error and "nb-test" in reply.text, reply.text
        pid = int(reply.text.split("pid ", 1)[1].split()[0])
        assert psutil.Process(pid).ppid() == enterprise_gateway.process.pid
        assert "✓ Done" in outputs_text(path, 0)
        ready = events_named(server.events(), "kernel.ready")
        assert ready and ready[0]["gateway_url"] == enterprise_gateway.url


def test_a_start_past_its_launch_timeout_fails_clearly_and_nothing_starts_here(
    kernel_gateway: RunningGateway, tmp_path: Path, workdir: Path
) -> None:
    python = str(kernel_gateway_venv().python)
    never_in_time = f"sleep 30; exec {python} -m ipykernel_launcher -f $0"
    kernel_gateway.add_kernelspec("glacial", ["/bin/sh", "-c", never_in_time, "{connection_file}"])
    env = server_env(
        tmp_path,
        NB_MCP_KERNEL_START_TIMEOUT_SEC="2",
        **kernel_gateway.env(
            KERNEL_LAUNCH_TIMEOUT="1",
            JUPYTER_GATEWAY_LAUNCH_TIMEOUT_PAD="0",
            JUPYTER_GATEWAY_REQUEST_TIMEOUT="1",
        ),
    )
    with McpServer(workdir, env, tmp_path / "server.stderr") as server:
        path = notebook(server, "glacial.ipynb", "print('ran' + 'here')")
        began = time.monotonic()
        reply = server.call("exec_cell", path="glacial.ipynb", index=0, kernel_name="glacial")
        took = time.monotonic() - began
        assert "NbMcpKernelStartFailed" in reply.text or "could not start" in reply.text, reply.text
        assert took < 2 + 5, took  # the bound, and a few ticks
        assert "ranhere" not in outputs_text(path, 0)
        (failed,) = events_named(server.events(), "kernel.start_failed")
        assert kernel_gateway.url in failed["reason"], failed["reason"]
        assert not events_named(server.events(), "gateway.lost")  # starting, not lost
        assert not psutil.Process(server.pid).children(recursive=True)  # nothing local
