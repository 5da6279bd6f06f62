"""Gateway sessions on the per-user daemon: one daemon serves a project whose kernels run on a
gateway and another whose kernels run here; a daemon killed while its remote kernel lives is
replaced, and the next session naming that gateway takes the kernel over (variables intact),
and resumes the cell it was running; `nb status` and `nb cleanup` know kernels left on
gateways."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import psutil
import pytest

from tests.gateway.support import RunningGateway
from tests.helpers import (
    NB,
    McpServer,
    events_named,
    notebook,
    outputs_text,
    process_alive,
    server_env,
    wait_for,
)

HELD = "import os\nkept = 'remote state'\nprint('pid', os.getpid())"


TICKING = (
    "import os, time\n"
    "kept = 'remote state'\n"
    "print('pid', os.getpid(), flush=True)\n"
    "for tick in range(16):\n"
    "    print('tick', tick, flush=True)\n"
    "    time.sleep(0.5)\n"
    "print('last line', kept)"
)


def pid_in(text: str) -> int:
    return int(text.split("pid ", 1)[1].split()[0])


def daemon_pid(state: Path) -> int:
    def read() -> int | None:
        try:
            return json.loads((state / "daemon.json").read_text())["pid"]
        except (OSError, ValueError, KeyError):
            return None

    return wait_for(read, timeout=30, what="daemon.json")


def kill_daemon(state: Path) -> None:
    pid = daemon_pid(state)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not process_alive(pid), what="the daemon to die")


def front(workdir: Path, env: dict[str, str], tmp_path: Path, name: str) -> McpServer:
    return McpServer(workdir, env, tmp_path / f"{name}.stderr", in_process=False)


@pytest.fixture
def gateway_env(kernel_gateway: RunningGateway, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = server_env(tmp_path, **kernel_gateway.env())
    yield env
    subprocess.run([NB, "stop"], env=env, capture_output=True, timeout=90)
    subprocess.run([NB, "cleanup"], env=env, capture_output=True, timeout=60)


def test_one_daemon_runs_one_sessions_kernels_on_the_gateway_and_anothers_here(
    kernel_gateway: RunningGateway, gateway_env: dict[str, str], tmp_path: Path, workdir: Path
) -> None:
    local_env = {k: v for k, v in gateway_env.items() if not k.startswith("JUPYTER_GATEWAY")}
    with (
        front(workdir, local_env, tmp_path, "local") as local,
        front(workdir, gateway_env, tmp_path, "remote") as remote,
    ):
        assert local.pid == remote.pid  # one daemon, started by the local session
        cell = "import os\nprint('pid', os.getpid())"
        notebook(local, "a.ipynb", cell)
        notebook(remote, "b.ipynb", cell)
        local_pid = pid_in(local.call("exec_cell", path="a.ipynb", index=0).text)
        remote_pid = pid_in(remote.call("exec_cell", path="b.ipynb", index=0).text)
        daemon = psutil.Process(local.pid)
        assert local_pid in {p.pid for p in daemon.children(recursive=True)}
        assert remote_pid in {p.pid for p in kernel_gateway.kernel_processes()}
        assert remote_pid not in {p.pid for p in daemon.children(recursive=True)}
        assert "Kernelspecs of the gateway" in remote.call("list_kernels").text
        assert "Kernelspecs of the gateway" not in local.call("list_kernels").text
        # The local session on the remote kernel: it runs there, and the reply says so.
        told = local.call("exec_cell", path="b.ipynb", index=0)
        assert pid_in(told.text) == remote_pid
        assert f"runs on the gateway at {kernel_gateway.url}" in told.text, told.text
        local.call("restart_kernel", path="b.ipynb")  # with the local session's choice: here
        moved = pid_in(local.call("exec_cell", path="b.ipynb", index=0, block_for=25).text)
        assert moved in {p.pid for p in daemon.children(recursive=True)}


def test_a_remote_kernel_outlives_a_killed_daemon_and_the_next_session_takes_it_over(
    kernel_gateway: RunningGateway, gateway_env: dict[str, str], tmp_path: Path, workdir: Path
) -> None:
    state = tmp_path / "state"
    with front(workdir, gateway_env, tmp_path, "first") as first:
        notebook(first, "held.ipynb", HELD)
        pid = pid_in(first.call("exec_cell", path="held.ipynb", index=0).text)
        (ready,) = events_named(first.events(), "kernel.ready")
        kill_daemon(state)
    (record,) = (state / "gateway-kernels").glob("*.json")
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert kernel_gateway.token not in record.read_text()
    assert json.loads(record.read_text())["kernel_id"] == ready["kernel_id"]
    status = subprocess.run(
        [NB, "status"], env=gateway_env, capture_output=True, text=True, timeout=30
    ).stdout
    assert f"kernel {ready['kernel_id']} on {kernel_gateway.url}" in status and "LEFT" in status
    with front(workdir, gateway_env, tmp_path, "second") as second:
        kept = second.call("run_scratch", path="held.ipynb", code="print('pid', os.getpid(), kept)")
        assert f"pid {pid} remote state" in kept.text, kept.text  # the same kernel, variables on
        assert events_named(second.events(), "kernel.reattached")
        (again,) = events_named(second.events(), "kernel.ready")
        assert again["kernel_id"] == ready["kernel_id"]
        kill_daemon(state)
    cleaned = subprocess.run(
        [NB, "cleanup"], env=gateway_env, capture_output=True, text=True, timeout=60
    ).stdout
    assert f"shut down kernel {ready['kernel_id']} on {kernel_gateway.url}" in cleaned, cleaned
    assert not list((state / "gateway-kernels").glob("*.json"))
    asked = httpx2.get(
        f"{kernel_gateway.url}/api/kernels/{ready['kernel_id']}",
        headers={"Authorization": f"token {kernel_gateway.token}"},
        timeout=10,
    )
    assert asked.status_code == 404
    wait_for(
        lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie",
        timeout=15,
        what="the remote kernel's process to exit",
    )


def in_flight_recorded(state: Path) -> dict[str, object] | None:
    for record in (state / "gateway-kernels").glob("*.json"):
        try:
            cell = json.loads(record.read_text()).get("in_flight")
        except (OSError, ValueError):
            continue
        if cell:
            return cell
    return None


def kill_daemon_mid_cell(
    env: dict[str, str], tmp_path: Path, workdir: Path
) -> tuple[str, dict[str, object]]:
    """Run TICKING in ticking.ipynb on the gateway and SIGKILL the daemon once the cell's
    record names it; its job id and the recorded cell."""
    state, path = tmp_path / "state", workdir / "ticking.ipynb"
    with front(workdir, env, tmp_path, "first") as first:
        notebook(first, "ticking.ipynb", TICKING)
        reply = first.call("exec_cell", path="ticking.ipynb", index=0, block_for=0)
        job = re.search(r"j-[0-9a-f]{8}", reply.text).group(0)
        wait_for(lambda: "tick 0" in outputs_text(path, 0), timeout=60, what="the first tick")
        # Recorded once the cell has run a second: the record is what the next daemon resumes.
        cell = wait_for(lambda: in_flight_recorded(state), timeout=30, what="the in-flight cell")
        assert cell["job_id"] == job
        kill_daemon(state)
    return job, cell


@pytest.fixture(params=["kernel_gateway", "enterprise_gateway"])
def any_gateway_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    gateway: RunningGateway = request.getfixturevalue(request.param)
    env = server_env(tmp_path, **gateway.env())
    yield env
    subprocess.run([NB, "stop"], env=env, capture_output=True, timeout=90)
    subprocess.run([NB, "cleanup"], env=env, capture_output=True, timeout=60)


def test_a_cell_running_on_the_gateway_when_the_daemon_is_killed_is_resumed_by_the_next_session(
    any_gateway_env: dict[str, str], tmp_path: Path, workdir: Path
) -> None:
    gateway_env = any_gateway_env
    state = tmp_path / "state"
    path = workdir / "ticking.ipynb"
    job, cell = kill_daemon_mid_cell(gateway_env, tmp_path, workdir)
    assert "tick 15" not in outputs_text(path, 0)  # killed mid-cell
    assert "✓ Done" not in outputs_text(path, 0)
    pid = pid_in(outputs_text(path, 0))
    with front(workdir, gateway_env, tmp_path, "second") as second:
        second.call("list_cells", path="ticking.ipynb")  # opening it takes the kernel over
        status = second.call("exec_status", job_id=job)  # known by its old id
        assert not status.is_error and re.search(r"\b(running|ok)\b", status.text), status.text
        (reattached,) = wait_for(
            lambda: events_named(second.events(), "kernel.reattached"),
            timeout=30,
            what="the takeover",
        )
        assert reattached["job_id"] == job and reattached["cell_id"] == cell["cell_id"]
        # Started once the new daemon has spoken for the job (before, the job's last events are
        # the killed daemon's, and watch rightly says its server stopped).
        watch = subprocess.Popen(
            [NB, "watch", "--job", job, "--path", str(path)],
            env=gateway_env,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        done = second.call("exec_status", job_id=job, block_for=30)
        assert "ok" in done.text and "last line remote state" in done.text, done.text
        wait_for(lambda: "✓ Done" in outputs_text(path, 0), timeout=30, what="the footer")
        text = outputs_text(path, 0)
        assert "last line remote state" in text
        assert "daemon was replaced" in text and "may be missing" in text
        # Both gateways (jupyter_server 2 and 1) buffer a dropped websocket session's messages
        # and replay them to whoever reconnects with its session id: what is missing is at
        # most what they sent the killed daemon before noticing it was gone, right at the note.
        saved, _, resumed = text.partition("daemon was replaced")
        before = [int(n) for n in re.findall(r"^tick (\d+)$", saved, re.M)]
        after = [int(n) for n in re.findall(r"^tick (\d+)$", resumed, re.M)]
        assert before == list(range(len(before))) and before, text
        assert after == list(range(after[0], 16)) and after[0] > before[-1], text
        # Live again, not written off: no stale "server stopped" marker, no Running marker left.
        assert "stopped before this cell finished" not in text and "Running" not in text, text
        out, err = watch.communicate(timeout=60)
        assert watch.returncode == 0, (out, err)
        assert any(json.loads(line).get("event") == "job.finished" for line in out.splitlines()), (
            out
        )
        kept = second.call(
            "run_scratch", path="ticking.ipynb", code="print('pid', os.getpid(), kept)"
        )
        assert f"pid {pid} remote state" in kept.text, kept.text  # same kernel, variables on
        # The record forgets the finished cell (a later daemon has nothing to resume).
        wait_for(lambda: in_flight_recorded(state) is None, what="the record to forget the cell")


def test_a_cell_whose_remote_kernel_is_gone_after_the_daemon_was_killed_is_marked_stale(
    kernel_gateway: RunningGateway, gateway_env: dict[str, str], tmp_path: Path, workdir: Path
) -> None:
    state = tmp_path / "state"
    path = workdir / "ticking.ipynb"
    kill_daemon_mid_cell(gateway_env, tmp_path, workdir)
    (record,) = (state / "gateway-kernels").glob("*.json")
    kernel_id = json.loads(record.read_text())["kernel_id"]
    deleted = httpx2.delete(
        f"{kernel_gateway.url}/api/kernels/{kernel_id}",
        headers={"Authorization": f"token {kernel_gateway.token}"},
        timeout=30,
    )
    assert deleted.status_code == 204
    with front(workdir, gateway_env, tmp_path, "second") as second:
        second.call("list_cells", path="ticking.ipynb")
        text = outputs_text(path, 0)
        assert "stopped before this cell finished" in text and "Running" not in text, text
        assert "tick 0" in text and "last line" not in text  # saved outputs kept, nothing after
        (stopped,) = events_named(second.events(), "kernel.stopped")
        assert "no longer has kernel" in stopped["reason"], stopped
        assert not events_named(second.events(), "kernel.reattached")
        assert not list((state / "gateway-kernels").glob("*.json"))  # forgotten
