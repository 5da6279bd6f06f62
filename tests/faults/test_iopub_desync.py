"""iopub desync, for real: a ZMQ proxy between nb and the kernel's iopub breaks messages.

The kernelspecs run support/proxy_kernel.py, which starts a real ipykernel and forwards its
iopub through a socket bound where nb's connection file says; on a stream message containing
`CORRUPT_ME` it drops the `<IDS|MSG>` frame, truncates the message, or breaks its signature.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import (
    Kernelspecs,
    gone,
    job_id_of,
    kernel_pid,
    notebook_on,
    timed,
    wait_event,
)
from tests.helpers import (
    McpServer,
    events_named,
    gate,
    load,
    notebook,
    outputs_text,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("no_process_left_behind")


SLOW_KERNEL_INFO = """
import time
_kernel = get_ipython().kernel
_answer_kernel_info = _kernel.shell_handlers["kernel_info_request"]

async def _slow_kernel_info(*args):
    time.sleep(0.5)  # a kernel slow to answer: the probe on rebuilt channels comes back late
    return await _answer_kernel_info(*args)

_kernel.shell_handlers["kernel_info_request"] = _slow_kernel_info
"""


def desync_mid_cell(server: McpServer, kernelspecs: Kernelspecs, path, pid: int, flag) -> None:
    """Wait for the broken message, nb's recovery, and its new subscription; open the gate."""
    desync = wait_event(server, "iopub.desync", notebook=str(path))
    assert desync["level"] == "error"
    recovered = wait_event(server, "iopub.recovered", notebook=str(path))
    assert recovered["resumed_msg_id"], recovered  # the running cell's request, still routed
    assert len(kernelspecs.lines(pid, "corrupted")) == 1
    # Output printed once nb's new socket is subscribed must land in the same cell (what is
    # printed before that is "in between", and the marker says it may be missing).
    wait_for(
        lambda: len(kernelspecs.lines(pid, "subscriptions")) >= 2,
        what="nb's rebuilt iopub socket to subscribe through the proxy",
    )
    flag.touch()


def assert_only_the_channels_were_rebuilt(server: McpServer, path, pid: int) -> None:
    events = server.events()
    mine = [e for e in events if e.get("notebook") == str(path)]
    assert len(events_named(mine, "kernel.starting")) == 1, "a second kernel was started"
    assert [e["kernel_pid"] for e in events_named(mine, "kernel.ready")] == [pid]
    assert not events_named(mine, "kernel.died") + events_named(mine, "kernel.restarted")
    restarted = [
        e
        for e in events_named(events, "supervisor.child_restarted")
        if e["supervisor"] == f"notebook:{path}"
    ]
    assert [e["child"] for e in restarted] == ["kernel"]
    order = [e["event"] for e in mine if e["event"].startswith("iopub.")]
    assert order == ["iopub.desync", "iopub.recovered"]
    assert not gone(pid)


@pytest.mark.parametrize("how", ["drop_delimiter", "truncate", "bad_signature"])
def test_a_broken_iopub_message_rebuilds_only_the_channels_and_the_cell_goes_on(
    fault_server: McpServer, kernelspecs: Kernelspecs, tmp_path, how
):
    server = fault_server
    spec = kernelspecs.proxy(f"desync-{how.replace('_', '-')}", mode="once", how=how)
    flag = tmp_path / "after-gap.flag"
    path = notebook_on(
        server,
        "desync.ipynb",
        spec,
        "kept = 41",
        gate(
            flag,
            before="print('before the gap', flush=True)\nprint('CORRUPT_ME', flush=True)",
            after="print('after the gap', flush=True)\nkept += 1",
        ),
    )
    first = server.call("exec_cell", path="desync.ipynb", index=0)
    assert ": ok" in first.text, first.text
    pid = kernel_pid(server, path)
    job = job_id_of(server.call("exec_cell", path="desync.ipynb", index=1, block_for=0).text)
    desync_mid_cell(server, kernelspecs, path, pid, flag)

    done = server.call("exec_status", job_id=job, block_for=20)
    assert not done.is_error, done.text
    assert f"Job {job} on desync.ipynb: ok" in done.text, done.text
    assert "after the gap" in done.text

    cell = outputs_text(path, 1)
    assert "before the gap" in cell and "after the gap" in cell
    assert "⚠ Lost the kernel's output stream and reconnected" in cell
    assert "output in between may be missing" in cell
    assert "✓ Done at" in cell and "▶ Running" not in cell
    assert load(path)["cells"][1]["execution_count"] == 2

    # The kernel process survived the restart of its actor, variables and all.
    again = server.call("run_scratch", path="desync.ipynb", code="print('still', kept)")
    assert "still 42" in again.text, again.text
    assert_only_the_channels_were_rebuilt(server, path, pid)


def test_the_next_cell_after_a_desync_runs_on_the_same_kernel_even_if_it_answers_late(
    fault_server: McpServer, kernelspecs: Kernelspecs, tmp_path
):
    # After the rebuild, nb's probe (kernel_info) on the new channels is answered only once
    # the kernel is free. The job's next cell is sent before that answer: it must wait for
    # the rebuilt channels, not start a second kernel.
    server = fault_server
    spec = kernelspecs.proxy("desync-slow", mode="once")
    flag = tmp_path / "after-gap.flag"
    path = notebook_on(
        server,
        "slow.ipynb",
        spec,
        SLOW_KERNEL_INFO + "kept = 41",
        gate(flag, before="print('CORRUPT_ME', flush=True)", after="kept += 1"),
        "print('kept is', kept)",
    )
    job = job_id_of(server.call("exec_all", path="slow.ipynb", block_for=0).text)
    pid = kernel_pid(server, path)
    desync_mid_cell(server, kernelspecs, path, pid, flag)

    done = server.call("exec_status", job_id=job, block_for=20)
    assert f"Job {job} on slow.ipynb: ok" in done.text, done.text
    assert "kept is 42" in done.text and "kept is 42" in outputs_text(path, 2)
    assert [c["execution_count"] for c in load(path)["cells"]] == [1, 2, 3]
    assert_only_the_channels_were_rebuilt(server, path, pid)
    status = server.call("status")
    assert f"pid {pid}" in status.text, status.text


def test_a_desync_when_the_idle_message_is_lost_still_ends_the_cell(
    fault_server: McpServer, kernelspecs: Kernelspecs
):
    # The broken message is the cell's last output: the idle that follows it is likely lost
    # in the gap, and the probe on the rebuilt channels must end the cell instead of a hang.
    server = fault_server
    spec = kernelspecs.proxy("desync-last", mode="once")
    path = notebook_on(server, "last.ipynb", spec, "x = 7\nprint('CORRUPT_ME', flush=True)")
    reply, took = timed(lambda: server.call("exec_cell", path="last.ipynb", index=0, block_for=25))
    assert not reply.is_error, reply.text
    assert ": ok" in reply.text, reply.text
    assert took < 20
    wait_event(server, "iopub.recovered", notebook=str(path))
    cell = outputs_text(path, 0)
    assert "✓ Done at" in cell and "▶ Running" not in cell
    again = server.call("run_scratch", path="last.ipynb", code="print(x * 6)")
    assert "42" in again.text, again.text
    assert_only_the_channels_were_rebuilt(server, path, kernel_pid(server, path))


def test_repeated_desyncs_past_the_restart_intensity_give_up_on_that_notebook_only(
    fault_server: McpServer, kernelspecs: Kernelspecs
):
    server = fault_server
    spec = kernelspecs.proxy("desync-always", mode="always")
    other = notebook(server, "healthy.ipynb", "print('healthy', 6 * 7)")
    path = notebook_on(
        server,
        "storm.ipynb",
        spec,
        "import time\nfor i in range(600):\n    print('CORRUPT_ME', i, flush=True)\n"
        "    time.sleep(0.05)",
        "print('never runs')",
    )
    reply = server.call("exec_all", path="storm.ipynb", block_for=0)
    assert not reply.is_error, reply.text
    job = job_id_of(reply.text)
    pid = kernel_pid(server, path)

    gave_up = wait_event(server, "supervisor.gave_up", timeout=30, supervisor=f"notebook:{path}")
    assert gave_up["level"] == "error"
    assert gave_up["restarts"] > 5 and gave_up["period_sec"] == 60
    desyncs = [
        e for e in events_named(server.events(), "iopub.desync") if e["notebook"] == str(path)
    ]
    assert len(desyncs) == 6  # five restarts allowed in 60 s, the sixth failure gives up

    # The job ends (not hung); the file shows where it stopped.
    finished = wait_event(server, "job.finished", timeout=15, job_id=job)
    wait_for(
        lambda: "▶ Running" not in outputs_text(path, 0) and "⊘ Skipped" in outputs_text(path, 1),
        timeout=10,
        what="the file to show the job's end",
    )
    cells = load(path)["cells"]
    markers = [
        "".join(o["text"])
        for o in cells[0]["outputs"]
        if o["output_type"] == "stream" and "".join(o["text"]).startswith("[nb mcp]")
    ]
    assert "never runs" not in outputs_text(path, 1)

    # The rest of the server keeps serving, promptly.
    healthy, took = timed(lambda: server.call("exec_cell", path="healthy.ipynb", index=0))
    assert not healthy.is_error and ": ok" in healthy.text and "healthy 42" in healthy.text
    assert took < 15
    assert "healthy 42" in outputs_text(other, 0)
    listing = server.call("list_cells", path="healthy.ipynb")
    assert not listing.is_error and "healthy" in listing.text, listing.text
    status = server.call("status")
    assert not status.is_error and "healthy.ipynb" in status.text

    # The job ended in error (the server did not stop), and says why, in events, reply, file.
    assert finished["status"] == "error", finished
    cell_ends = [
        (e["cell_id"], e["status"])
        for e in events_named(server.events(), "cell.finished")
        if e["job_id"] == job
    ]
    assert cell_ends == [(cells[0]["id"], "error"), (cells[1]["id"], "skipped")], cell_ends
    # The running cell's last marker says what happened to this notebook, not that the
    # server stopped (it did not).
    assert "gave up" in markers[-1] and "server stopped" not in markers[-1], markers[-1]
    done = server.call("exec_status", job_id=job, block_for=20)
    assert not done.is_error, done.text
    assert f"Job {job} on storm.ipynb: error" in done.text, done.text

    # The kernel it gave up on does not run on unsupervised.
    wait_for(lambda: gone(pid), timeout=10, what=f"the given-up kernel {pid} to be stopped")

    # The notebook itself can be opened again.
    listing = server.call("list_cells", path="storm.ipynb")
    assert not listing.is_error and "never runs" in listing.text, listing.text
