"""A person's files are theirs: a notebook deleted by hand stays deleted, and an editor that
keeps saving a copy from before a run does not silently wipe the run's outputs.

Made for real against a spawned `nb mcp`: the file removed with unlink (as `rm` does), the
stale editor a thread that renames its old copy over the notebook every 0.3 s.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import nbformat

from tests.faults.writer_support import (
    cell_by_id,
    events_of,
    job_id_of,
    leftover_temp_files,
    markers_of,
    stdout_of,
    valid_notebook,
)
from tests.helpers import McpServer, gate, notebook, server_env, wait_for


def test_a_notebook_deleted_by_hand_stays_deleted_and_the_next_insert_starts_a_new_one(
    server, workdir
):
    path = workdir / "x.ipynb"
    for source in ("api_key = 'sk-do-not-leak'", "b = 2"):
        reply = server.call("insert_cell", path="x.ipynb", cell_type="code", source=source)
        assert not reply.is_error, reply.text
    assert "it has 2 cells now" in reply.text, reply.text
    path.unlink()
    for tool, arguments in (
        ("list_cells", {}),
        ("read_cell", {"index": 0}),
        ("exec_cell", {"index": 0}),
        ("set_cell", {"index": 0, "source": "c = 3"}),
    ):
        refused = server.call(tool, path="x.ipynb", **arguments)
        assert refused.is_error and "no notebook at" in refused.text, (tool, refused.text)
        assert not path.exists(), tool
    reply = server.call("insert_cell", path="x.ipynb", cell_type="code", source="fresh = 1")
    assert not reply.is_error, reply.text
    assert "it has 1 cell now" in reply.text, reply.text
    assert "x.ipynb had been deleted on disk; nb created a new notebook" in reply.text, reply.text
    saved = valid_notebook(path)
    assert ["".join(cell["source"]) for cell in saved["cells"]] == ["fresh = 1"]
    assert "sk-do-not-leak" not in path.read_text()
    (deleted,) = events_of(server, "notebook.deleted", notebook=str(path))
    assert deleted["running_cells"] == 0


def test_a_job_on_a_notebook_deleted_by_hand_finishes_with_its_outputs_and_no_file(
    tmp_path, workdir
):
    flag = tmp_path / "go.flag"
    with McpServer(workdir, server_env(tmp_path), tmp_path / "stderr") as server:
        path = notebook(
            server,
            "gone.ipynb",
            gate(flag, before="print('before', flush=True)", after="print('after')"),
            "print('second cell ran')",
        )
        reply = server.call("exec_all", path="gone.ipynb", block_for=0)
        assert not reply.is_error, reply.text
        job_id = job_id_of(reply.text)
        wait_for(lambda: "before" in stdout_of(valid_notebook(path)["cells"][0]), timeout=30)
        path.unlink()
        # nb keeps looking at the file after writing outputs, even while the cell is silent.
        (deleted,) = wait_for(
            lambda: events_of(server, "notebook.deleted", notebook=str(path)),
            timeout=15,
            what="notebook.deleted",
        )
        assert deleted["running_cells"] == 1
        status = server.call("exec_status", job_id=job_id)
        assert not status.is_error, status.text
        assert "gone.ipynb was deleted on disk; nb will not write it again" in status.text
        assert "the running job's outputs are kept for its reply" in status.text, status.text
        flag.touch()
        done = server.call("exec_status", job_id=job_id, block_for=25)
        assert not done.is_error and ": ok" in done.text, done.text
        for printed in ("before", "after", "second cell ran"):
            assert printed in done.text, done.text
        assert not path.exists()
        listing = server.call("list_cells", path="gone.ipynb")
        assert listing.is_error and "no notebook at" in listing.text, listing.text
    assert not path.exists()  # not on the server's way out either
    assert not leftover_temp_files(workdir)
    assert [e["status"] for e in events_of(server, "job.finished", job_id=job_id)] == ["ok"]


class StaleEditor:
    """An editor that loaded the notebook before a run and saves that copy every 0.3 s."""

    def __init__(self, path: Path, copy: bytes) -> None:
        self.path = path
        self.copy = copy
        self.saves = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="stale-editor")

    def start(self) -> StaleEditor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        temp = self.path.with_name(f".~{self.path.name}")
        while not self._stop.wait(0.3):
            temp.write_bytes(self.copy)
            os.replace(temp, self.path)
            self.saves += 1


def test_an_editor_saving_a_copy_from_before_exec_all_does_not_wipe_its_outputs(tmp_path, workdir):
    with McpServer(workdir, server_env(tmp_path), tmp_path / "stderr") as server:
        path = notebook(
            server,
            "stale.ipynb",
            "print('one')",
            "import time\ntime.sleep(1.5)\nprint('two')",
            "print('three')",
        )
        ids = [cell["id"] for cell in valid_notebook(path)["cells"]]
        copy = nbformat.read(path, as_version=4)  # the editor's copy, from before the run
        copy.cells[0].source = "print('one, edited in the stale editor')"
        started = server.call("exec_all", path="stale.ipynb", block_for=0)
        assert not started.is_error, started.text
        job_id = job_id_of(started.text)
        wait_for(lambda: stdout_of(cell_by_id(path, ids[0]) or {}) == "one\n", timeout=30)
        editor = StaleEditor(path, nbformat.writes(copy).encode()).start()
        try:
            reply = server.call("exec_status", job_id=job_id, block_for=25)
            assert not reply.is_error and ": ok" in reply.text, reply.text
            after_job = editor.saves
            wait_for(lambda: editor.saves >= after_job + 3, what="three saves after the job")
        finally:
            editor.stop()
        assert editor.saves >= 6

        def repaired() -> bool:
            return [stdout_of(cell_by_id(path, cell_id) or {}) for cell_id in ids[1:]] == [
                "two\n",
                "three\n",
            ]

        wait_for(repaired, timeout=10, what="the run's outputs back on disk, with no call")
        saved = valid_notebook(path)
        for cell, count in zip(saved["cells"][1:], (2, 3), strict=True):
            assert cell["execution_count"] == count, cell
            assert "✓ Done" in markers_of(cell)[-1], cell
        # The cell whose source the person edited keeps the person's version, outputs too.
        edited = saved["cells"][0]
        assert "".join(edited["source"]) == "print('one, edited in the stale editor')"
        assert edited["outputs"] == [] and edited["execution_count"] is None
        listing = server.call("list_cells", path="stale.ipynb")
        assert not listing.is_error, listing.text
        notices = reply.text + "\n" + listing.text
        assert "stale.ipynb was overwritten with a copy older than nb's outputs" in notices
        assert f"cell {ids[0]}: its source was edited in a copy saved over the file" in notices
        assert "one\n" in reply.text  # the job's reply still has that cell's outputs
        dropped = events_of(server, "writer.output_dropped", notebook=str(path))
        assert [e["cell_id"] for e in dropped] == [ids[0]], dropped
        merged = events_of(server, "writer.external_change_merged", notebook=str(path))
        assert sum(e["restored"] for e in merged) >= 2, merged
        assert valid_notebook(path) == saved  # repaired once, and left alone since
