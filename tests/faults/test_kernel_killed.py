"""A kernel SIGKILLed mid-cell, as the out-of-memory killer does it."""

from __future__ import annotations

import os
import re
import signal
import time

import nbformat
import pytest

from tests.faults.conftest import gone, job_id_of, kernel_pid, parse_time, process_state, wait_event
from tests.helpers import McpServer, events_named, gate, load, notebook, outputs_text, wait_for

pytestmark = pytest.mark.usefixtures("no_process_left_behind")


def test_a_kernel_killed_mid_cell_is_found_at_once_and_the_next_run_gets_a_fresh_kernel(
    server: McpServer, tmp_path
):
    never = tmp_path / "never.flag"
    other_flag = tmp_path / "other.flag"
    path = notebook(
        server,
        "victim.ipynb",
        "value = 'set before the kill'",
        gate(never, before="print('working', flush=True)"),
        "print('after the kill')",
    )
    document = nbformat.read(path, as_version=4)
    document.cells[2].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="previous output\n")
    ]
    nbformat.write(document, path)
    other = notebook(
        server,
        "bystander.ipynb",
        gate(
            other_flag,
            before="survivor = 'still here'\nprint('bystander running', flush=True)",
            after="print('bystander done', survivor)",
        ),
    )

    bystander = job_id_of(
        server.call("exec_cell", path="bystander.ipynb", index=0, block_for=0).text
    )
    victim = job_id_of(server.call("exec_all", path="victim.ipynb", block_for=0).text)
    wait_for(lambda: "working" in outputs_text(path, 1), timeout=30, what="the victim cell to run")
    wait_for(
        lambda: "bystander running" in outputs_text(other, 0),
        timeout=30,
        what="the bystander cell to run",
    )
    pid = kernel_pid(server, path)
    other_pid = kernel_pid(server, other)
    assert process_state(pid) in ("R", "S")

    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)

    died = wait_event(server, "kernel.died", notebook=str(path))
    assert died["kernel_pid"] == pid and died["level"] == "error"
    assert died["exit_code"] == -signal.SIGKILL
    assert parse_time(died) - killed_at < 0.5, "the death was not found within 0.5 s"
    finished = wait_event(server, "cell.finished", job_id=victim, status="died")
    assert parse_time(finished) - killed_at < 0.5, "the cell did not end within 0.5 s"
    assert finished["ename"] == "NbMcpKernelDied"

    reply = server.call("exec_status", job_id=victim, block_for=10)
    assert not reply.is_error, reply.text
    assert f"Job {victim} on victim.ipynb: error" in reply.text, reply.text
    assert "NbMcpKernelDied" in reply.text and "skipped" in reply.text
    job_end = wait_event(server, "job.finished", job_id=victim)
    assert job_end["status"] == "error" and job_end["cells_skipped"] == 1

    # What a person sees in the file: the error, the footer, the skipped cell's old output.
    cells = load(path)["cells"]
    errors = [o for o in cells[1]["outputs"] if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["NbMcpKernelDied"]
    message = errors[0]["evalue"]
    assert "died" in message and "SIGKILL" in message  # what happened
    assert "variables are gone" in message.lower() and "re-run" in message  # what to do
    text = outputs_text(path, 1)
    assert "working" in text and "✗ Kernel died at" in text and "▶ Running" not in text
    skipped = outputs_text(path, 2)
    assert "⊘ Skipped" in skipped and "previous output" in skipped
    assert "after the kill" not in skipped
    wait_for(lambda: gone(pid), timeout=5, what=f"the killed kernel {pid} to be reaped")

    # The other notebook's job never noticed.
    other_flag.touch()
    done = server.call("exec_status", job_id=bystander, block_for=20)
    assert f"Job {bystander} on bystander.ipynb: ok" in done.text, done.text
    assert "bystander done still here" in outputs_text(other, 0)
    assert process_state(other_pid) in ("R", "S")
    status = server.call("status")
    assert re.search(rf"bystander\.ipynb\s+python3\s+pid {other_pid}\s+idle", status.text), (
        status.text
    )
    assert not [e for e in events_named(server.events(), "kernel.died") if e["kernel_pid"] != pid]

    # The next execution on the killed notebook starts a fresh kernel: new pid, no variables.
    again = server.call("run_scratch", path="victim.ipynb", code="print(value)")
    assert not again.is_error, again.text
    assert "NameError" in again.text, again.text
    new_pid = kernel_pid(server, path, after=1)
    assert new_pid != pid and process_state(new_pid) in ("R", "S")
    fresh = server.call("exec_cell", path="victim.ipynb", index=0)
    assert ": ok" in fresh.text, fresh.text
    assert load(path)["cells"][0]["execution_count"] == 1  # a new kernel counts from 1


def test_a_kernel_killed_between_cells_is_noticed_and_the_next_cell_starts_a_new_kernel(
    server: McpServer,
):
    path = notebook(server, "idle.ipynb", "x = 1\nprint('first run')")
    first = server.call("exec_cell", path="idle.ipynb", index=0)
    assert ": ok" in first.text, first.text
    pid = kernel_pid(server, path)

    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    died = wait_event(server, "kernel.died", notebook=str(path))
    assert parse_time(died) - killed_at < 0.5
    assert died.get("job_id") is None  # nothing was running

    status = server.call("status")
    assert f"pid {pid}" not in status.text, status.text
    second = server.call("exec_cell", path="idle.ipynb", index=0)
    assert not second.is_error and ": ok" in second.text and "first run" in second.text
    assert kernel_pid(server, path, after=1) != pid
