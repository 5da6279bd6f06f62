"""Long cells as MCP tasks (the 2026-07-28 tasks extension) and a cancel that stops the job,
spoken to a spawned `nb mcp` line by line: no SDK has a tasks client yet."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx2
import nbformat
import pytest

from tests.helpers import NB, events_named, gate, load, outputs_text, read_events, wait_for
from tests.integration.test_http_front import http_daemon  # noqa: F401 (a fixture)
from tests.raw_client import LEGACY, MODERN, RawMcp, modern_envelope, text_of

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def write_notebook(folder: Path, name: str, *sources: str) -> Path:
    document = nbformat.v4.new_notebook()
    document.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    path = folder / name
    nbformat.write(document, path)
    return path


def job_of(text: str) -> str:
    return re.search(r"j-[0-9a-f]{8}", text).group(0)


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    from tests.helpers import server_env

    environment = server_env(tmp_path)
    yield environment
    # A test that used the daemon leaves it to be stopped (harmless when none runs).
    subprocess.run([NB, "stop"], env=environment, capture_output=True, timeout=90)


def client(workdir: Path, env: dict[str, str], tmp_path: Path, **options: object) -> RawMcp:
    options.setdefault("in_process", True)
    return RawMcp(workdir, env, tmp_path / "server.stderr", **options)  # type: ignore[arg-type]


def test_a_cell_still_running_after_its_grace_is_a_task_whose_progress_moves_and_whose_result_is_the_exec_reply(  # noqa: E501
    env, tmp_path, workdir
):
    first, second = tmp_path / "epoch1.flag", tmp_path / "epoch2.flag"
    code = (
        "import os, time\n"
        "print('epoch 1 loss 0.50', flush=True)\n"
        f"while not os.path.exists({str(first)!r}): time.sleep(0.01)\n"
        "print('epoch 2 loss 0.21', flush=True)\n"
        f"while not os.path.exists({str(second)!r}): time.sleep(0.01)\n"
        "print('trained')"
    )
    write_notebook(workdir, "train.ipynb", code)
    with client(workdir, env, tmp_path) as mcp:
        task = mcp.call("exec_cell", path="train.ipynb", index=0, block_for=0.2)
        assert task["resultType"] == "task" and task["status"] == "working"
        assert len(task["taskId"]) >= 32 and not re.search(r"j-[0-9a-f]{8}", task["taskId"])
        assert ISO_UTC.match(task["createdAt"]) and ISO_UTC.match(task["lastUpdatedAt"])
        assert task["ttlMs"] is None  # unbounded while working
        assert isinstance(task["pollIntervalMs"], int) and task["pollIntervalMs"] > 0
        assert task["statusMessage"]
        task_id = task["taskId"]

        def progress(text: str) -> dict | None:
            answer = mcp.get(task_id)["result"]
            return answer if text in answer["statusMessage"] else None

        one = wait_for(lambda: progress("epoch 1 loss 0.50"), 30, "epoch 1 in statusMessage")
        assert one["status"] == "working" and "cell 1/1" in one["statusMessage"]
        first.touch()
        two = wait_for(lambda: progress("epoch 2 loss 0.21"), 30, "epoch 2 in statusMessage")
        assert when(two["lastUpdatedAt"]) > when(one["lastUpdatedAt"])  # it moved with the job
        second.touch()
        done = mcp.poll_until(task_id, "completed")
        assert done["resultType"] == "complete"
        assert isinstance(done["ttlMs"], int) and done["ttlMs"] >= 3_600_000
        result = done["result"]
        assert result["isError"] is False
        assert "trained" in text_of(result) and "epoch 2 loss 0.21" in text_of(result)
        job = job_of(text_of(result))
        # exactly the reply an exec call gives for that job, and it is kept as it was rendered
        today = mcp.call("exec_status", job_id=job)
        assert result["content"] == today["content"]
        (workdir / "train.ipynb").unlink()
        assert mcp.get(task_id)["result"]["result"] == result
    log = tmp_path / "events.log"
    assert [e["job_id"] for e in events_named(read_events(log), "task.created")] == [job]
    finished = events_named(read_events(log), "task.finished")
    assert [(e["job_id"], e["status"]) for e in finished] == [(job, "completed")]
    assert task_id not in log.read_text()  # a bearer secret: never in the log


def test_a_job_done_within_its_grace_is_answered_inline_even_to_a_client_that_takes_tasks(
    env, tmp_path, workdir
):
    write_notebook(workdir, "quick.ipynb", "print(6 * 7)")
    with client(workdir, env, tmp_path) as mcp:
        result = mcp.call("exec_cell", path="quick.ipynb", index=0)
    assert result["resultType"] != "task" and "42" in text_of(result)
    assert not events_named(read_events(tmp_path / "events.log"), "task.created")


def test_a_cell_error_completes_the_task_with_the_exec_reply_and_its_error(env, tmp_path, workdir):
    flag = tmp_path / "go.flag"
    write_notebook(workdir, "fail.ipynb", gate(flag, after="1 / 0"), "print('after')")
    with client(workdir, env, tmp_path) as mcp:
        task = mcp.call("exec_all", path="fail.ipynb", block_for=0)
        flag.touch()
        done = mcp.poll_until(task["taskId"], "completed")
        text = text_of(done["result"])
        assert "ZeroDivisionError" in text and "skipped" in text
        today = mcp.call("exec_status", job_id=job_of(text))
        assert done["result"]["content"] == today["content"]
        assert done["result"]["isError"] == today.get("isError", False)


def test_tasks_cancel_of_a_queued_job_gives_its_cells_back_and_leaves_the_running_job_alone(
    env, tmp_path, workdir
):
    flag = tmp_path / "go.flag"
    path = write_notebook(workdir, "queue.ipynb", gate(flag, after="print('first done')"), "")
    document = nbformat.read(path, as_version=4)
    document.cells[1].source = "print('queued ran')"
    document.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="old\n")]
    document.cells[1].execution_count = 3
    nbformat.write(document, path)
    before = load(path)["cells"][1]["outputs"]
    with client(workdir, env, tmp_path) as mcp:
        running = mcp.call("exec_cell", path="queue.ipynb", index=0, block_for=0)
        queued = mcp.call("exec_cell", path="queue.ipynb", index=1, block_for=0)
        # the job learns its place from the notebook's queue a moment after it was submitted
        wait_for(
            lambda: "queued behind 1 job" in mcp.get(queued["taskId"])["result"]["statusMessage"],
            10,
            "the queued task to say it waits behind the running job",
        )
        wait_for(lambda: "Queued" in outputs_text(path, 1), 30, "the Queued marker")
        acknowledged = mcp.request("tasks/cancel", {"taskId": queued["taskId"]})["result"]
        assert acknowledged["resultType"] == "complete"
        cancelled = mcp.poll_until(queued["taskId"], "cancelled")
        assert "result" not in cancelled and "cancel" in cancelled["statusMessage"]
        wait_for(lambda: load(path)["cells"][1]["outputs"] == before, 30, "the cell's outputs back")
        assert mcp.get(running["taskId"])["result"]["status"] == "working"
        flag.touch()
        done = mcp.poll_until(running["taskId"], "completed")
        assert "first done" in text_of(done["result"])
    assert "queued ran" not in outputs_text(path, 1)
    events = read_events(tmp_path / "events.log")
    cancelled_jobs = [e["job_id"] for e in events_named(events, "task.cancelled")]
    assert cancelled_jobs == [events_named(events, "task.created")[1]["job_id"]]
    assert not events_named(events, "kernel.interrupted")  # nothing ran, nothing interrupted


def test_tasks_cancel_of_a_running_job_interrupts_its_cell_skips_the_rest_and_only_that_job(
    env, tmp_path, workdir
):
    never = tmp_path / "never.flag"
    path = write_notebook(
        workdir,
        "long.ipynb",
        gate(never, before="x = 41\nprint('cell is running', flush=True)", after="print('NEVER')"),
        "print('second cell ran')",
        "print('next job ran', x)",
    )
    with client(workdir, env, tmp_path) as mcp:
        task = mcp.call("exec_range", path="long.ipynb", start=0, end=1, block_for=0)
        behind = mcp.call("exec_cell", path="long.ipynb", index=2, block_for=0)
        wait_for(lambda: "cell is running" in outputs_text(path, 0), 30, "the cell to start")
        mcp.request("tasks/cancel", {"taskId": task["taskId"]})
        cancelled = mcp.poll_until(task["taskId"], "cancelled")
        assert "result" not in cancelled
        # only that job: the one queued behind it runs, on the same kernel and variables
        after = mcp.poll_until(behind["taskId"], "completed")
        assert "next job ran 41" in text_of(after["result"])
        scratch = mcp.call("run_scratch", path="long.ipynb", code="print(x + 1)")
        assert "42" in text_of(scratch)
    first, second = outputs_text(path, 0), outputs_text(path, 1)
    assert "NEVER" not in first and "⊘ Cancelled" in first and "KeyboardInterrupt" in first
    assert "Skipped (job cancelled)" in second and "second cell ran" not in second
    events = read_events(tmp_path / "events.log")
    job = events_named(events, "task.created")[0]["job_id"]
    (interrupted,) = events_named(events, "kernel.interrupted")
    assert (interrupted["reason"], interrupted["job_id"]) == ("cancel", job)
    finished = {e["job_id"]: e["status"] for e in events_named(events, "job.finished")}
    assert finished[job] == "cancelled"
    assert [e["job_id"] for e in events_named(events, "task.cancelled")] == [job]


def test_the_cancel_job_tool_stops_a_running_job_for_a_client_without_tasks(env, tmp_path, workdir):
    never = tmp_path / "never.flag"
    path = write_notebook(
        workdir, "tool.ipynb", gate(never, before="print('cell is running', flush=True)", after="1")
    )
    with client(workdir, env, tmp_path, version=LEGACY) as mcp:
        pending = text_of(mcp.call("exec_cell", path="tool.ipynb", index=0, block_for=0))
        job = job_of(pending)
        wait_for(lambda: "cell is running" in outputs_text(path, 0), 30, "the cell to start")
        reply = text_of(mcp.call("cancel_job", job_id=job))
        assert "cancel" in reply and "cancelled" in reply, reply
        again = text_of(mcp.call("cancel_job", job_id=job))
        assert "already ended (cancelled)" in again
        unknown = mcp.call("cancel_job", job_id="j-00000000")
        assert unknown["isError"] is True and "no job" in text_of(unknown)
    assert "⊘ Cancelled" in outputs_text(path, 0)


def test_a_job_cancelled_while_its_kernel_starts_never_runs_past_its_first_line(
    env, tmp_path, workdir
):
    never = tmp_path / "never.flag"
    path = write_notebook(
        workdir,
        "early.ipynb",
        gate(never, before="print('cell is running', flush=True)", after="print('NEVER')"),
    )
    with client(workdir, env, tmp_path, version=LEGACY) as mcp:
        job = job_of(text_of(mcp.call("exec_cell", path="early.ipynb", index=0, block_for=0)))
        # at once: the kernel is starting, and an interrupt that reaches it before the cell
        # does is lost, so the job asks again until its cell has stopped
        mcp.call("cancel_job", job_id=job)
        status = mcp.call("exec_status", job_id=job, block_for=30)
        assert "cancelled" in text_of(status).splitlines()[0], text_of(status)
    assert "NEVER" not in outputs_text(path, 0)


def test_a_task_made_through_one_front_is_polled_through_another_after_the_first_is_killed(
    env, tmp_path, workdir
):
    flag = tmp_path / "go.flag"
    write_notebook(
        workdir, "train.ipynb", gate(flag, before="print('epoch 1', flush=True)", after="2")
    )
    first = client(workdir, env, tmp_path, in_process=False)
    try:
        task = first.call("exec_cell", path="train.ipynb", index=0, block_for=0)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
    finally:
        first.close()
    with client(workdir, env, tmp_path, in_process=False) as second:
        wait_for(
            lambda: "epoch 1" in second.get(task["taskId"])["result"]["statusMessage"],
            30,
            "the second front to see the first front's task",
        )
        flag.touch()
        done = second.poll_until(task["taskId"], "completed")
        assert "epoch 1" in text_of(done["result"])


def test_legacy_and_extension_less_clients_get_todays_replies_and_no_tasks_methods(
    env, tmp_path, workdir
):
    flag = tmp_path / "go.flag"
    write_notebook(workdir, "old.ipynb", gate(flag, after="print('done')"))
    with client(workdir, env, tmp_path, version=LEGACY) as legacy:
        # the 2025 experimental `params.task` is ignored, not honoured
        answer = legacy.request(
            "tools/call",
            {
                "name": "exec_cell",
                "arguments": {"path": "old.ipynb", "index": 0, "block_for": 0},
                "task": {"ttl": 60000},
            },
        )
        result = answer["result"]
        assert "resultType" not in result and "taskId" not in result
        assert "nb watch --job" in text_of(result) and "exec_status" in text_of(result)
        unknown = legacy.request("tasks/get", {"taskId": "anything"})
        assert unknown["error"]["code"] == -32601  # method not found
        flag.touch()
        finished = legacy.call("exec_status", job_id=job_of(text_of(result)), block_for=30)
        assert "done" in text_of(finished)
    flag.unlink()
    with client(workdir, env, tmp_path, tasks=False) as modern:
        result = modern.call("exec_cell", path="old.ipynb", index=0, block_for=0)
        assert result["resultType"] == "complete" and "taskId" not in result
        assert "nb watch --job" in text_of(result)
        refused = modern.request("tasks/get", {"taskId": "anything"})
        assert refused["error"]["code"] == -32021  # the extension's missing capability
        assert "io.modelcontextprotocol/tasks" in json.dumps(refused["error"]["data"])
        flag.touch()
    assert not events_named(read_events(tmp_path / "events.log"), "task.created")


def test_an_unknown_or_expired_task_id_is_the_extensions_invalid_params_error(
    env, tmp_path, workdir
):
    env = dict(env, NB_MCP_TASK_TTL_SEC="1")
    flag = tmp_path / "go.flag"
    write_notebook(workdir, "short.ipynb", gate(flag, after="print('short')"))
    with client(workdir, env, tmp_path) as mcp:
        for method in ("tasks/get", "tasks/cancel", "tasks/update"):
            params = {"taskId": "no-such-task", "inputResponses": {}}
            error = mcp.request(method, params)["error"]
            assert error["code"] == -32602 and "Task not found" in error["message"]
        task = mcp.call("exec_cell", path="short.ipynb", index=0, block_for=0)
        flag.touch()
        done = mcp.poll_until(task["taskId"], "completed")
        assert 1000 <= done["ttlMs"] < 60_000
        wait_for(
            lambda: "error" in mcp.get(task["taskId"]),
            10,
            "the task to be forgotten NB_MCP_TASK_TTL_SEC after its job ended",
        )
        assert mcp.get(task["taskId"])["error"]["code"] == -32602


def http_request(port: int, token: str, method: str, params: dict, name: str = "") -> dict:
    """One 2026-07-28 request over streamable HTTP, its routing headers set as the spec asks."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method}
    body["params"] = {**params, "_meta": modern_envelope(tasks=True)}
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": method,
    }
    if name:
        headers["Mcp-Name"] = name
    answer = httpx2.post(f"http://127.0.0.1:{port}/mcp", json=body, headers=headers, timeout=60)
    if answer.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in answer.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return answer.json()


def test_a_task_made_over_the_http_front_is_polled_over_http_and_through_a_stdio_front(
    http_daemon,  # noqa: F811
    tmp_path,
    workdir,
):
    port, env = http_daemon
    token = (tmp_path / "state" / "http.token").read_text().strip()
    flag = tmp_path / "go.flag"
    write_notebook(workdir, "remote.ipynb", gate(flag, before="print('remote run', flush=True)"))
    call = {"name": "exec_cell", "arguments": {"path": "remote.ipynb", "index": 0, "block_for": 0}}
    task = http_request(port, token, "tools/call", call, "exec_cell")["result"]
    assert task["resultType"] == "task", task
    task_id = task["taskId"]

    def remote_progress() -> bool:
        answer = http_request(port, token, "tasks/get", {"taskId": task_id}, task_id)
        return "remote run" in answer["result"]["statusMessage"]

    wait_for(remote_progress, 30, "progress over HTTP")
    with client(workdir, env, tmp_path, in_process=False) as front:
        assert front.get(task_id)["result"]["status"] == "working"
        flag.touch()
        done = front.poll_until(task_id, "completed")
    assert "remote run" in text_of(done["result"])
