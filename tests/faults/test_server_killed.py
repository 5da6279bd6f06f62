"""`nb mcp` killed with SIGKILL while a cell streams: what is left, and who cleans it up.

The file must be a valid notebook holding the outputs of the last flush. The next server in the
same folder and state dir replaces the dead server's Running/Queued markers when it opens the
notebook; `nb status` reports the dead server's kernel as orphaned and `nb cleanup` stops that
kernel and nothing else: not a live server, not its kernel, not an unrelated process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

from tests.faults.writer_support import (
    alive,
    cell_by_id,
    events_of,
    job_id_of,
    markers_of,
    ticker,
    ticks_of,
    valid_notebook,
)
from tests.helpers import NB, McpServer, notebook, server_env, wait_for


def nb_command(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([NB, *args], env=env, capture_output=True, text=True, timeout=60)


def kernel_logs(state: Path) -> str:
    return "\n".join(f"{log.name}: {log.read_text()}" for log in state.glob("kernels/*.log"))


def orphaned_pids(env: dict) -> list[int]:
    status = json.loads(nb_command(env, "status", "--json").stdout)
    return [k["pid"] for k in status["kernels"] if k["orphaned"]]


def test_a_killed_server_leaves_a_valid_notebook_whose_stale_markers_the_next_server_replaces(
    tmp_path, workdir
):
    env = server_env(tmp_path)
    never = tmp_path / "never.flag"
    first = McpServer(workdir, env, tmp_path / "first.stderr")
    second: McpServer | None = None
    bystander = subprocess.Popen(["sleep", "600"])  # not nb's: must survive everything
    try:
        code = ticker(never)
        path = notebook(first, "killed.ipynb", code, "print('second')", "print('third')")
        running, queued, last = [c["id"] for c in valid_notebook(path)["cells"]]
        reply = first.call("exec_all", path="killed.ipynb", block_for=0)
        job_id = job_id_of(reply.text)

        def streaming_with_queued_cells() -> bool:
            cell = cell_by_id(path, running)
            return len(ticks_of(cell)) >= 5 and all(
                any("⏳ Queued" in m for m in markers_of(cell_by_id(path, i)))
                for i in (queued, last)
            )

        wait_for(streaming_with_queued_cells, timeout=30, what="ticks and Queued markers on disk")
        (orphan,) = [e["kernel_pid"] for e in events_of(first, "kernel.ready")]
        os.kill(first.pid, signal.SIGKILL)
        wait_for(lambda: not alive(first.pid), timeout=10, what="the server to die")

        saved = valid_notebook(path)  # whole and valid: the last flush, not a part of one
        left = path.read_bytes()
        cell = saved["cells"][0]
        assert markers_of(cell)[0].startswith("[nb mcp] ▶ Running (1/3, started")
        ticks = ticks_of(cell)
        assert len(ticks) >= 5 and ticks == list(range(len(ticks))), ticks
        for index in (1, 2):
            assert markers_of(saved["cells"][index])[0].startswith("[nb mcp] ⏳ Queued")
            assert f"job {job_id}" in markers_of(saved["cells"][index])[0]
        # The kernel runs on (its output goes nowhere) until `nb cleanup` stops it.
        assert alive(orphan), kernel_logs(tmp_path / "state")

        status = nb_command(env, "status")
        assert status.returncode == 0, status.stderr
        assert re.search(rf"pid {orphan}\s+python3\s+.*ORPHANED", status.stdout), status.stdout
        assert re.search(rf"pid {first.pid}\s+mcp\s+gone", status.stdout), status.stdout
        assert orphaned_pids(env) == [orphan]
        assert path.read_bytes() == left  # nobody wrote it since the kill

        second = McpServer(workdir, env, tmp_path / "second.stderr")
        listing = second.call("list_cells", path="killed.ipynb")
        assert not listing.is_error, listing.text
        reopened = valid_notebook(path)
        assert [c["id"] for c in reopened["cells"]] == [running, queued, last]
        for cell in reopened["cells"]:
            markers = markers_of(cell)
            assert len(markers) == 1, markers
            assert markers[0].startswith(
                "[nb mcp] ⚠ The nb server stopped before this cell finished"
            ), markers
        assert ticks_of(reopened["cells"][0]) == ticks  # the outputs saved before the kill
        assert "".join(reopened["cells"][0]["source"]) == code
        (replaced,) = events_of(second, "notebook.stale_markers_replaced", notebook=str(path))
        assert replaced["cells"] == 3
        assert (
            "stopped before this cell finished"
            in second.call("read_cell", path="killed.ipynb", index=0).text
        )

        # The new server's own kernel, busy with a variable: cleanup must not touch it.
        notebook(second, "alive.ipynb", "survivor = 41")
        ran = second.call("exec_cell", path="alive.ipynb", index=0, block_for=25)
        assert not ran.is_error and ": ok" in ran.text, ran.text
        (own,) = [e["kernel_pid"] for e in events_of(second, "kernel.ready")]
        status = nb_command(env, "status")
        assert re.search(rf"pid {own}\s+python3\s+.*running \(server {second.pid}\)", status.stdout)
        # Seconds after the kill, the dead server's kernel must still be there for cleanup.
        assert orphaned_pids(env) == [orphan], (
            "the orphaned kernel is gone before `nb cleanup`; kernel logs:\n"
            + kernel_logs(tmp_path / "state")
        )

        cleanup = nb_command(env, "cleanup")
        assert cleanup.returncode == 0, cleanup.stderr
        assert f"stopping orphaned kernel pid {orphan}" in cleanup.stdout, cleanup.stdout
        assert "stopped 1 orphaned kernel" in cleanup.stdout, cleanup.stdout
        wait_for(lambda: not alive(orphan), timeout=10, what="the orphaned kernel to be gone")
        assert alive(second.pid) and alive(own) and bystander.poll() is None
        again = second.call("run_scratch", path="alive.ipynb", code="print(survivor + 1)")
        assert not again.is_error and "42" in again.text, again.text
        after = json.loads(nb_command(env, "status", "--json").stdout)
        assert [k["pid"] for k in after["kernels"]] == [own]
        assert [s["pid"] for s in after["servers"]] == [second.pid]
        assert not [e for e in second.events() if e["event"] == "error.unhandled"]
    finally:
        bystander.kill()
        bystander.wait()
        first.close()
        if second is not None:
            second.close()
        nb_command(env, "cleanup")


def test_a_server_killed_twice_in_a_row_still_leaves_a_valid_notebook_with_every_edit(
    tmp_path: Path, workdir: Path
):
    env = server_env(tmp_path)
    path = workdir / "edits.ipynb"
    for round_ in range(2):
        server = McpServer(workdir, env, tmp_path / f"edits{round_}.stderr")
        try:
            for k in range(5):
                reply = server.call("insert_cell", path="edits.ipynb", source=f"r{round_}_{k} = 1")
                assert not reply.is_error, reply.text
            os.kill(server.pid, signal.SIGKILL)
            wait_for(lambda s=server: not alive(s.pid), timeout=10, what="the server to die")
        finally:
            server.close()
        saved = valid_notebook(path)
        expected = [f"r{r}_{k} = 1" for r in range(round_ + 1) for k in range(5)]
        assert ["".join(c["source"]) for c in saved["cells"]] == expected
    assert not list(workdir.glob("*.nbtmp")) and not list(workdir.glob(".*.nbtmp"))
