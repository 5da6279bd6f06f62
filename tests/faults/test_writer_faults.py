"""Writer faults made for real: a full disk, a file size limit, a read-only folder, the file
replaced by a folder, all while a job streams output into the notebook.

What must hold each time: the document stays in nb's memory, the job keeps running, the agent
hears about it in its next reply on that notebook, the write is retried with back-off, and once
the fault is gone the file holds every output. While the fault lasts the file on disk is read
over and over: every read is a whole, valid notebook (never truncated, never half-written), and
no `.nbtmp` temp file is left behind.
"""

from __future__ import annotations

import errno
import resource
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.writer_support import (
    FileWatcher,
    Mounts,
    events_of,
    fill_disk,
    job_id_of,
    leftover_temp_files,
    markers_of,
    mounts,
    stdout_of,
    valid_notebook,
)
from tests.helpers import McpServer, notebook, outputs_text, server_env, wait_for

RETRY_DELAYS = {0.5, 1.0, 2.0, 5.0, 10.0}


@pytest.fixture
def small_disks() -> Iterator[Mounts]:
    with mounts() as made:
        yield made


def phased_cell(fault: Path, printed: Path, done: Path, during: str, lines: int = 40) -> str:
    """A cell that prints, waits for the fault, prints `lines` lines, says so, waits, ends."""
    return (
        "import os, time\n"
        "print('before the fault', flush=True)\n"
        f"while not os.path.exists({str(fault)!r}):\n"
        "    time.sleep(0.01)\n"
        f"for i in range({lines}):\n"
        f"    print({during!r}.format(i), flush=True)\n"
        "    time.sleep(0.005)\n"
        f"open({str(printed)!r}, 'w').close()\n"
        f"while not os.path.exists({str(done)!r}):\n"
        "    time.sleep(0.01)\n"
        "print('after the fault')\n"
    )


class Phases:
    def __init__(self, tmp_path: Path) -> None:
        self.fault = tmp_path / "fault.flag"
        self.printed = tmp_path / "printed.flag"
        self.done = tmp_path / "done.flag"

    def cell(self, during: str = "during {}", lines: int = 40) -> str:
        return phased_cell(self.fault, self.printed, self.done, during, lines)


def start_job(server: McpServer, rel: str) -> str:
    reply = server.call("exec_cell", path=rel, index=0, block_for=0)
    assert not reply.is_error, reply.text
    return job_id_of(reply.text)


def wait_for_first_output(server: McpServer, path: Path) -> None:
    """The cell's first output is on disk and nb is done writing it (nothing else comes
    until the fault is made: the cell waits for it)."""
    wait_for(
        lambda: "before the fault" in outputs_text(path, 0),
        timeout=30,
        what="the cell's first output on disk",
    )
    # A reply on the notebook: its writer finished that write (one mailbox).
    assert not server.call("list_cells", path=str(path.relative_to(server.cwd))).is_error


def finish(server: McpServer, phases: Phases, job_id: str) -> str:
    phases.done.touch()
    reply = server.call("exec_status", job_id=job_id, block_for=25)
    assert not reply.is_error, reply.text
    assert f"Job {job_id}" in reply.text and ": ok" in reply.text, reply.text
    return reply.text


def assert_backoff(failures: list[dict]) -> None:
    delays = [e["retry_in_sec"] for e in failures]
    assert set(delays) <= RETRY_DELAYS, delays
    assert delays[0] == 0.5 and delays == sorted(delays), delays


def test_a_full_disk_keeps_the_notebook_in_memory_and_writes_every_output_once_space_returns(
    tmp_path, workdir, small_disks
):
    disk = small_disks.tmpfs(workdir / "disk", "256k")
    phases = Phases(tmp_path)
    with McpServer(workdir, server_env(tmp_path), tmp_path / "stderr") as server:
        path = notebook(server, "disk/full.ipynb", phases.cell())
        job_id = start_job(server, "disk/full.ipynb")
        wait_for_first_output(server, path)
        last_good = path.read_bytes()
        with FileWatcher(path) as watcher:
            filler = fill_disk(disk)
            phases.fault.touch()
            failed = wait_for(
                lambda: events_of(server, "writer.flush_failed", notebook=str(path)),
                timeout=20,
                what="writer.flush_failed",
            )
            assert failed[0]["errno"] == errno.ENOSPC and failed[0]["error"].startswith(
                "disk full"
            ), failed[0]
            # The job keeps running: the cell gets to the end of its loop.
            wait_for(phases.printed.exists, timeout=20, what="the cell to print during the fault")
            assert path.read_bytes() == last_good  # the last good version, not a part of one
            listing = server.call("list_cells", path="disk/full.ipynb")
            assert not listing.is_error, listing.text
            assert "full.ipynb could not be written for" in listing.text, listing.text
            assert "disk full" in listing.text and "retries" in listing.text, listing.text
            edit = server.call(
                "insert_cell",
                path="disk/full.ipynb",
                source="made while the disk was full",
                cell_type="markdown",
            )
            assert edit.is_error and "could NOT be written to disk" in edit.text, edit.text
            assert "keeps it in memory" in edit.text, edit.text
            read = server.call("read_cell", path="disk/full.ipynb", index=1)
            assert "made while the disk was full" in read.text, read.text  # in nb's memory
            wait_for(
                lambda: len(events_of(server, "writer.flush_failed", notebook=str(path))) >= 3,
                timeout=20,
                what="the write to be retried",
            )
            assert path.read_bytes() == last_good
            filler.unlink()
            wait_for(
                lambda: events_of(server, "writer.flush_recovered", notebook=str(path)),
                timeout=30,
                what="writer.flush_recovered after the filler is gone",
            )
        assert not watcher.problems, watcher.problems
        assert watcher.reads > 20
        assert_backoff(events_of(server, "writer.flush_failed", notebook=str(path)))
        told = server.call("list_cells", path="disk/full.ipynb")
        assert "full.ipynb is written to disk again" in told.text, told.text
        reply = finish(server, phases, job_id)
        assert "during 39" in reply and "after the fault" in reply
    saved = valid_notebook(path)
    expected = "".join(f"during {i}\n" for i in range(40))
    assert stdout_of(saved["cells"][0]) == f"before the fault\n{expected}after the fault\n"
    assert "✓ Done" in markers_of(saved["cells"][0])[-1]
    assert [c["cell_type"] for c in saved["cells"]] == ["code", "markdown"]
    assert "".join(saved["cells"][1]["source"]) == "made while the disk was full"
    assert not leftover_temp_files(disk)


def test_a_file_size_limit_reached_by_the_cells_own_output_is_a_failed_write_not_a_dead_server(
    tmp_path, workdir
):
    phases = Phases(tmp_path)
    limit = 96 * 1024
    with McpServer(workdir, server_env(tmp_path), tmp_path / "stderr") as server:
        path = notebook(server, "big.ipynb", phases.cell("line {:03d} " + "x" * 1000, 150))
        job_id = start_job(server, "big.ipynb")
        wait_for_first_output(server, path)
        assert path.stat().st_size < limit and server.log_path.stat().st_size < limit // 2
        unlimited = resource.RLIM_INFINITY
        resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (limit, unlimited))
        try:
            with FileWatcher(path) as watcher:
                phases.fault.touch()
                failed = wait_for(
                    lambda: events_of(server, "writer.flush_failed", notebook=str(path)),
                    timeout=20,
                    what="writer.flush_failed at the size limit",
                )
                assert failed[0]["errno"] == errno.EFBIG, failed[0]
                assert failed[0]["error"].startswith("file size limit reached"), failed[0]
                wait_for(phases.printed.exists, timeout=20, what="the cell to print everything")
                assert path.stat().st_size <= limit  # never a partial, oversized write
                read = server.call("read_cell", path="big.ipynb", index=0)
                assert not read.is_error, read.text
                assert "file size limit reached" in read.text, read.text
                assert "line 149" in read.text  # nb's copy has it all
        finally:
            resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))
        wait_for(
            lambda: events_of(server, "writer.flush_recovered", notebook=str(path)),
            timeout=30,
            what="writer.flush_recovered once the limit is lifted",
        )
        assert not watcher.problems, watcher.problems
        assert watcher.reads > 10
        finish(server, phases, job_id)
        assert not events_of(server, "error.unhandled")
    saved = valid_notebook(path)
    text = stdout_of(saved["cells"][0])
    lines = [f"line {i:03d} " + "x" * 1000 + "\n" for i in range(150)]
    assert text == "before the fault\n" + "".join(lines) + "after the fault\n"
    assert path.stat().st_size > limit
    assert not leftover_temp_files(workdir)


def test_a_read_only_folder_keeps_the_edits_and_outputs_in_memory_until_it_is_writable_again(
    tmp_path, workdir, read_only_folder
):
    folder = read_only_folder(workdir / "ro")
    phases = Phases(tmp_path)
    with McpServer(workdir, server_env(tmp_path), tmp_path / "stderr") as server:
        path = notebook(server, "ro/ro.ipynb", phases.cell(), "y = 'old'")
        job_id = start_job(server, "ro/ro.ipynb")
        wait_for_first_output(server, path)
        last_good = path.read_bytes()
        with FileWatcher(path) as watcher:
            folder.make_read_only()
            try:
                phases.fault.touch()
                failed = wait_for(
                    lambda: events_of(server, "writer.flush_failed", notebook=str(path)),
                    timeout=20,
                    what="writer.flush_failed on a read-only folder",
                )
                assert failed[0]["errno"] == errno.EROFS, failed[0]
                assert failed[0]["error"].startswith("not writable"), failed[0]
                wait_for(phases.printed.exists, timeout=20, what="the cell to print")
                listing = server.call("list_cells", path="ro/ro.ipynb")
                assert not listing.is_error, listing.text
                assert "ro.ipynb could not be written for" in listing.text, listing.text
                assert "not writable" in listing.text, listing.text
                edit = server.call("set_cell", path="ro/ro.ipynb", index=1, source="y = 'new'")
                assert edit.is_error and "could NOT be written to disk" in edit.text, edit.text
                wait_for(
                    lambda: len(events_of(server, "writer.flush_failed", notebook=str(path))) >= 3,
                    timeout=20,
                    what="the write to be retried",
                )
                assert path.read_bytes() == last_good
            finally:
                folder.make_writable()
            wait_for(
                lambda: events_of(server, "writer.flush_recovered", notebook=str(path)),
                timeout=30,
                what="writer.flush_recovered once the folder is writable",
            )
        assert not watcher.problems, watcher.problems
        assert_backoff(events_of(server, "writer.flush_failed", notebook=str(path)))
        finish(server, phases, job_id)
    saved = valid_notebook(path)
    expected = "".join(f"during {i}\n" for i in range(40))
    assert stdout_of(saved["cells"][0]) == f"before the fault\n{expected}after the fault\n"
    assert "".join(saved["cells"][1]["source"]) == "y = 'new'"
    assert not leftover_temp_files(folder.path)


def test_exec_status_of_a_running_job_tells_the_agent_its_notebook_cannot_be_written(
    tmp_path, workdir, read_only_folder
):
    folder = read_only_folder(workdir / "ro")
    phases = Phases(tmp_path)
    with McpServer(workdir, server_env(tmp_path), tmp_path / "stderr") as server:
        path = notebook(server, "ro/status.ipynb", phases.cell())
        job_id = start_job(server, "ro/status.ipynb")
        wait_for_first_output(server, path)
        folder.make_read_only()
        try:
            phases.fault.touch()
            wait_for(
                lambda: events_of(server, "writer.flush_failed", notebook=str(path)),
                timeout=20,
                what="writer.flush_failed",
            )
            status = server.call("exec_status", job_id=job_id)
            assert not status.is_error, status.text
            assert "running" in status.text, status.text
            assert "status.ipynb could not be written for" in status.text, status.text
        finally:
            folder.make_writable()
        wait_for(
            lambda: events_of(server, "writer.flush_recovered", notebook=str(path)),
            timeout=30,
            what="writer.flush_recovered",
        )
        finish(server, phases, job_id)


def test_a_notebook_replaced_by_a_folder_is_left_alone_and_stays_deleted_once_the_folder_goes(
    tmp_path, workdir
):
    phases = Phases(tmp_path)
    with McpServer(workdir, server_env(tmp_path), tmp_path / "stderr") as server:
        path = notebook(server, "dir.ipynb", phases.cell(), "z = 1")
        job_id = start_job(server, "dir.ipynb")
        wait_for_first_output(server, path)
        with FileWatcher(path, allow_missing=True, allow_directory=True) as watcher:
            path.unlink()
            path.mkdir()
            (path / "kept.txt").write_text("a person's file")
            phases.fault.touch()
            failed = wait_for(
                lambda: events_of(server, "writer.flush_failed", notebook=str(path)),
                timeout=20,
                what="writer.flush_failed with a folder at the notebook's path",
            )
            assert "is a directory" in failed[0]["error"], failed[0]
            wait_for(phases.printed.exists, timeout=20, what="the cell to print")
            listing = server.call("list_cells", path="dir.ipynb")
            assert listing.is_error and "is a directory" in listing.text, listing.text
            wait_for(
                lambda: len(events_of(server, "writer.flush_failed", notebook=str(path))) >= 3,
                timeout=20,
                what="the write to be retried",
            )
            # nb never wrote into the folder, nor replaced it
            assert path.is_dir() and [p.name for p in path.iterdir()] == ["kept.txt"]
            assert (path / "kept.txt").read_text() == "a person's file"
            assert not leftover_temp_files(workdir)
            shutil.rmtree(path)
            # Nothing is at the path now: the person removed the notebook, and it stays so.
            (deleted,) = wait_for(
                lambda: events_of(server, "notebook.deleted", notebook=str(path)),
                timeout=30,
                what="notebook.deleted once the folder is gone",
            )
            assert deleted["running_cells"] == 1
        assert not watcher.problems, watcher.problems
        reply = finish(server, phases, job_id)
        expected = "".join(f"during {i}\n" for i in range(40))
        assert "before the fault\n" + expected in reply + "\n", reply
        assert "after the fault" in reply, reply
        assert "dir.ipynb was deleted on disk" in reply, reply
        assert not path.exists()
        assert not events_of(server, "writer.flush_recovered", notebook=str(path))
        listing = server.call("list_cells", path="dir.ipynb")
        assert listing.is_error and "no notebook at" in listing.text, listing.text
    assert not path.exists()
    assert not leftover_temp_files(workdir)
