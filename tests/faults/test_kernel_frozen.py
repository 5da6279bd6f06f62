"""A kernel frozen mid-cell (SIGSTOP): found by the heartbeat, recovered by interrupt or restart.

While the kernel is stopped, every tool must still answer within its bound: nothing in nb may
wait on a kernel that cannot answer.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Iterator

import pytest

from tests.faults.conftest import gone, job_id_of, kernel_pid, process_state, timed, wait_event
from tests.helpers import McpServer, events_named, gate, load, notebook, outputs_text, wait_for

pytestmark = pytest.mark.usefixtures("no_process_left_behind")

BOUND = 5.0  # seconds any tool call may take while the kernel is frozen


@pytest.fixture
def frozen() -> Iterator[list[int]]:
    """Pids a test stopped: whatever happens, they are continued again at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGCONT)


def freeze_mid_cell(
    server: McpServer, name: str, flag, frozen: list[int]
) -> tuple[object, str, int]:
    path = notebook(
        server,
        name,
        "kept = 'survives an interrupt'",
        gate(flag, before="print('before the freeze', flush=True)", after="print('released')"),
        "print('later cell')",
    )
    job = job_id_of(server.call("exec_all", path=name, block_for=0).text)
    wait_for(
        lambda: "before the freeze" in outputs_text(path, 1), timeout=30, what="the cell to run"
    )
    pid = kernel_pid(server, path)
    frozen.append(pid)
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: process_state(pid) == "T", timeout=5, what=f"kernel {pid} to stop")
    return path, job, pid


def assert_tools_answer_in_time(server: McpServer, name: str, job: str) -> None:
    for tool, arguments in [
        ("status", {}),
        ("list_cells", {"path": name}),
        ("read_cell", {"path": name, "index": 1}),
        ("exec_status", {"job_id": job}),
    ]:
        reply, took = timed(lambda t=tool, a=arguments: server.call(t, **a))
        assert not reply.is_error, (tool, reply.text)
        assert took < BOUND, f"{tool} took {took:.1f}s while the kernel was frozen"


def test_a_frozen_kernel_is_reported_unresponsive_and_an_interrupt_brings_it_back(
    server: McpServer, tmp_path, frozen
):
    path, job, pid = freeze_mid_cell(server, "frozen.ipynb", tmp_path / "never.flag", frozen)

    unresponsive = wait_event(server, "kernel.unresponsive", timeout=15, notebook=str(path))
    assert unresponsive["kernel_pid"] == pid and unresponsive["level"] == "warning"
    assert unresponsive["silent_sec"] >= 3
    wait_for(
        lambda: "kernel stopped answering" in outputs_text(path, 1),
        timeout=5,
        what="the unresponsive marker in the running cell",
    )
    marker = outputs_text(path, 1)
    assert "frozen or overloaded" in marker and "▶ Running" in marker

    assert_tools_answer_in_time(server, "frozen.ipynb", job)
    status = server.call("status")
    assert re.search(rf"frozen\.ipynb\s+python3\s+pid {pid}\s+unresponsive", status.text), (
        status.text
    )
    assert process_state(pid) == "T"  # nothing so far has touched the kernel

    reply, took = timed(lambda: server.call("interrupt", path="frozen.ipynb"))
    assert not reply.is_error and took < BOUND, (took, reply.text)
    assert "interrupt" in reply.text

    done = server.call("exec_status", job_id=job, block_for=15)
    assert f"Job {job} on frozen.ipynb: error" in done.text, done.text
    assert "KeyboardInterrupt" in done.text and "skipped" in done.text
    cells = load(path)["cells"]
    assert [o["ename"] for o in cells[1]["outputs"] if o["output_type"] == "error"] == [
        "KeyboardInterrupt"
    ]
    assert "released" not in outputs_text(path, 1) and "▶ Running" not in outputs_text(path, 1)
    assert "⊘ Skipped" in outputs_text(path, 2)

    # The same kernel, running again, variables kept.
    assert process_state(pid) in ("R", "S")
    again = server.call("run_scratch", path="frozen.ipynb", code="print(kept)")
    assert not again.is_error and "survives an interrupt" in again.text, again.text
    mine = [e for e in server.events() if e.get("notebook") == str(path)]
    assert len(events_named(mine, "kernel.starting")) == 1
    assert any(e["reason"] == "user" for e in events_named(mine, "kernel.interrupted"))
    assert not events_named(mine, "kernel.died")
    wait_for(
        lambda: re.search(
            rf"frozen\.ipynb\s+python3\s+pid {pid}\s+idle", server.call("status").text
        ),
        timeout=5,
        what="status to show the kernel idle again",
    )


def test_restart_kernel_recovers_a_frozen_kernel_with_a_fresh_one(
    server: McpServer, tmp_path, frozen
):
    path, job, pid = freeze_mid_cell(server, "restart.ipynb", tmp_path / "never.flag", frozen)
    wait_event(server, "kernel.unresponsive", timeout=15, notebook=str(path))
    assert_tools_answer_in_time(server, "restart.ipynb", job)

    reply, took = timed(lambda: server.call("restart_kernel", path="restart.ipynb"))
    assert not reply.is_error and took < BOUND, (took, reply.text)
    assert "restart" in reply.text

    done = server.call("exec_status", job_id=job, block_for=15)
    assert f"Job {job} on restart.ipynb: error" in done.text, done.text
    assert "NbMcpKernelRestarted" in done.text
    errors = [o for o in load(path)["cells"][1]["outputs"] if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["NbMcpKernelRestarted"]
    assert "▶ Running" not in outputs_text(path, 1)
    assert "⊘ Skipped" in outputs_text(path, 2)

    # The frozen process is gone; a fresh kernel runs the next cell, without the old variables.
    wait_for(lambda: gone(pid), timeout=10, what=f"the frozen kernel {pid} to be killed")
    new_pid = kernel_pid(server, path, after=1)
    assert new_pid != pid
    again = server.call("run_scratch", path="restart.ipynb", code="print('fresh'); kept")
    assert "fresh" in again.text and "NameError" in again.text, again.text
    restarted = wait_event(server, "kernel.restarted", notebook=str(path))
    assert restarted["reason"] == "restart_kernel"
    status = server.call("status")
    assert re.search(rf"restart\.ipynb\s+python3\s+pid {new_pid}\s+idle", status.text), status.text


def test_tools_answer_in_time_while_an_idle_kernel_is_frozen(server: McpServer, frozen):
    # No cell running: the heartbeat still notices, and nothing waits on the kernel.
    path = notebook(server, "idle.ipynb", "x = 1")
    assert ": ok" in server.call("exec_cell", path="idle.ipynb", index=0).text
    pid = kernel_pid(server, path)
    frozen.append(pid)
    os.kill(pid, signal.SIGSTOP)
    wait_event(server, "kernel.unresponsive", timeout=15, notebook=str(path))
    for tool, arguments in [
        ("status", {}),
        ("list_cells", {"path": "idle.ipynb"}),
        ("interrupt", {"path": "idle.ipynb"}),
    ]:
        reply, took = timed(lambda t=tool, a=arguments: server.call(t, **a))
        assert not reply.is_error, (tool, reply.text)
        assert took < BOUND, f"{tool} took {took:.1f}s while the kernel was frozen"
    # The interrupt woke it (SIGCONT): it answers again, with its variables.
    wait_for(lambda: process_state(pid) in ("R", "S"), timeout=5, what="the kernel to run again")
    again = server.call("run_scratch", path="idle.ipynb", code="print('x plus one is', x + 1)")
    assert not again.is_error and "x plus one is 2" in again.text, again.text
