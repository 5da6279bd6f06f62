"""Long runs outlive the MCP session: the per-user daemon and its thin `nb mcp` fronts."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tests.helpers import (
    NB,
    McpServer,
    events_named,
    gate,
    load,
    notebook,
    outputs_text,
    process_alive,
    read_events,
    server_env,
    wait_for,
)


def daemon_pid(state: Path) -> int:
    record = wait_for(lambda: _record(state), timeout=30, what="daemon.json")
    return record["pid"]


def _record(state: Path) -> dict | None:
    try:
        return json.loads((state / "daemon.json").read_text())
    except (OSError, ValueError):
        return None


def _in_flight(state: Path) -> bool:
    for record in (state / "kernels").glob("*.json"):
        try:
            if json.loads(record.read_text()).get("in_flight"):
                return True
        except (OSError, ValueError):
            continue
    return False


def my_children(fragment: str) -> list[int]:
    """Pids of this test process's children whose command line holds `fragment`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and fragment in cmdline:
            found.append(int(entry.name))
    return found


def job_id_of(text: str) -> str:
    return re.search(r"j-[0-9a-f]{8}", text).group(0)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    environment = server_env(tmp_path)
    yield environment
    subprocess.run([NB, "stop"], env=environment, capture_output=True, timeout=90)
    subprocess.run([NB, "cleanup"], env=environment, capture_output=True, timeout=30)


def front(workdir: Path, env: dict[str, str], tmp_path: Path, name: str = "front") -> McpServer:
    return McpServer(workdir, env, tmp_path / f"{name}.stderr", in_process=False)


def test_the_first_front_starts_the_daemon_and_a_second_front_shares_it(env, tmp_path, workdir):
    one = front(workdir, env, tmp_path, "one")
    two = front(workdir, env, tmp_path, "two")
    try:
        notebook(one, "shared.ipynb", "x = 41")
        one.call("exec_cell", path="shared.ipynb", index=0)
        reply = two.call("run_scratch", path="shared.ipynb", code="print(x + 1)")
        assert "42" in reply.text  # same daemon, same kernel
    finally:
        one.close()
        two.close()
    started = events_named(read_events(tmp_path / "events.log"), "server.started")
    assert [e["mode"] for e in started] == ["daemon"]
    assert len(events_named(read_events(tmp_path / "events.log"), "front.connected")) == 2


def test_fronts_starting_at_the_same_moment_start_one_daemon(env, tmp_path, workdir):
    fronts: list[McpServer] = []
    threads = [
        threading.Thread(target=lambda n=n: fronts.append(front(workdir, env, tmp_path, f"f{n}")))
        for n in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert len(fronts) == 3
        assert len({f.pid for f in fronts}) == 1
        assert not any(
            "already running" in (tmp_path / "state" / "daemon.stderr").read_text()
            for _ in [0]
            if (tmp_path / "state" / "daemon.stderr").exists()
        )
    finally:
        for f in fronts:
            f.close()
    started = events_named(read_events(tmp_path / "events.log"), "server.started")
    assert len(started) == 1


def test_a_job_survives_sigkill_of_its_front_and_a_new_front_reads_its_outputs(
    env, tmp_path, workdir
):
    flag = tmp_path / "go.flag"
    first = front(workdir, env, tmp_path, "first")
    notebook(
        first,
        "train.ipynb",
        gate(flag, before="print('epoch 1', flush=True)", after="print('epoch 2 done')"),
    )
    job = job_id_of(first.call("exec_cell", path="train.ipynb", index=0, block_for=0).text)
    wait_for(
        lambda: "epoch 1" in outputs_text(workdir / "train.ipynb", 0),
        timeout=30,
        what="the first epoch on disk",
    )
    (front_pid,) = my_children("nb mcp")
    os.kill(front_pid, signal.SIGKILL)
    wait_for(
        lambda: events_named(read_events(tmp_path / "events.log"), "front.disconnected"),
        timeout=20,
        what="the daemon to notice the front went away",
    )
    first.close()
    flag.touch()
    second = front(workdir, env, tmp_path, "second")
    try:
        reply = second.call("exec_status", job_id=job, block_for=30)
        assert "ok" in reply.text and "epoch 2 done" in reply.text
    finally:
        second.close()
    assert "✓ Done" in outputs_text(workdir / "train.ipynb", 0)


def test_a_job_survives_sigkill_of_the_mcp_client(env, tmp_path, workdir):
    flag = tmp_path / "client.flag"
    path = workdir / "client.ipynb"
    document = nbformat.v4.new_notebook()
    document.cells = [nbformat.v4.new_code_cell(gate(flag, after="print('finished')"))]
    nbformat.write(document, path)
    client = subprocess.Popen(
        [sys.executable, "-c", _CLIENT_SCRIPT, NB, str(workdir)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    job = job_id_of(client.stdout.readline())
    client.kill()  # SIGKILL: the client vanishes mid-session
    client.wait()
    flag.touch()
    finished = wait_for(
        lambda: [
            e
            for e in events_named(read_events(tmp_path / "events.log"), "job.finished")
            if e["job_id"] == job
        ],
        timeout=30,
        what="the job to finish without its client",
    )
    assert finished[0]["status"] == "ok"
    # The file follows the event (the writer's flush, not the job, writes it): wait for it.
    wait_for(
        lambda: "finished" in outputs_text(path, 0) and "✓ Done" in outputs_text(path, 0),
        timeout=10,
        what="the finished cell's outputs and footer in the file",
    )


_CLIENT_SCRIPT = """
import os, sys, anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
async def main():
    params = StdioServerParameters(command=sys.argv[1], args=["mcp"], cwd=sys.argv[2],
                                   env=dict(os.environ))
    async with Client(stdio_client(params)) as client:
        reply = await client.call_tool("exec_cell", {"path": "client.ipynb", "index": 0,
                                                     "block_for": 0})
        print(reply.content[0].text.replace("\\n", " "), flush=True)
        await anyio.sleep_forever()
anyio.run(main)
"""


def test_two_fronts_editing_one_notebook_concurrently_lose_no_edit(env, tmp_path, workdir):
    one = front(workdir, env, tmp_path, "one")
    two = front(workdir, env, tmp_path, "two")
    try:
        one.call("insert_cell", path="busy.ipynb", source="# start", cell_type="markdown")
        calls = [
            server.start_call("insert_cell", path="busy.ipynb", source=f"{name} {n}")
            for n in range(100)
            for server, name in ((one, "one"), (two, "two"))
        ]
        replies = [future.result(timeout=120) for future, _ in calls]
    finally:
        one.close()
        two.close()
    assert not [r.text for r in replies if r.is_error]
    sources = {"".join(cell["source"]) for cell in load(workdir / "busy.ipynb")["cells"]}
    assert sources >= {f"{name} {n}" for n in range(100) for name in ("one", "two")}
    assert len(load(workdir / "busy.ipynb")["cells"]) == 201


def test_a_killed_daemon_is_replaced_and_the_new_one_takes_over_the_running_kernel(
    env, tmp_path, workdir
):
    flag = tmp_path / "resume.flag"
    state = tmp_path / "state"
    first = front(workdir, env, tmp_path, "first")
    notebook(
        first,
        "long.ipynb",
        "kept = 'still here'",
        gate(
            flag, before="print('before the crash', flush=True)", after="print('after the crash')"
        ),
    )
    first.call("exec_cell", path="long.ipynb", index=0)
    job = job_id_of(first.call("exec_cell", path="long.ipynb", index=1, block_for=0).text)
    wait_for(
        lambda: "before the crash" in outputs_text(workdir / "long.ipynb", 1),
        timeout=30,
        what="the cell's first output",
    )
    # The kernel's record names the cell in flight once it has run a second (short cells
    # are not worth a write); that record is what lets the next daemon resume it.
    wait_for(lambda: _in_flight(state), timeout=30, what="the in-flight cell in the record")
    old_daemon = daemon_pid(state)
    (kernel_pid,) = [
        e["kernel_pid"]
        for e in read_events(tmp_path / "events.log")
        if e["event"] == "kernel.ready"
    ]
    os.kill(old_daemon, signal.SIGKILL)
    wait_for(lambda: not process_alive(old_daemon), what="the daemon to die")
    first.close()
    assert process_alive(kernel_pid)
    second = front(workdir, env, tmp_path, "second")
    try:
        assert second.pid != old_daemon
        status = subprocess.run(
            [NB, "status"], env=env, capture_output=True, text=True, timeout=30
        ).stdout
        assert re.search(rf"kernel pid {kernel_pid}\s.*taken over", status), status
        reattached = events_named(second.events(), "kernel.reattached")
        assert reattached and reattached[0]["kernel_pid"] == kernel_pid
        assert "running" in second.call("exec_status", job_id=job).text  # known by its old id
        flag.touch()
        wait_for(
            lambda: "✓ Done" in outputs_text(workdir / "long.ipynb", 1),
            timeout=30,
            what="the resumed cell to finish",
        )
        finished = second.call("exec_status", job_id=job, block_for=30).text
        assert "ok" in finished and "after the crash" in finished, finished
        text = outputs_text(workdir / "long.ipynb", 1)
        assert "before the crash" in text and "after the crash" in text
        assert "daemon was replaced" in text and "may be missing" in text
        kept = second.call("run_scratch", path="long.ipynb", code="print(kept)")
        assert "still here" in kept.text  # same kernel, variables intact
    finally:
        second.close()


def test_the_daemon_stops_after_its_idle_time_with_its_kernels(tmp_path, workdir):
    env = server_env(tmp_path, NB_DAEMON_IDLE_SEC="2")
    one = front(workdir, env, tmp_path)
    notebook(one, "idle.ipynb", "x = 1")
    one.call("exec_cell", path="idle.ipynb", index=0)
    kernel = events_named(one.events(), "kernel.ready")[0]["kernel_pid"]
    pid = one.pid
    one.close()
    wait_for(lambda: not process_alive(pid), timeout=30, what="the idle daemon to exit")
    wait_for(lambda: not process_alive(kernel), timeout=10, what="its kernel to exit")
    last = read_events(tmp_path / "events.log")[-1]
    assert last["event"] == "server.stopped" and "idle" in last["reason"]


def test_nb_stop_interrupts_running_jobs_with_a_marker(env, tmp_path, workdir):
    one = front(workdir, env, tmp_path)
    notebook(one, "stop.ipynb", gate(tmp_path / "never.flag", before="print('working')"))
    one.call("exec_cell", path="stop.ipynb", index=0, block_for=0)
    wait_for(
        lambda: "working" in outputs_text(workdir / "stop.ipynb", 0),
        timeout=30,
        what="the cell to run",
    )
    status = subprocess.run([NB, "status"], env=env, capture_output=True, text=True, timeout=30)
    assert re.search(
        r"Daemon: pid \d+\s+nb \S+\s+up \S+\s+fronts 1\s+kernels 1\s+jobs running 1", status.stdout
    ), status.stdout
    stopped = subprocess.run([NB, "stop"], env=env, capture_output=True, text=True, timeout=90)
    assert stopped.returncode == 0 and "stopped the nb daemon" in stopped.stdout
    one.close()
    assert "⊘ Stopped at" in outputs_text(workdir / "stop.ipynb", 0)
    assert read_events(tmp_path / "events.log")[-1]["event"] == "server.stopped"


def test_a_front_of_another_version_is_refused_with_a_clear_message(env, tmp_path, workdir):
    one = front(workdir, env, tmp_path)  # starts the daemon
    try:
        with socket.socket(socket.AF_UNIX) as connection:
            connection.connect(_record(tmp_path / "state")["socket"])
            hello = {"nb": "hello", "version": "0.0.0-old", "cwd": str(workdir), "roots": []}
            connection.sendall((json.dumps(hello) + "\n").encode())
            reply = json.loads(connection.makefile().readline())
        assert reply["nb"] == "refused" and "nb stop" in reply["reason"]
        assert "0.0.0-old" in reply["reason"]
    finally:
        one.close()
    assert events_named(read_events(tmp_path / "events.log"), "front.refused")


def test_a_front_meeting_a_daemon_of_another_version_answers_the_client_with_an_error(
    tmp_path, workdir
):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = server_env(tmp_path)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(state / "daemon.sock"))
    listener.listen(1)

    def other_daemon() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.makefile().readline()
            connection.sendall(b'{"nb": "welcome", "version": "9.9.9", "pid": 1}\n')

    threading.Thread(target=other_daemon, daemon=True).start()
    request = (
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            }
        )
        + "\n"
    )
    result = subprocess.run(
        [NB, "mcp"], input=request, cwd=workdir, env=env, capture_output=True, text=True, timeout=30
    )
    listener.close()
    answer = json.loads(result.stdout)
    assert answer["id"] == 1 and "9.9.9" in answer["error"]["message"]
    assert "nb stop" in answer["error"]["message"]
    assert result.returncode == 1


def test_nb_status_lists_a_job_still_inside_its_calls_wait(env, tmp_path, workdir):
    # The job has no record in the state dir yet (one is written when a call hands out the
    # Monitor command); nb status must still show it as active, as the daemon line counts it.
    flag = tmp_path / "go.flag"
    one = front(workdir, env, tmp_path)
    try:
        notebook(one, "wait.ipynb", gate(flag, before="print('started', flush=True)"))
        call, _ = one.start_call("exec_cell", path="wait.ipynb", index=0, block_for=30)
        wait_for(
            lambda: "started" in outputs_text(workdir / "wait.ipynb", 0),
            timeout=30,
            what="the cell to start",
        )
        shown = subprocess.run([NB, "status"], env=env, capture_output=True, text=True, timeout=30)
        active = shown.stdout.split("Active jobs", 1)[1]
        assert "none" not in active.splitlines()[0], shown.stdout
        job = re.search(r"j-[0-9a-f]{8}", active)
        assert job and str(workdir / "wait.ipynb") in active, shown.stdout
        flag.touch()
        assert job.group(0) in call.result(timeout=60).text
    finally:
        flag.touch()
        one.close()
