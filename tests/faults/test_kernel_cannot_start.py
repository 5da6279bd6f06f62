"""Kernels that cannot start: a kernelspec whose command exits at once, or is missing, or
names no kernelspec at all. Each is a clear error, a bounded number of attempts, and the
server goes on serving the other notebooks.
"""

from __future__ import annotations

import re
import shutil
import sys

import pytest

from tests.faults.conftest import Kernelspecs, gone, notebook_on, timed, wait_event
from tests.helpers import (
    McpServer,
    events_named,
    load,
    notebook,
    outputs_text,
    server_env,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("no_process_left_behind")


def starting_events(server: McpServer, path) -> list[dict]:
    return [
        e for e in events_named(server.events(), "kernel.starting") if e["notebook"] == str(path)
    ]


def assert_no_retry_loop(server: McpServer, path, attempts: int) -> None:
    """Over a few seconds (probed by real work on another notebook), no more starts happen."""
    healthy = notebook(
        server, "healthy.ipynb", "import time\nt0 = time.time()", "print('ok', 6 * 7)"
    )
    reply, took = timed(lambda: server.call("exec_all", path="healthy.ipynb"))
    assert not reply.is_error and ": ok" in reply.text and "ok 42" in reply.text, reply.text
    assert took < 15
    assert "ok 42" in outputs_text(healthy, 1)
    # A kernel start and a two-cell job later, still exactly the attempts that were asked for.
    run_again = server.call("run_scratch", path="healthy.ipynb", code="print(time.time() - t0 > 0)")
    assert "True" in run_again.text
    assert len(starting_events(server, path)) == attempts


@pytest.mark.parametrize(
    ("argv", "exit_note"),
    [
        (["false"], "exit code 1"),
        ([sys.executable, "-c", "import sys; sys.exit(3)"], "exit code 3"),
    ],
    ids=["false", "python-exit-3"],
)
def test_a_kernel_whose_command_exits_at_once_is_a_clear_error_in_the_reply_and_the_cell(
    fault_server: McpServer, kernelspecs: Kernelspecs, argv, exit_note
):
    server = fault_server
    argv = [shutil.which(argv[0]) or argv[0], *argv[1:]]
    spec = kernelspecs.add("exits", [*argv, "{connection_file}"])
    path = notebook_on(server, "broken.ipynb", spec, "print('never')", "print('never either')")

    reply, took = timed(lambda: server.call("exec_all", path="broken.ipynb", block_for=20))
    assert not reply.is_error, reply.text  # the call worked; the job failed
    assert took < 15, f"the failed start took {took:.1f}s to report"
    assert ": error" in reply.text, reply.text
    assert "NbMcpKernelStartFailed" in reply.text and exit_note in reply.text, reply.text
    assert "skipped" in reply.text

    errors = [o for o in load(path)["cells"][0]["outputs"] if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["NbMcpKernelStartFailed"]
    assert exit_note in errors[0]["evalue"] and "log" in errors[0]["evalue"]  # where to look
    assert "never" not in outputs_text(path, 0)
    assert "⊘ Skipped" in outputs_text(path, 1)

    failed = wait_event(server, "kernel.start_failed", notebook=str(path))
    assert failed["level"] == "error" and failed["kernel_name"] == spec
    assert exit_note in failed["reason"]
    assert len(starting_events(server, path)) == 1
    assert_no_retry_loop(server, path, attempts=1)

    # Asking again is one more attempt, and the same clear error; never a loop.
    second = server.call("exec_cell", path="broken.ipynb", index=0, block_for=20)
    assert "NbMcpKernelStartFailed" in second.text, second.text
    assert len(starting_events(server, path)) == 2
    status = server.call("status")
    assert not status.is_error
    assert not re.search(r"broken\.ipynb.*\b(starting|busy|idle)\b", status.text), status.text


def test_a_kernelspec_whose_program_does_not_exist_is_a_clear_error(
    fault_server: McpServer, kernelspecs: Kernelspecs, tmp_path
):
    server = fault_server
    missing = tmp_path / "no-such-python"
    spec = kernelspecs.add(
        "ghost", [str(missing), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    )
    path = notebook_on(server, "ghost.ipynb", spec, "print('never')")
    reply = server.call("exec_cell", path="ghost.ipynb", index=0, block_for=20)
    assert ": error" in reply.text and "NbMcpKernelStartFailed" in reply.text, reply.text
    assert "no-such-python" in reply.text, reply.text  # says which program is missing
    errors = [o for o in load(path)["cells"][0]["outputs"] if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["NbMcpKernelStartFailed"]
    wait_event(server, "kernel.start_failed", notebook=str(path))
    assert_no_retry_loop(server, path, attempts=1)


def test_a_kernel_name_with_no_kernelspec_is_refused_and_changes_nothing(
    fault_server: McpServer,
):
    server = fault_server
    path = notebook(server, "named.ipynb", "print('never')")
    before = path.read_bytes()
    for tool, arguments in [
        ("exec_cell", {"path": "named.ipynb", "index": 0, "kernel_name": "no-such-kernel"}),
        ("exec_all", {"path": "named.ipynb", "kernel_name": "no-such-kernel"}),
        ("run_scratch", {"path": "named.ipynb", "code": "1", "kernel_name": "no-such-kernel"}),
        ("restart_kernel", {"path": "named.ipynb", "kernel_name": "no-such-kernel"}),
    ]:
        reply, took = timed(lambda t=tool, a=arguments: server.call(t, **a))
        assert reply.is_error, (tool, reply.text)
        assert "no kernel named 'no-such-kernel'" in reply.text, (tool, reply.text)
        assert "python3" in reply.text, (tool, reply.text)  # lists what is installed
        assert took < 5
    assert path.read_bytes() == before
    assert not starting_events(server, path)
    assert_no_retry_loop(server, path, attempts=0)


def test_a_notebook_whose_metadata_names_a_missing_kernelspec_is_refused_clearly(
    fault_server: McpServer,
):
    server = fault_server
    path = notebook_on(server, "meta.ipynb", "long-gone-kernel", "print('never')")
    before = path.read_bytes()
    reply = server.call("exec_cell", path="meta.ipynb", index=0)
    assert reply.is_error, reply.text
    assert "no kernel named 'long-gone-kernel'" in reply.text, reply.text
    assert path.read_bytes() == before
    # Naming an installed kernel runs it, metadata notwithstanding.
    ok = server.call("exec_cell", path="meta.ipynb", index=0, kernel_name="python3")
    assert ": ok" in ok.text and "never" in ok.text, ok.text
    wait_for(lambda: "never" in outputs_text(path, 0), what="the output on disk")
    assert [e["kernel_name"] for e in starting_events(server, path)] == ["python3"]


def test_a_kernel_that_never_answers_fails_at_the_start_timeout_and_is_killed(
    tmp_path, workdir, kernelspecs: Kernelspecs
):
    pid_file = tmp_path / "silent.pid"
    spec = kernelspecs.add(
        "silent",
        [
            sys.executable,
            "-c",
            "import os, sys, time\nopen(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(600)",
            str(pid_file),
            "{connection_file}",
        ],
    )
    env = server_env(
        tmp_path, JUPYTER_PATH=str(kernelspecs.root), NB_MCP_KERNEL_START_TIMEOUT_SEC="2"
    )
    with McpServer(workdir, env, tmp_path / "server.stderr") as server:
        path = notebook_on(server, "silent.ipynb", spec, "print('never')")
        reply, took = timed(lambda: server.call("exec_cell", path="silent.ipynb", index=0))
        assert ": error" in reply.text and "NbMcpKernelStartFailed" in reply.text, reply.text
        assert "NB_MCP_KERNEL_START_TIMEOUT_SEC" in reply.text, reply.text  # the knob to turn
        assert 2 <= took < 10, took
        pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="the pid"))
        wait_for(lambda: gone(pid), timeout=5, what=f"the silent kernel {pid} to be killed")
        failed = wait_event(server, "kernel.start_failed", notebook=str(path))
        assert "2s" in failed["reason"]
        assert len(starting_events(server, path)) == 1
        assert_no_retry_loop(server, path, attempts=1)
