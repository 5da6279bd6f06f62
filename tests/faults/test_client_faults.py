"""The MCP client misbehaving: it vanishes in the middle of a wait, or it fires a burst of
concurrent calls at two notebooks.

A vanished client (its end of stdin closed) must stop the server the clean way: jobs marked,
kernels stopped, the last write flushed, `server.stopped` the last line of the log. A burst
must be answered call by call, with no write lost and the files valid.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from tests.faults.writer_support import (
    alive,
    events_of,
    job_id_of,
    kill_processes_mentioning,
    markers_of,
    processes_mentioning,
    stdout_of,
    ticker,
    ticks_of,
    valid_notebook,
)
from tests.helpers import McpServer, notebook, read_events, server_env, wait_for


def test_a_client_that_vanishes_mid_wait_stops_kernels_flushes_and_logs_server_stopped_last(
    tmp_path, workdir
):
    server = McpServer(workdir, server_env(tmp_path), tmp_path / "stderr")
    closed = False
    try:
        path = notebook(server, "gone.ipynb", ticker(tmp_path / "never.flag"), "print('later')")
        notebook(server, "idle.ipynb", "idle = 1")
        assert ": ok" in server.call("exec_cell", path="idle.ipynb", index=0).text
        future, progress = server.start_call("exec_all", path="gone.ipynb", block_for=25)
        wait_for(lambda: progress, timeout=30, what="a progress notification of the wait")
        wait_for(
            lambda: len(ticks_of(valid_notebook(path)["cells"][0])) >= 5,
            timeout=30,
            what="ticks on disk",
        )
        (job_id,) = [
            e["job_id"] for e in events_of(server, "job.submitted") if e["kind"] != "exec_cell"
        ]
        kernels = [e["kernel_pid"] for e in events_of(server, "kernel.ready")]
        assert len(kernels) == 2 and all(alive(pid) for pid in kernels)
        seen = len(ticks_of(valid_notebook(path)["cells"][0]))
        pid = server.pid
        assert not future.done()  # the call is still waiting on the job
        server.close()  # the client goes away: the server's stdin closes
        closed = True
        wait_for(lambda: not alive(pid), timeout=30, what="the server to exit")
        wait_for(
            lambda: not any(alive(k) for k in kernels), timeout=15, what="the kernels to be gone"
        )
    finally:
        if not closed:
            server.close()
    events = [e for e in read_events(tmp_path / "events.log") if e["pid"] == pid]
    assert events[-1]["event"] == "server.stopped", events[-1]
    assert events[-1]["reason"] == "stdin closed", events[-1]
    (finished,) = [e for e in events if e["event"] == "job.finished" and e["job_id"] == job_id]
    assert finished["status"] == "stopped", finished
    stopped = {e["kernel_pid"] for e in events if e["event"] == "kernel.stopped"}
    assert stopped == set(kernels), (stopped, kernels)
    saved = valid_notebook(path)
    running, later = saved["cells"]
    ticks = ticks_of(running)
    assert len(ticks) >= seen and ticks == list(range(len(ticks))), ticks
    assert markers_of(running)[-1].startswith("[nb mcp] ⊘ Stopped at"), markers_of(running)
    assert "the nb server stopped" in markers_of(running)[-1]
    assert not any("▶ Running" in m for m in markers_of(running))
    assert markers_of(later) == ["[nb mcp] ⊘ Skipped (the nb server stopped)\n"], markers_of(later)
    assert stdout_of(later) == ""
    state = tmp_path / "state"
    assert not list((state / "servers").glob("*.json"))
    assert not list((state / "kernels").glob("*.json"))


def burst_calls(names: tuple[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """200 calls, alternating notebooks, cycling through edits, reads, runs and one bad call."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for k in range(200):
        name = names[k % 2]
        kind = (k // 2) % 8
        if kind in (0, 1):
            calls.append(("insert_cell", {"path": name, "source": f"inserted_{k} = {k}"}))
        elif kind == 2:
            calls.append(("set_cell", {"path": name, "index": 0, "source": f"x = {k}"}))
        elif kind == 3:
            calls.append(("list_cells", {"path": name}))
        elif kind == 4:
            calls.append(("read_cell", {"path": name, "index": 1}))
        elif kind == 5:
            calls.append(("exec_cell", {"path": name, "index": 1, "block_for": 25}))
        elif kind == 6:
            code = "print('scratch', 2 + 2)"
            calls.append(("run_scratch", {"path": name, "code": code, "block_for": 25}))
        else:
            calls.append(("read_cell", {"path": name, "index": 10_000}))  # bad on purpose
    return calls


def test_a_burst_of_200_concurrent_calls_on_two_notebooks_is_all_answered_with_no_write_lost(
    server: McpServer,
):
    names = ("burst_a.ipynb", "burst_b.ipynb")
    paths = {name: notebook(server, name, "x = 0", "print('ran', 1 + 1)") for name in names}
    calls = burst_calls(names)
    started = [server.start_call(tool, **arguments)[0] for tool, arguments in calls]
    replies = [future.result(timeout=100) for future in started]

    for (tool, arguments), reply in zip(calls, replies, strict=True):
        bad = arguments.get("index") == 10_000
        assert reply.is_error == bad, (tool, arguments, reply.text)
        if bad:
            assert "index 10000 is out of range" in reply.text, reply.text
        elif tool == "insert_cell":
            assert "Inserted cell" in reply.text, reply.text
        elif tool in ("exec_cell", "run_scratch") and "is running" not in reply.text:
            assert "is queued" in reply.text or ": ok" in reply.text, reply.text
            if ": ok" in reply.text and tool == "run_scratch":
                assert "scratch 4" in reply.text, reply.text
            # (what an exec_cell reply shows while the next job already reruns the same cell
            # is the subject of the next test)
    for name, path in paths.items():
        saved = valid_notebook(path)
        sources = ["".join(cell["source"]) for cell in saved["cells"]]
        mine = [a for t, a in calls if a["path"] == name]
        inserted = [a["source"] for a in mine if "inserted_" in a.get("source", "")]
        assert len(inserted) == 26
        assert sources[2:] and sorted(sources[2:]) == sorted(inserted), sources
        assert sources[0] in {a["source"] for a in mine if a.get("index") == 0 and "source" in a}
        assert sources[1] == "print('ran', 1 + 1)"
    jobs = [
        job_id_of(r.text)
        for (t, _), r in zip(calls, replies, strict=True)
        if t.startswith(("exec", "run"))
    ]
    for job_id in jobs:
        done = server.call("exec_status", job_id=job_id, block_for=25)
        assert not done.is_error and ": ok" in done.text, done.text
    for path in paths.values():
        assert "ran 2" in stdout_of(valid_notebook(path)["cells"][1])
        assert not list(path.parent.glob("*.nbtmp")) and not list(path.parent.glob(".*.nbtmp"))
    completed = Counter(e["ok"] for e in events_of(server, "tool.completed"))
    assert completed[False] == 24 and completed[True] >= 176, completed
    assert not events_of(server, "error.unhandled")


def test_a_burst_of_restart_kernel_calls_leaves_one_kernel_and_none_once_the_server_stops(
    tmp_path, workdir
):
    state = str(tmp_path / "state")
    try:
        with McpServer(workdir, server_env(tmp_path), tmp_path / "stderr") as server:
            notebook(server, "restarts.ipynb", "before = 1")
            assert ": ok" in server.call("exec_cell", path="restarts.ipynb", index=0).text
            for _ in range(5):  # an agent hammering the tool while the kernel starts
                reply = server.call("restart_kernel", path="restarts.ipynb")
                assert not reply.is_error, reply.text
            ran = server.call("run_scratch", path="restarts.ipynb", code="print('after', 2)")
            assert not ran.is_error and "after 2" in ran.text, ran.text
            status = server.call("status")
            (pid,) = [
                int(p) for p in re.findall(r"restarts\.ipynb\s+python3\s+pid (\d+)", status.text)
            ]
            kernels = processes_mentioning(state)
            assert kernels == [pid], (kernels, pid, status.text)
        wait_for(
            lambda: not processes_mentioning(state),
            timeout=15,
            what="no kernel left after the server stopped",
        )
    finally:
        kill_processes_mentioning(state)


def test_a_finished_jobs_reply_shows_its_own_outputs_while_the_next_job_reruns_the_cell(
    server: McpServer, tmp_path
):
    flag = tmp_path / "second_run.flag"
    code = (
        "import os, time\n"
        "runs = globals().get('runs', 0) + 1\n"
        "print(f'run {runs}', flush=True)\n"
        f"while runs == 2 and not os.path.exists({str(flag)!r}):\n"
        "    time.sleep(0.01)\n"
    )
    path = notebook(server, "rerun.ipynb", code)
    first = job_id_of(server.call("exec_cell", path="rerun.ipynb", index=0, block_for=0).text)
    second = job_id_of(server.call("exec_cell", path="rerun.ipynb", index=0, block_for=0).text)
    wait_for(
        lambda: "run 2" in stdout_of(valid_notebook(path)["cells"][0]),
        timeout=30,
        what="the second job to be running the cell",
    )
    done = server.call("exec_status", job_id=first, block_for=10)
    assert f"Job {first}" in done.text and ": ok" in done.text, done.text
    assert "run 1" in done.text and "run 2" not in done.text, done.text
    flag.touch()
    later = server.call("exec_status", job_id=second, block_for=25)
    assert ": ok" in later.text and "run 2" in later.text and "run 1" not in later.text
