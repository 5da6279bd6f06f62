"""Running cells through the real MCP client, real kernels and the file on disk."""

from __future__ import annotations

import re

import nbformat
import psutil
from nb_mcp.supervisor.results import OUTPUTS_KEPT

from tests.helpers import (
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


def test_exec_cell_returns_the_outputs_inline_and_writes_them_with_markers(shared_server):
    path = notebook(shared_server, "one.ipynb", "x = 20\nprint('hello')\nx * 2 + 2")
    reply = shared_server.call("exec_cell", path="one.ipynb", index=0)
    assert not reply.is_error, reply.text
    assert "ok" in reply.text and "hello" in reply.text and "42" in reply.text
    cell = load(path)["cells"][0]
    assert cell["execution_count"] == 1
    kinds = [o["output_type"] for o in cell["outputs"]]
    assert kinds == ["stream", "execute_result", "stream"]
    footer = "".join(cell["outputs"][-1]["text"])
    assert re.match(r"\[nb mcp\] ✓ Done at \d\d:\d\d:\d\d \S+ · ran \d+\.\ds\n", footer)


def test_exec_all_stops_at_an_error_and_marks_later_cells_skipped_keeping_their_outputs(
    shared_server,
):
    path = notebook(shared_server, "error.ipynb", "a = 1", "1/0", "print('never')")
    document = nbformat.read(path, as_version=4)
    document.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="old\n")]
    nbformat.write(document, path)
    reply = shared_server.call("exec_all", path="error.ipynb")
    assert not reply.is_error
    assert "error" in reply.text and "ZeroDivisionError: division by zero" in reply.text
    assert "skipped" in reply.text
    cells = load(path)["cells"]
    assert "✗ Error at" in outputs_text(path, 1) and "ZeroDivisionError" in outputs_text(path, 1)
    skipped = [o for o in cells[2]["outputs"]]
    assert "⊘ Skipped (earlier cell errored)" in "".join(skipped[0]["text"])
    assert "".join(skipped[1]["text"]) == "old\n"


def test_exec_range_runs_only_the_code_cells_in_the_range(shared_server):
    path = notebook(shared_server, "range.ipynb", "print('a')", "print('b')", "print('c')")
    document = nbformat.read(path, as_version=4)
    document.cells.insert(1, nbformat.v4.new_markdown_cell("# text"))
    nbformat.write(document, path)
    reply = shared_server.call("exec_range", path="range.ipynb", start=0, end=-2)
    assert not reply.is_error, reply.text
    assert "2 cells" in reply.text  # the markdown cell in the range is not run
    assert "a\n" in outputs_text(path, 0) and "b\n" in outputs_text(path, 2)
    assert outputs_text(path, 3) == ""


def test_insert_and_exec_adds_the_cell_and_runs_it(shared_server):
    path = notebook(shared_server, "insert.ipynb", "base = 5")
    shared_server.call("exec_cell", path="insert.ipynb", index=0)
    reply = shared_server.call("insert_and_exec", path="insert.ipynb", source="base * 3")
    assert not reply.is_error, reply.text
    assert "15" in reply.text
    assert len(load(path)["cells"]) == 2 and "15" in outputs_text(path, 1)


def test_run_scratch_uses_the_same_kernel_and_writes_nothing(shared_server):
    path = notebook(shared_server, "scratch.ipynb", "secret = 'kept in the kernel'")
    shared_server.call("exec_cell", path="scratch.ipynb", index=0)
    before = path.read_bytes()
    reply = shared_server.call("run_scratch", path="scratch.ipynb", code="print(secret.upper())")
    assert not reply.is_error
    assert "KEPT IN THE KERNEL" in reply.text
    assert path.read_bytes() == before


def test_a_markdown_cell_or_a_bad_target_is_a_clear_error(shared_server):
    path = notebook(shared_server, "bad.ipynb", "x = 1")
    document = nbformat.read(path, as_version=4)
    document.cells.append(nbformat.v4.new_markdown_cell("text"))
    nbformat.write(document, path)
    before = path.read_bytes()
    for tool, arguments, expected in [
        ("exec_cell", {"index": 1}, "markdown cell; only code cells run"),
        ("exec_cell", {"index": 5}, "out of range"),
        ("exec_cell", {"index": 0, "timeout": -1}, "timeout must be"),
        ("exec_cell", {"index": 0, "block_for": -2}, "block_for must be"),
        ("exec_cell", {"index": 0, "kernel_name": "no-such-kernel"}, "no kernel named"),
        ("exec_range", {"start": 1, "end": 0}, "comes after end"),
        ("exec_status", {"job_id": "j-00000000"}, "no job"),
    ]:
        reply = (
            shared_server.call(tool, path="bad.ipynb", **arguments)
            if "job_id" not in arguments
            else shared_server.call(tool, **arguments)
        )
        assert reply.is_error, (tool, arguments, reply.text)
        assert expected in reply.text, (tool, reply.text)
    assert path.read_bytes() == before


def test_live_progress_shows_the_running_marker_and_partial_output_on_disk(shared_server, tmp_path):
    flag = tmp_path / "live.flag"
    path = notebook(
        shared_server,
        "live.ipynb",
        gate(flag, before="print('epoch 1 done', flush=True)", after="print('end')"),
    )
    reply = shared_server.call("exec_cell", path="live.ipynb", index=0, block_for=0)
    assert "is running" in reply.text or "is queued" in reply.text
    job_id = re.search(r"j-[0-9a-f]{8}", reply.text).group(0)
    assert f"nb watch --job {job_id} --path {path}" in reply.text

    def partial_on_disk() -> bool:
        text = outputs_text(path, 0)
        return "▶ Running (1/1, started" in text and "epoch 1 done" in text

    wait_for(partial_on_disk, timeout=20, what="the Running marker and partial output on disk")
    first = load(path)["cells"][0]["outputs"][0]
    assert "".join(first["text"]).startswith("[nb mcp] ▶ Running")  # pinned on top
    flag.touch()
    done = shared_server.call("exec_status", job_id=job_id, block_for=20)
    assert "ok" in done.text and "end" in done.text
    assert "▶ Running" not in outputs_text(path, 0)


def test_a_second_exec_on_a_busy_notebook_is_queued_and_runs_after_the_first(
    shared_server, tmp_path
):
    flag = tmp_path / "queue.flag"
    path = notebook(
        shared_server,
        "queue.ipynb",
        gate(flag, after="order = ['first']"),
        "order.append('second'); print(order)",
    )
    first = shared_server.call("exec_cell", path="queue.ipynb", index=0, block_for=0)
    second = shared_server.call("exec_cell", path="queue.ipynb", index=1, block_for=0.2)
    assert "is queued" in second.text, second.text
    second_id = re.search(r"j-[0-9a-f]{8}", second.text).group(0)
    wait_for(lambda: "⏳ Queued" in outputs_text(path, 1), what="the Queued marker on disk")
    flag.touch()
    done = shared_server.call("exec_status", job_id=second_id, block_for=20)
    assert "['first', 'second']" in done.text
    first_id = re.search(r"j-[0-9a-f]{8}", first.text).group(0)
    events = shared_server.events()
    finished_first = next(
        i for i, e in enumerate(events) if e["event"] == "job.finished" and e["job_id"] == first_id
    )
    started_second = next(
        i for i, e in enumerate(events) if e["event"] == "cell.started" and e["job_id"] == second_id
    )
    assert finished_first < started_second


def test_a_chatty_cell_is_stopped_by_its_wall_clock_timeout_and_later_cells_are_skipped(
    shared_server,
):
    path = notebook(
        shared_server,
        "chatty.ipynb",
        "import time\ni = 0\nwhile True:\n    print(i, flush=True); i += 1\n    time.sleep(0.005)",
        "print('after')",
    )
    reply = shared_server.call("exec_all", path="chatty.ipynb", timeout=1.5, block_for=25)
    assert not reply.is_error
    assert "timeout" in reply.text and "timed out" in reply.text
    assert "skipped" in reply.text
    assert "⏱ Timed out at" in outputs_text(path, 0)
    assert "⊘ Skipped" in outputs_text(path, 1) and "after" not in outputs_text(path, 1)
    again = shared_server.call("run_scratch", path="chatty.ipynb", code="print('alive', i > 10)")
    assert "alive True" in again.text  # interrupted, not restarted: the variables survive
    interrupted = events_named(shared_server.events(), "kernel.interrupted")
    assert any(e["reason"] == "timeout" and e["notebook"] == str(path) for e in interrupted)


def test_a_cancelled_call_ends_only_the_wait(shared_server, tmp_path):
    flag = tmp_path / "cancel.flag"
    path = notebook(
        shared_server,
        "cancel.ipynb",
        gate(flag, before="print('started', flush=True)", after="print('finished')"),
    )
    future, progress = shared_server.start_call(
        "exec_cell", path="cancel.ipynb", index=0, block_for=25
    )
    wait_for(lambda: progress, timeout=20, what="a progress notification")
    future.cancel()
    status = shared_server.call("status")
    assert not status.is_error and "cancel.ipynb" in status.text
    job_id = re.search(r"(j-[0-9a-f]{8})\s+cancel\.ipynb", status.text).group(1)
    flag.touch()
    done = shared_server.call("exec_status", job_id=job_id, block_for=20)
    assert "ok" in done.text and "finished" in done.text
    assert "finished" in outputs_text(path, 0)
    cancelled = [
        e
        for e in events_named(shared_server.events(), "tool.completed")
        if e["tool"] == "exec_cell" and not e["ok"] and "cancelled" in e["error"]
    ]
    assert cancelled


def test_progress_notifications_arrive_while_waiting(shared_server, tmp_path):
    flag = tmp_path / "progress.flag"
    notebook(shared_server, "progress.ipynb", gate(flag, before="print('step 1', flush=True)"))
    future, progress = shared_server.start_call(
        "exec_cell", path="progress.ipynb", index=0, block_for=25
    )
    wait_for(lambda: len(progress) >= 2, timeout=20, what="two progress notifications")
    flag.touch()
    reply = future.result(timeout=30)
    assert not reply.is_error
    values = [value for value, _, _ in progress]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert any("step 1" in (message or "") for _, _, message in progress)


def test_block_for_above_the_maximum_is_clamped_and_the_reply_says_so(shared_server, tmp_path):
    flag = tmp_path / "clamp.flag"
    notebook(shared_server, "clamp.ipynb", gate(flag))
    env_max = 30
    future, _ = shared_server.start_call("exec_cell", path="clamp.ipynb", index=0, block_for=600)
    wait_for(
        lambda: (shared_server.cwd / "clamp.ipynb").read_text().count("Running"),
        timeout=20,
        what="the cell to start",
    )
    flag.touch()
    reply = future.result(timeout=env_max + 10)
    assert f"block_for=600 was clamped to {env_max}s" in reply.text


def test_a_cell_writing_to_fd_1_does_not_break_the_protocol(shared_server):
    notebook(
        shared_server,
        "fd1.ipynb",
        "import os\nos.write(1, b'{\"jsonrpc\": \"garbage\"}\\n')\nos.write(2, b'err\\n')\n"
        "print('visible')",
    )
    reply = shared_server.call("exec_cell", path="fd1.ipynb", index=0)
    assert not reply.is_error and "visible" in reply.text
    assert not shared_server.call("list_cells", path="fd1.ipynb").is_error
    logs = list((shared_server.env_path("NB_MCP_STATE_DIR") / "kernels").glob("*.log"))
    assert any('{"jsonrpc": "garbage"}' in log.read_text() for log in logs)


def test_input_is_a_clear_error_not_a_hang(shared_server):
    notebook(shared_server, "input.ipynb", "name = input('name? ')")
    reply = shared_server.call("exec_cell", path="input.ipynb", index=0, block_for=15)
    assert "StdinNotImplementedError" in reply.text
    assert "without stdin" in reply.text


def test_the_kernel_runs_in_the_notebooks_folder(shared_server):
    path = notebook(shared_server, "sub/dir/cwd.ipynb", "import os\nprint(os.getcwd())")
    reply = shared_server.call("exec_cell", path="sub/dir/cwd.ipynb", index=0)
    assert str(path.parent) in reply.text


def test_two_notebooks_run_at_the_same_time(shared_server, tmp_path):
    flags = [tmp_path / "one.flag", tmp_path / "two.flag"]
    for n, flag in enumerate(flags):
        notebook(
            shared_server, f"par{n}.ipynb", gate(flag, before=f"print('running {n}', flush=True)")
        )
        shared_server.call("exec_cell", path=f"par{n}.ipynb", index=0, block_for=0)

    def both_running() -> bool:
        text = shared_server.call("status").text
        return all(re.search(rf"par{n}\.ipynb\s+python3\s+pid \d+\s+busy", text) for n in range(2))

    wait_for(both_running, timeout=30, what="two busy kernels at once")
    for flag in flags:
        flag.touch()
    for n in range(2):
        wait_for(
            lambda n=n: "✓ Done" in outputs_text(shared_server.cwd / f"par{n}.ipynb", 0),
            timeout=20,
            what=f"notebook {n} to finish",
        )


def test_interrupt_restart_and_shutdown_kernel(shared_server, tmp_path):
    flag = tmp_path / "never.flag"
    path = notebook(shared_server, "control.ipynb", "kept = 1", gate(flag), "print('x')")
    shared_server.call("exec_cell", path="control.ipynb", index=0)
    shared_server.call("exec_range", path="control.ipynb", start=1, block_for=0)
    wait_for(lambda: "Running" in outputs_text(path, 1), timeout=20, what="the cell to run")
    reply = shared_server.call("interrupt", path="control.ipynb")
    assert "interrupt" in reply.text
    # The error output may be flushed before the job marks the rest: wait for the end state.
    wait_for(
        lambda: (
            "KeyboardInterrupt" in outputs_text(path, 1) and "⊘ Skipped" in outputs_text(path, 2)
        ),
        timeout=20,
        what="the KeyboardInterrupt and the Skipped marker",
    )
    assert "1" in shared_server.call("run_scratch", path="control.ipynb", code="print(kept)").text
    restart = shared_server.call("restart_kernel", path="control.ipynb")
    assert "restart" in restart.text
    gone = shared_server.call("run_scratch", path="control.ipynb", code="print(kept)", block_for=20)
    assert "NameError" in gone.text
    stop = shared_server.call("shutdown_kernel", path="control.ipynb")
    assert "shut down" in stop.text
    events = shared_server.events()
    assert events_named(events, "kernel.restarted") and events_named(events, "kernel.stopped")
    fresh = shared_server.call("exec_cell", path="control.ipynb", index=0)
    assert "ok" in fresh.text


def test_the_server_stops_every_kernel_it_started_when_it_exits(tmp_path, workdir):
    # An MCP client kills a server that has not exited two seconds after stdin closed:
    # stopping ten kernels one after the other would not make it, and would leak them.
    server = McpServer(workdir, server_env(tmp_path), tmp_path / "stderr")
    for n in range(10):
        notebook(server, f"k{n}.ipynb", "x = 1")
        server.call("exec_cell", path=f"k{n}.ipynb", index=0)
    pids = [e["kernel_pid"] for e in events_named(server.events(), "kernel.ready")]
    assert len(pids) == 10 and all(process_alive(pid) for pid in pids)
    server.close()
    wait_for(
        lambda: not any(process_alive(pid) for pid in pids), timeout=20, what="kernels to exit"
    )
    assert not list((tmp_path / "state" / "kernels").glob("*.json"))
    last = read_events(tmp_path / "events.log")[-1]
    assert last["event"] == "server.stopped"  # it finished its shutdown, it was not killed


def test_a_server_that_exits_while_its_kernel_starts_leaves_no_kernel_behind(tmp_path, workdir):
    # A client that closes right after `exec_cell(block_for=0)`: the kernel is still starting
    # (in a thread), or its start's answer still waits in the kernel actor's mailbox.
    state = tmp_path / "state"
    server = McpServer(workdir, server_env(tmp_path), tmp_path / "stderr")
    notebook(server, "quick.ipynb", "x = 1")
    reply = server.call("exec_cell", path="quick.ipynb", index=0, block_for=0)
    assert "Job" in reply.text, reply.text
    server.close()

    def kernels_left() -> list[str]:
        left = []
        for process in psutil.process_iter(["cmdline"]):
            command = " ".join(process.info["cmdline"] or [])
            if "ipykernel" in command and str(state) in command:
                left.append(f"{process.pid}: {command}")
        return left

    wait_for(lambda: not kernels_left(), timeout=20, what="every kernel of the server to exit")


def test_a_10000_update_tqdm_bar_ends_as_one_line_on_disk(shared_server):
    path = notebook(
        shared_server,
        "tqdm.ipynb",
        "from tqdm import tqdm\n"
        "for _ in tqdm(range(10_000), mininterval=0, miniters=1, desc='bar'):\n"
        "    pass",
    )
    reply = shared_server.call("exec_cell", path="tqdm.ipynb", index=0, block_for=30)
    assert "ok" in reply.text, reply.text
    (bar,) = [
        o
        for o in load(path)["cells"][0]["outputs"]
        if o["output_type"] == "stream"
        and o["name"] == "stderr"
        and not "".join(o["text"]).startswith("[nb mcp]")
    ]
    text = "".join(bar["text"])
    assert text.count("\n") == 1 and "10000/10000" in text and "\r" not in text
    assert len(text) < 200


def test_a_progress_bar_that_leaves_only_blanks_adds_no_empty_stderr_block_to_the_reply(
    shared_server,
):
    path = notebook(
        shared_server,
        "bars.ipynb",
        "import sys\n"
        "from tqdm import tqdm\n"
        "for _ in tqdm(range(3), leave=False):\n"  # the bar clears itself with blanks and \r
        "    pass\n"
        "print('done', flush=True)\n"
        "sys.stderr.write('\\n'); sys.stderr.flush()",  # tqdm's closing newline, flushed late
    )
    reply = shared_server.call("exec_cell", path="bars.ipynb", index=0)
    assert not reply.is_error and "[stdout]\ndone" in reply.text, reply.text
    assert "[stderr]" not in reply.text, reply.text
    stderr = [
        o
        for o in load(path)["cells"][0]["outputs"]
        if o.get("name") == "stderr" and not "".join(o["text"]).startswith("[nb mcp]")
    ]
    assert stderr, "the blanks are still in the file, as JupyterLab would save them"
    listed = shared_server.call("list_cells", path="bars.ipynb").text.splitlines()[1]
    assert "stdout 1 line" in listed and "stderr" not in listed, listed


def test_output_written_to_file_descriptors_1_and_2_shows_in_the_cell_and_the_kernels_log(
    tmp_path, workdir
):
    env = server_env(tmp_path)
    # pytest's marker makes ipykernel skip its fd capture; a user's kernel never has it.
    env.pop("PYTEST_CURRENT_TEST", None)
    with McpServer(workdir, env, tmp_path / "server.stderr") as server:
        path = notebook(
            server,
            "fds.ipynb",
            "import os, subprocess, sys\n"
            "os.system('echo from-os-system')\n"
            "subprocess.run(['sh', '-c', 'echo from-a-subprocess; echo to-fd-2 >&2'])\n"
            'os.write(1, b\'{"jsonrpc": "garbage"}\\n\')\n'
            "sys.__stdout__.write('from-sys-dunder-stdout\\n'); sys.__stdout__.flush()\n"
            "print('from-print')",
        )
        reply = server.call("exec_cell", path="fds.ipynb", index=0)
        assert not reply.is_error, reply.text
        # They come through a pipe: in order among themselves, not with print()'s output.
        streams = stream_blocks(reply.text)
        for line in ("from-os-system", "from-a-subprocess", "garbage", "from-sys-dunder-stdout"):
            assert line in streams["stdout"], reply.text
        assert "to-fd-2" in streams["stderr"], reply.text
        on_disk = outputs_text(path, 0)
        assert "from-os-system" in on_disk and "to-fd-2" in on_disk
        logs = list((tmp_path / "state" / "kernels").glob("*.log"))
        assert len(logs) == 1
        log = logs[0].read_text()
        assert "from-os-system" in log and "to-fd-2" in log and "garbage" in log
        assert "from-print" not in log  # Python-level output goes to the cell only
        assert not server.call("list_cells", path="fds.ipynb").is_error  # the MCP stream is intact


def stream_blocks(reply: str) -> dict[str, str]:
    """The text of every [stdout] / [stderr] block of a reply, joined per stream."""
    blocks: dict[str, str] = {"stdout": "", "stderr": ""}
    current = None
    for line in reply.splitlines():
        if line in ("[stdout]", "[stderr]"):
            current = line[1:-1]
        elif line.startswith(("[", "── ")):
            current = None
        elif current is not None:
            blocks[current] += line + "\n"
    return blocks


def test_a_job_over_many_cells_answers_each_cell_with_its_own_runs_outputs(shared_server):
    # 70 cells: more than any fixed-size cache of runs. The first cell runs again in a
    # second job before the first job's reply is read: that reply still shows its own run.
    counter = "runs = globals().get('runs', 0) + 1\nprint(f'run {runs} of the first cell')"
    others = [f"print('cell {n}')" for n in range(1, 70)]
    notebook(shared_server, "many.ipynb", counter, *others)
    first = shared_server.call("exec_all", path="many.ipynb", block_for=0)
    first_id = re.search(r"j-[0-9a-f]{8}", first.text).group(0)
    again = shared_server.call("exec_cell", path="many.ipynb", index=0, block_for=30)
    assert "run 2 of the first cell" in again.text, again.text
    reply = shared_server.call("exec_status", job_id=first_id, block_for=30)
    assert f"Job {first_id}" in reply.text and ": ok" in reply.text, reply.text
    assert "run 1 of the first cell" in reply.text and "run 2" not in reply.text, reply.text
    assert "cell 1\n" in reply.text and "cell 69" in reply.text


def test_an_old_jobs_own_outputs_are_let_go_and_its_reply_shows_the_notebook_and_says_so(
    shared_server,
):
    notebook(shared_server, "kept.ipynb", "runs = globals().get('runs', 0) + 1\nprint('run', runs)")
    first = shared_server.call("exec_cell", path="kept.ipynb", index=0, block_for=30)
    second = shared_server.call("exec_cell", path="kept.ipynb", index=0, block_for=30)
    first_id, second_id = first.job_id, second.job_id
    assert first_id and second_id and "run 2" in second.text
    again = shared_server.call("exec_status", job_id=first_id)
    assert "run 1" in again.text and "no longer kept" not in again.text  # its own run's
    # Let go when a job is submitted: by the last one, OUTPUTS_KEPT finished jobs are newer
    # than the first, and the second is among the newest OUTPUTS_KEPT.
    for number in range(OUTPUTS_KEPT):
        scratch = shared_server.call("run_scratch", path="kept.ipynb", code=f"print({number})")
        assert not scratch.is_error and scratch.finished, scratch.text
    old = shared_server.call("exec_status", job_id=first_id)
    assert not old.is_error, old.text
    assert "its own outputs are no longer kept" in old.text
    assert "run 2" in old.text and "run 1" not in old.text  # what the notebook holds now
    kept = shared_server.call("exec_status", job_id=second_id)
    assert "run 2" in kept.text and "no longer kept" not in kept.text
