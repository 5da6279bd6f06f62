"""The `nb` commands around the server: watch, run, status, cleanup."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import nbformat

from tests.helpers import (
    NB,
    McpServer,
    gate,
    load,
    notebook,
    outputs_text,
    process_alive,
    read_events,
    server_env,
    wait_for,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "demo.ipynb"


def job_id_of(text: str) -> str:
    return re.search(r"j-[0-9a-f]{8}", text).group(0)


def watch(env: dict, cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NB, "watch", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def start_watch(env: dict, cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [NB, "watch", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_watch_prints_a_finished_jobs_events_from_the_first_and_exits_0(server):
    notebook(server, "w.ipynb", "print('hi')")
    job = job_id_of(server.call("exec_cell", path="w.ipynb", index=0).text)
    result = watch(server.env, server.cwd, "--job", job, "--path", str(server.cwd / "w.ipynb"))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["event"] == "job.submitted" and events[-1]["event"] == "job.finished"
    assert {e["job_id"] for e in events} == {job}
    assert [e["event"] for e in events] == [
        "job.submitted",
        "cell.started",
        "cell.finished",
        "job.finished",
    ]


def test_watch_exits_1_when_the_job_fails_and_prints_text_for_people(server):
    notebook(server, "f.ipynb", "raise ValueError('bad')")
    job = job_id_of(server.call("exec_cell", path="f.ipynb", index=0).text)
    result = watch(server.env, server.cwd, "--job", job, "--format", "text")
    assert result.returncode == 1
    assert re.search(
        r"^\d\d:\d\d:\d\d  cell\.finished\s+cell 1/1 error: ValueError: bad$", result.stdout, re.M
    )


def test_watch_follows_a_running_job_live_until_it_ends(server, tmp_path):
    flag = tmp_path / "w.flag"
    notebook(server, "live.ipynb", gate(flag, before="print('working', flush=True)"))
    job = job_id_of(server.call("exec_cell", path="live.ipynb", index=0, block_for=0).text)
    watcher = start_watch(server.env, server.cwd, "--job", job)
    first = watcher.stdout.readline()
    assert json.loads(first)["event"] == "job.submitted"
    wait_for(
        lambda: "working" in outputs_text(server.cwd / "live.ipynb", 0),
        timeout=20,
        what="the cell to run",
    )
    assert watcher.poll() is None  # still following
    flag.touch()
    out, _ = watcher.communicate(timeout=30)
    assert watcher.returncode == 0
    assert json.loads(out.splitlines()[-1])["event"] == "job.finished"


def test_watch_follows_the_log_through_rotation(tmp_path, workdir):
    env = server_env(tmp_path, NB_MCP_LOG_MAX_BYTES="10000", NB_MCP_PROGRESS_INTERVAL_SEC="0.05")
    with McpServer(workdir, env, tmp_path / "stderr") as server:
        flag = tmp_path / "rot.flag"
        notebook(
            server,
            "rot.ipynb",
            gate(
                flag,
                before="import itertools\n"
                "for i in itertools.count():\n"
                "    print('tick', i, 'x' * 200, flush=True); time.sleep(0.01)\n"
                f"    if os.path.exists({str(flag)!r}): break",
            ),
        )
        job = job_id_of(server.call("exec_cell", path="rot.ipynb", index=0, block_for=0).text)
        watcher = start_watch(server.env, server.cwd, "--job", job)
        wait_for(
            lambda: len(list(tmp_path.glob("events.log.*"))) >= 2,
            timeout=40,
            what="the log to rotate twice",
        )
        flag.touch()
        out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "job.submitted" and events[-1]["event"] == "job.finished"
    outputs = [e for e in events if e["event"] == "cell.output"]
    in_log = [
        e
        for e in read_events(tmp_path / "events.log")
        if e["event"] == "cell.output" and e.get("job_id") == job
    ]
    assert len(outputs) >= len(in_log) > 0


def test_watch_exits_2_without_a_log_and_4_for_an_unknown_job(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {
        **os.environ,
        "NB_MCP_STATE_DIR": str(tmp_path / "state"),
        "NB_MCP_LOG_PATH": str(empty / "missing.log"),
    }
    result = watch(env, empty, "--job", "j-12345678")
    assert result.returncode == 2 and "no event log found" in result.stderr
    (empty / "other.log").write_text(
        json.dumps(
            {
                "timestamp": "2026-01-01T00:00:00.000Z",
                "level": "info",
                "event": "server.stopped",
                "message": "nb stopped",
                "pid": 1,
                "reason": "stdin closed",
                "uptime_sec": 1.0,
            }
        )
        + "\n"
    )
    result = watch(env, empty, "--job", "j-12345678", "--log", str(empty / "other.log"))
    assert result.returncode == 4 and "no job j-12345678" in result.stderr


def test_watch_exits_3_when_the_server_stops_before_the_job_finishes(tmp_path, workdir):
    server = McpServer(workdir, server_env(tmp_path), tmp_path / "stderr")
    notebook(server, "stop.ipynb", gate(tmp_path / "never.flag"))
    job = job_id_of(server.call("exec_cell", path="stop.ipynb", index=0, block_for=0).text)
    watcher = start_watch(server.env, server.cwd, "--job", job)
    assert json.loads(watcher.stdout.readline())["event"] == "job.submitted"
    server.close()
    out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 3, (out, err)
    assert json.loads(out.splitlines()[-1])["status"] == "stopped"
    assert "stopped before this cell finished" not in outputs_text(workdir / "stop.ipynb", 0)
    assert "Stopped at" in outputs_text(workdir / "stop.ipynb", 0)


def test_watch_exits_3_when_the_server_is_killed_mid_job(tmp_path, workdir):
    server = McpServer(workdir, server_env(tmp_path), tmp_path / "stderr")
    try:
        notebook(server, "kill.ipynb", gate(tmp_path / "never.flag"))
        job = job_id_of(server.call("exec_cell", path="kill.ipynb", index=0, block_for=0).text)
        wait_for(
            lambda: events_of(server, "kernel.ready"), timeout=20, what="the kernel to be ready"
        )
        watcher = start_watch(server.env, server.cwd, "--job", job)
        assert json.loads(watcher.stdout.readline())["event"] == "job.submitted"
        os.kill(server.pid, signal.SIGKILL)
        out, err = watcher.communicate(timeout=30)
        assert watcher.returncode == 3, (out, err)
        assert "stopped before job" in err
    finally:
        server.close()
        _cleanup_kernels(tmp_path)


def test_status_reports_an_orphaned_kernel_and_cleanup_stops_only_that(tmp_path, workdir):
    server = McpServer(workdir, server_env(tmp_path), tmp_path / "stderr")
    try:
        notebook(server, "orphan.ipynb", gate(tmp_path / "never.flag", before="print('x')"))
        server.call("exec_cell", path="orphan.ipynb", index=0, block_for=0)
        wait_for(
            lambda: "x\n" in outputs_text(workdir / "orphan.ipynb", 0),
            timeout=20,
            what="the cell's first output on disk",
        )
        (kernel_pid,) = [e["kernel_pid"] for e in server.events() if e["event"] == "kernel.ready"]
        os.kill(server.pid, signal.SIGKILL)
        wait_for(lambda: not process_alive(server.pid), what="the killed server to be gone")
        saved = load(workdir / "orphan.ipynb")  # the last flush: valid JSON, outputs so far
        assert "x\n" in outputs_text(workdir / "orphan.ipynb", 0) and saved["cells"]
        bystander = subprocess.Popen(["sleep", "60"])  # not ours: must survive cleanup
        env = server_env(tmp_path)
        status = subprocess.run([NB, "status"], env=env, capture_output=True, text=True, timeout=30)
        assert status.returncode == 0
        assert re.search(rf"pid {kernel_pid}\s+python3\s+.*ORPHANED", status.stdout), status.stdout
        as_json = json.loads(
            subprocess.run(
                [NB, "status", "--json"], env=env, capture_output=True, text=True, timeout=30
            ).stdout
        )
        assert [k["pid"] for k in as_json["kernels"] if k["orphaned"]] == [kernel_pid]
        cleanup = subprocess.run(
            [NB, "cleanup"], env=env, capture_output=True, text=True, timeout=30
        )
        assert cleanup.returncode == 0 and "stopped 1 orphaned kernel" in cleanup.stdout
        wait_for(lambda: not process_alive(kernel_pid), timeout=10, what="the orphan to be gone")
        assert bystander.poll() is None
        bystander.kill()
        bystander.wait()
        assert not list((tmp_path / "state" / "kernels").glob("*.json"))
    finally:
        server.close()


def test_nb_run_executes_the_shipped_example_into_the_file(tmp_path):
    folder = tmp_path / "demo"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "demo.ipynb")
    result = subprocess.run(
        [NB, "run", "demo.ipynb"],
        cwd=folder,
        env=server_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "demo.ipynb: ok" in result.stderr
    cells = [c for c in load(folder / "demo.ipynb")["cells"] if c["cell_type"] == "code"]
    assert all("✓ Done" in "".join(c["outputs"][-1]["text"]) for c in cells)
    bar = [
        o
        for c in cells
        for o in c["outputs"]
        if o["output_type"] == "stream" and "warm-up" in "".join(o["text"])
    ]
    assert len(bar) == 1 and "".join(bar[0]["text"]).count("\n") == 1
    assert len("".join(bar[0]["text"])) < 200
    displays = [o for c in cells for o in c["outputs"] if o["output_type"] == "display_data"]
    assert any("epoch 30/30" in "".join(o["data"].get("text/markdown", "")) for o in displays)
    assert any("image/png" in o["data"] for o in displays)
    nbformat.validate(nbformat.read(folder / "demo.ipynb", as_version=4))


def test_nb_run_exits_1_when_a_cell_fails(tmp_path):
    path = tmp_path / "fail.ipynb"
    document = nbformat.v4.new_notebook()
    document.cells = [nbformat.v4.new_code_cell("1/0"), nbformat.v4.new_code_cell("print(1)")]
    nbformat.write(document, path)
    result = subprocess.run(
        [NB, "run", str(path)],
        cwd=tmp_path,
        env=server_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "ZeroDivisionError" in result.stderr
    assert "⊘ Skipped" in outputs_text(path, 1)


def events_of(server: McpServer, name: str) -> list[dict]:
    return [e for e in server.events() if e["event"] == name]


def _cleanup_kernels(tmp_path: Path) -> None:
    subprocess.run([NB, "cleanup"], env=server_env(tmp_path), capture_output=True, timeout=30)
