"""What `nb status`, `nb cleanup` and the daemon's exit do with the state dir: kernel logs,
notebooks without a kernel, records with missing fields, and `nb --version`."""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import version
from pathlib import Path

import nbformat

from tests.helpers import (
    NB,
    McpServer,
    events_named,
    notebook,
    process_alive,
    read_events,
    server_env,
    wait_for,
)


def nb(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NB, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def kernel_logs(tmp_path: Path) -> set[Path]:
    return set((tmp_path / "state" / "kernels").glob("*.log"))


def run_and_stop_a_kernel(tmp_path: Path, env: dict[str, str], name: str) -> None:
    """`nb run` on a one-cell notebook: a kernel starts, runs, and is stopped."""
    path = tmp_path / f"{name}.ipynb"
    document = nbformat.v4.new_notebook()
    document.cells = [nbformat.v4.new_code_cell("print('ran')")]
    nbformat.write(document, path)
    assert nb(env, "run", str(path), cwd=tmp_path).returncode == 0


def log_of_kernel(tmp_path: Path, kernel_pid: int) -> Path:
    for record in (tmp_path / "state" / "kernels").glob("*.json"):
        data = json.loads(record.read_text())
        if data["pid"] == kernel_pid:
            return Path(data["log"])
    raise AssertionError(f"no kernel record for pid {kernel_pid}")


def test_nb_cleanup_removes_the_logs_of_stopped_kernels_and_keeps_a_running_kernels_log(
    tmp_path, workdir
):
    env = server_env(tmp_path)
    run_and_stop_a_kernel(tmp_path, env, "one")
    run_and_stop_a_kernel(tmp_path, env, "two")
    stopped = kernel_logs(tmp_path)
    assert len(stopped) == 2
    with McpServer(workdir, env, tmp_path / "server.stderr") as server:
        notebook(server, "live.ipynb", "x = 1")
        server.call("exec_cell", path="live.ipynb", index=0)
        (kernel_pid,) = [e["kernel_pid"] for e in events_named(server.events(), "kernel.ready")]
        live = log_of_kernel(tmp_path, kernel_pid)
        assert kernel_logs(tmp_path) == stopped | {live}

        dry = nb(env, "cleanup", "--dry-run")
        assert dry.returncode == 0
        assert dry.stdout == (
            "would stop 0 orphaned kernels; would remove 0 stale records and 2 logs of kernels "
            "that no longer run (dry run: nothing was changed)\n"
        )
        assert kernel_logs(tmp_path) == stopped | {live}

        done = nb(env, "cleanup")
        assert done.stdout == (
            "stopped 0 orphaned kernels; removed 0 stale records and 2 logs of kernels that no "
            "longer run\n"
        )
        assert kernel_logs(tmp_path) == {live}
        # The kernel runs on and its log is still its own: what it writes to fd 1 lands there.
        server.call(
            "run_scratch", path="live.ipynb", code="import os; os.write(1, b'still-logging\\n')"
        )
        wait_for(lambda: "still-logging" in live.read_text(), what="the kernel to write its log")
        assert process_alive(kernel_pid)

        again = nb(env, "cleanup", "--dry-run")
        assert again.stdout == (
            "nothing to clean up: no orphaned kernel, stale record or old kernel log\n"
        )


def test_the_daemon_removes_the_logs_of_stopped_kernels_when_it_idles_out(tmp_path, workdir):
    env = server_env(tmp_path, NB_DAEMON_IDLE_SEC="2")
    run_and_stop_a_kernel(tmp_path, env, "earlier")
    (earlier,) = kernel_logs(tmp_path)
    other_folder = tmp_path / "other"
    other_folder.mkdir()
    # A kernel the daemon does not own, running all along: its log must stay.
    with McpServer(other_folder, env, tmp_path / "other.stderr") as bystander:
        notebook(bystander, "mine.ipynb", "y = 2")
        bystander.call("exec_cell", path="mine.ipynb", index=0)
        (bystander_kernel,) = [
            e["kernel_pid"] for e in events_named(bystander.events(), "kernel.ready")
        ]
        kept = log_of_kernel(tmp_path, bystander_kernel)

        front = McpServer(workdir, env, tmp_path / "front.stderr", in_process=False)
        notebook(front, "idle.ipynb", "x = 1")
        front.call("exec_cell", path="idle.ipynb", index=0)
        # Other servers logged to the same file first: tell the daemon's events by its pid.
        daemon = json.loads((tmp_path / "state" / "daemon.json").read_text())["pid"]
        (daemon_kernel,) = [
            e["kernel_pid"]
            for e in events_named(read_events(tmp_path / "events.log"), "kernel.ready")
            if e["pid"] == daemon
        ]
        daemons = log_of_kernel(tmp_path, daemon_kernel)
        front.close()
        wait_for(lambda: not process_alive(daemon), timeout=60, what="the idle daemon to exit")

        assert not process_alive(daemon_kernel)
        assert kernel_logs(tmp_path) == {kept}, f"gone: {earlier}, {daemons}"
        assert process_alive(bystander_kernel)
        reply = bystander.call("run_scratch", path="mine.ipynb", code="print(y)")
        assert "2" in reply.text
    stopped = [e for e in read_events(tmp_path / "events.log") if e["event"] == "server.stopped"]
    assert any("idle" in e["reason"] for e in stopped)


def test_nb_status_shows_a_notebook_without_a_kernel_and_a_record_with_missing_fields(
    tmp_path, workdir
):
    env = server_env(tmp_path)
    front = McpServer(workdir, env, tmp_path / "front.stderr", in_process=False)
    try:
        notebook(front, "opened.ipynb", "x = 1")
        front.call("list_cells", path="opened.ipynb")  # open, no kernel started
        kernels = tmp_path / "state" / "kernels"
        (kernels / "0123456789ab.json").write_text(json.dumps({"kernel_id": "0123456789ab"}))
        status = nb(env, "status")
        assert status.returncode == 0, status.stderr
        assert "None" not in status.stdout, status.stdout
        opened = workdir / "opened.ipynb"
        assert f"  no kernel yet  {opened}  (open; a kernel starts at its first execution)" in (
            status.stdout
        )
        assert "kernels 0  jobs running 0" in status.stdout
        assert (
            "  no pid  (kernel name unknown)  (notebook unknown)  dead (stale record; "
            "`nb cleanup` removes it)" in status.stdout
        )
        cleanup = nb(env, "cleanup")
        assert "removed 1 stale record" in cleanup.stdout
        assert not (kernels / "0123456789ab.json").exists()
    finally:
        front.close()
        nb(env, "stop")


def test_nb_version_prints_the_installed_version_and_exits_0(tmp_path):
    result = nb(server_env(tmp_path), "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"nb {version('nb-mcp')}\n"
