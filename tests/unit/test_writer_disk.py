"""The WriterActor and a person's files: a deleted notebook stays deleted, an editor's stale copy
gets nb's outputs back, a person's deliberate changes stand. Real files, real writes."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import Future
from pathlib import Path

import nbformat
import pytest
from nb_mcp.actors import notebook as nb

from tests.helpers import events_named, load, wait_for
from tests.unit.test_writer import stdout_of, write_notebook


def run_cell(h, cell_id: str, text: str, count: int, job_id: str = "j-00000001") -> None:
    """What a job does to the writer for one cell that prints `text` and ends."""
    h.writer.cell_started(cell_id, 1, 1, time.time(), [], job_id).get()
    h.stream(cell_id, text)
    h.writer.cell_finished(cell_id, nb.done_marker(time.time(), 0.1), count, job_id).get()
    h.writer.flush().get()


def save_copy(path: Path, data: bytes) -> None:
    """An editor saving: its bytes to a temp file, renamed over the notebook."""
    temp = path.with_name(f".~{path.name}")
    temp.write_bytes(data)
    os.replace(temp, path)


# ---------------------------------------------------------------- a deleted notebook


def test_a_deleted_notebook_is_not_written_again_and_reads_say_there_is_no_notebook(
    harness, tmp_path
):
    path = tmp_path / "n.ipynb"
    (cell,) = write_notebook(path, "secret = 'hunter2'")
    h = harness(path)
    h.writer.open().get()
    h.writer.cell_started(cell, 1, 1, time.time(), [], "j-00000001").get()
    h.stream(cell, "epoch 1\n")
    h.writer.flush().get()
    path.unlink()
    h.stream(cell, "epoch 2\n")
    h.writer.flush().get()  # nb finds the file gone while the cell runs
    run: Future = Future()  # where the job keeps this run's outputs
    h.writer.cell_finished(cell, nb.done_marker(time.time(), 1.0), 3, "j-00000001", True, run).get()
    h.writer.flush().get()
    assert not path.exists()
    with pytest.raises(nb.NotebookError, match="no notebook at"):
        h.writer.query(lambda doc: len(doc.cells)).get()
    assert not path.exists()
    # The job reads on from nb's copy, and its reply has every output.
    assert h.writer.query(lambda doc: len(doc.cells), deleted_ok=True).get() == 1
    (outputs,) = h.writer.outputs_of_cells([cell], {cell: run}).get()
    assert outputs.outputs[0]["text"] == "epoch 1\nepoch 2\n" and outputs.execution_count == 3
    notices = h.writer.take_notices().get()
    assert any("n.ipynb was deleted on disk; nb will not write it again" in n for n in notices)
    (deleted,) = wait_for(lambda: events_named(h.events(), "notebook.deleted"), what="the event")
    assert deleted["running_cells"] == 1
    h.root.stop()  # stopping flushes what is pending: still nothing
    assert not path.exists()


def test_an_edit_on_a_deleted_notebook_creates_a_new_one_without_the_old_cells(harness, tmp_path):
    path = tmp_path / "n.ipynb"
    h = harness(path)
    for source in ("token = 'old secret'", "b = 2"):
        h.writer.edit(nb.InsertCell(cell=nb.make_cell("code", source)), create=True).get()
    assert len(load(path)["cells"]) == 2
    path.unlink()
    with pytest.raises(nb.NotebookError, match="index 5 is out of range"):
        h.writer.edit(nb.InsertCell(cell=nb.make_cell("code", "x"), index=5), create=True).get()
    assert not path.exists()  # a refused edit creates nothing
    result = h.writer.edit(nb.InsertCell(cell=nb.make_cell("code", "new = 1")), create=True).get()
    assert result.created and result.written and result.index == 0
    assert ["".join(cell["source"]) for cell in load(path)["cells"]] == ["new = 1"]
    assert "old secret" not in path.read_text()
    notices = h.writer.take_notices().get()
    assert notices == [
        "n.ipynb had been deleted on disk; nb created a new notebook (nothing of the deleted "
        "one is brought back)"
    ]


def test_a_notebook_deleted_and_created_again_by_hand_is_read_afresh(harness, tmp_path):
    path = tmp_path / "n.ipynb"
    running, queued = write_notebook(path, "train()", "evaluate()")
    h = harness(path, flush_interval=0.05)
    h.writer.open().get()
    h.writer.cell_started(running, 1, 2, time.time(), [queued], "j-00000001").get()
    h.stream(running, "epoch 1\n")
    h.writer.flush().get()
    kept_copy = path.read_bytes()  # what the person's editor still shows
    path.unlink()
    h.stream(running, "epoch 2\n")
    h.writer.flush().get()
    assert not path.exists()
    other = nbformat.v4.new_notebook()
    other.cells = [nbformat.v4.new_markdown_cell("# a different notebook")]
    nbformat.write(other, path)
    assert h.writer.query(lambda doc: [c["source"] for c in doc.cells]).get() == [
        "# a different notebook"
    ]
    assert "created again on disk" in " ".join(h.writer.take_notices().get())
    # The editor saves its copy of the deleted one: its Running and Queued markers are nb's
    # own (the job still runs), not stale ones from a server that stopped.
    save_copy(path, kept_copy)
    h.stream(running, "epoch 3\n")
    h.writer.flush().get()
    cells = load(path)["cells"]
    assert "▶ Running" in "".join(cells[0]["outputs"][0]["text"])
    assert "⏳ Queued" in "".join(cells[1]["outputs"][0]["text"])
    assert stdout_of(path, running).endswith("epoch 3\n")
    assert not events_named(h.events(), "notebook.stale_markers_replaced")


# ---------------------------------------------------------------- an editor's stale copy


def test_outputs_an_editors_stale_copy_took_away_are_put_back_and_reported(harness, tmp_path):
    path = tmp_path / "n.ipynb"
    first, second, edited = write_notebook(path, "a()", "b()", "c()")
    h = harness(path)
    h.writer.open().get()
    stale = nbformat.read(path, as_version=4)  # loaded before the run, kept open
    run_cell(h, first, "A\n", 1)
    run_cell(h, second, "B\n", 2)
    run_cell(h, edited, "C\n", 3)
    stale.cells[2].source = "c(fixed=True)"  # the person's one change in that editor
    save_copy(path, nbformat.writes(stale).encode())
    h.writer.query(len).get()  # nb looks at the file
    h.writer.flush().get()
    assert stdout_of(path, first) == "A\n" and stdout_of(path, second) == "B\n"
    cells = load(path)["cells"]
    assert [c["execution_count"] for c in cells] == [1, 2, None]
    assert "".join(cells[2]["source"]) == "c(fixed=True)" and cells[2]["outputs"] == []
    notices = h.writer.take_notices().get()
    assert any(f"put back the outputs of cells {first}, {second}" in n for n in notices), notices
    assert any(f"cell {edited}: its source was edited" in n for n in notices), notices
    (merged,) = wait_for(
        lambda: events_named(h.events(), "writer.external_change_merged"), what="the merge event"
    )
    assert merged["restored"] == 2 and merged["dropped"] == 1
    (dropped,) = wait_for(
        lambda: events_named(h.events(), "writer.output_dropped"), what="the dropped event"
    )
    assert dropped["cell_id"] == edited and "source was edited" in dropped["reason"]
    # The same stale save again: the outputs go back again, the edited cell stays the person's
    # (and is not reported twice: it is the person's version now).
    save_copy(path, nbformat.writes(stale).encode())
    h.writer.query(len).get()
    h.writer.flush().get()
    assert stdout_of(path, first) == "A\n" and stdout_of(path, edited) == ""
    notices = h.writer.take_notices().get()
    assert any(f"put back the outputs of cells {first}, {second}" in n for n in notices), notices
    assert not any("source was edited" in n for n in notices), notices


def test_outputs_a_person_cleared_in_an_up_to_date_editor_stay_cleared(harness, tmp_path):
    path = tmp_path / "n.ipynb"
    cleared, kept = write_notebook(path, "a()", "b()")
    h = harness(path)
    h.writer.open().get()
    run_cell(h, cleared, "A\n", 1)
    run_cell(h, kept, "B\n", 2)
    mine = nbformat.read(path, as_version=4)  # an editor that has nb's outputs
    mine.cells[0].outputs, mine.cells[0].execution_count = [], None
    save_copy(path, nbformat.writes(mine).encode())
    h.writer.query(len).get()
    run_cell(h, kept, "B again\n", 3)  # nb writes again: the cleared cell stays cleared
    assert stdout_of(path, cleared) == "" and load(path)["cells"][0]["execution_count"] is None
    assert stdout_of(path, kept) == "B again\n"
    assert not any("put back" in n for n in h.writer.take_notices().get())
    assert not events_named(h.events(), "writer.output_dropped")


def test_outputs_a_person_made_in_their_own_kernel_in_a_stale_editor_stand(harness, tmp_path):
    path = tmp_path / "n.ipynb"
    (cell,) = write_notebook(path, "a()")
    h = harness(path)
    h.writer.open().get()
    stale = nbformat.read(path, as_version=4)
    run_cell(h, cell, "nb's run\n", 1)
    stale.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="theirs\n")]
    stale.cells[0].execution_count = 7
    save_copy(path, nbformat.writes(stale).encode())
    h.writer.query(len).get()
    h.writer.flush().get()
    assert stdout_of(path, cell) == "theirs\n"
    assert any("has other outputs for it" in n for n in h.writer.take_notices().get())


def test_a_stale_save_after_the_job_is_repaired_without_any_call(harness, tmp_path):
    path = tmp_path / "n.ipynb"
    (cell,) = write_notebook(path, "a()")
    h = harness(path)
    h.writer.open().get()
    stale = path.read_bytes()
    run_cell(h, cell, "A\n", 1)
    save_copy(path, stale)  # nb has nothing left to write; it still looks now and then
    wait_for(lambda: stdout_of(path, cell) == "A\n", timeout=10, what="the outputs back on disk")


def test_a_save_made_from_nbs_version_shown_for_a_moment_keeps_the_save_it_displaced(
    harness, tmp_path, monkeypatch
):
    # The instant an editor's save lands between nb's look and its swap, nb's version stands at
    # the path until nb swaps the save back; an editor that re-reads just then saves on top of
    # nb's version. Made for real: the save lands inside atomic.replace, the re-read with it.
    from nb_mcp.actors import atomic

    path = tmp_path / "n.ipynb"
    (cell,) = write_notebook(path, "train()")
    h = harness(path)
    h.writer.open().get()
    h.writer.cell_started(cell, 1, 1, time.time(), [], "j-00000001").get()
    h.writer.flush().get()
    person = nbformat.read(path, as_version=4)
    person.cells.insert(0, nbformat.v4.new_markdown_cell("first save"))
    shown: list[bytes] = []
    real_identity_at = atomic._identity_at
    calls = {"n": 0}

    def save_between_look_and_swap(name, buffer):
        found = real_identity_at(name, buffer)
        calls["n"] += 1
        if calls["n"] == 1:  # nb's look at the path: the person saves right after it
            nbformat.write(person, path.with_name(".~n.ipynb"))
            os.replace(path.with_name(".~n.ipynb"), path)
        elif calls["n"] == 2:  # nb's look at what it displaced: the editor re-reads now
            shown.append(path.read_bytes())
        return found

    monkeypatch.setattr(atomic, "_identity_at", save_between_look_and_swap)
    h.stream(cell, "epoch 1\n")
    h.writer.flush().get()
    monkeypatch.setattr(atomic, "_identity_at", real_identity_at)
    assert b"first save" not in shown[0]  # the editor read nb's version
    assert "first save" in path.read_text()
    second = nbformat.reads(shown[0].decode(), as_version=4)
    second.cells.insert(0, nbformat.v4.new_markdown_cell("second save"))
    save_copy(path, nbformat.writes(second).encode())
    h.stream(cell, "epoch 2\n")
    h.writer.flush().get()
    sources = ["".join(c["source"]) for c in load(path)["cells"]]
    assert sources == ["second save", "first save", "train()"]
    assert stdout_of(path, cell) == "epoch 1\nepoch 2\n"
    revision = json.loads(path.read_text())["metadata"]["nb"]["revision"]
    assert revision.split("-")[-1].isdigit()
