"""The WriterActor with real files: atomic writes, coalescing, merging a person's edits by id."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future
from pathlib import Path

import nbformat
from nb_mcp.actors import notebook as nb

from tests.helpers import events_named, load, wait_for


def write_notebook(path: Path, *sources: str) -> list[str]:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(notebook, path)
    return [cell.id for cell in notebook.cells]


def stdout_of(path: Path, cell_id: str) -> str:
    for cell in load(path)["cells"]:
        if cell["id"] == cell_id:
            return "".join(
                "".join(o["text"])
                for o in cell["outputs"]
                if o["output_type"] == "stream" and o["name"] == "stdout"
            )
    raise AssertionError(f"no cell {cell_id}")


def test_streamed_output_is_coalesced_to_a_few_writes_per_second(harness, tmp_path: Path):
    path = tmp_path / "n.ipynb"
    (cell,) = write_notebook(path, "for i in range(...)")
    h = harness(path, flush_interval=0.2)
    h.writer.open().get()
    h.writer.cell_started(cell, 1, 1, time.time()).get()
    before = h.writer.stats().get().writes
    started = time.monotonic()
    for n in range(2000):
        h.stream(cell, f"line {n}\n")
        if n % 200 == 0:  # keep the stream going for about a second
            time.sleep(0.1)
    h.writer.cell_finished(cell, nb.done_marker(time.time(), 1.0)).get()
    elapsed = time.monotonic() - started
    writes = h.writer.stats().get().writes - before
    assert writes <= 5 * elapsed + 2, (writes, elapsed)
    assert writes >= 2  # it did write while streaming, not only at the end
    text = stdout_of(path, cell)
    assert text == "".join(f"line {n}\n" for n in range(2000))


def test_the_running_marker_is_pinned_on_top_and_replaced_by_the_footer(harness, tmp_path):
    path = tmp_path / "n.ipynb"
    (cell,) = write_notebook(path, "train()")
    h = harness(path)
    h.writer.open().get()
    h.writer.cell_started(cell, 2, 5, time.time()).get()
    h.writer.flush().get()
    outputs = load(path)["cells"][0]["outputs"]
    assert len(outputs) == 1 and "▶ Running (2/5, started" in "".join(outputs[0]["text"])
    h.stream(cell, "epoch 1\n")
    wait_for(lambda: "epoch 1" in stdout_of(path, cell), what="streamed output on disk")
    outputs = load(path)["cells"][0]["outputs"]
    assert "▶ Running" in "".join(outputs[0]["text"])
    h.writer.cell_finished(cell, nb.done_marker(time.time(), 2.5), 7).get()
    h.writer.flush().get()
    saved = load(path)["cells"][0]
    assert saved["execution_count"] == 7
    assert [o["name"] for o in saved["outputs"]] == ["stdout", "stderr"]
    assert "✓ Done at" in "".join(saved["outputs"][-1]["text"])


def test_a_person_editing_the_file_while_output_streams_keeps_both(harness, tmp_path):
    path = tmp_path / "n.ipynb"
    first, running, last = write_notebook(path, "a = 1", "train()", "c = 3")
    h = harness(path, flush_interval=0.2)
    h.writer.open().get()
    h.writer.cell_started(running, 1, 1, time.time()).get()
    h.writer.flush().get()
    h.stream(running, "epoch 1\n")
    wait_for(lambda: "epoch 1" in stdout_of(path, running), what="first output on disk")
    by_hand = nbformat.read(path, as_version=4)
    by_hand.cells.insert(0, nbformat.v4.new_markdown_cell("# Notes added by hand"))
    by_hand.cells[3].source = "c = 30  # edited by hand"
    by_hand.cells[1], by_hand.cells[2] = (
        by_hand.cells[2],
        by_hand.cells[1],
    )  # moved the running cell
    nbformat.write(by_hand, path)
    h.stream(running, "epoch 2\n")
    h.writer.cell_finished(running, nb.done_marker(time.time(), 1.0)).get()
    h.writer.flush().get()
    saved = load(path)
    assert [cell["id"] for cell in saved["cells"]][1:] == [running, first, last]
    assert "".join(saved["cells"][0]["source"]) == "# Notes added by hand"
    assert "".join(saved["cells"][3]["source"]) == "c = 30  # edited by hand"
    assert stdout_of(path, running) == "epoch 1\nepoch 2\n"
    wait_for(
        lambda: events_named(h.events(), "writer.external_change_merged"),
        what="writer.external_change_merged",
    )


def test_deleting_the_running_cell_by_hand_drops_its_output_with_an_event_not_a_crash(
    harness, tmp_path
):
    path = tmp_path / "n.ipynb"
    keep, running = write_notebook(path, "keep = 1", "train()")
    h = harness(path)
    h.writer.open().get()
    h.writer.cell_started(running, 1, 1, time.time()).get()
    h.writer.flush().get()
    by_hand = nbformat.read(path, as_version=4)
    del by_hand.cells[1]
    nbformat.write(by_hand, path)
    h.stream(running, "epoch 1\n")
    run: Future = Future()  # where the job keeps this run's outputs
    h.writer.cell_finished(running, nb.done_marker(time.time(), 1.0), None, "j-1", True, run).get()
    h.writer.flush().get()
    assert [cell["id"] for cell in load(path)["cells"]] == [keep]
    (outputs,) = h.writer.outputs_of_cells([running], {running: run}).get()
    assert outputs.index is None and outputs.outputs[0]["text"] == "epoch 1\n"
    notices = h.writer.take_notices().get()
    assert any("deleted from the file while it ran" in notice for notice in notices), notices
    dropped = wait_for(
        lambda: events_named(h.events(), "writer.output_dropped"), what="writer.output_dropped"
    )
    assert dropped[0]["cell_id"] == running
    assert h.writer.stats().get().writes > 0  # still alive and writing


def test_a_half_saved_file_is_never_overwritten_and_is_merged_once_valid(harness, tmp_path):
    path = tmp_path / "n.ipynb"
    (cell,) = write_notebook(path, "train()")
    h = harness(path, flush_interval=0.05)
    h.writer.open().get()
    h.writer.cell_started(cell, 1, 1, time.time()).get()
    h.writer.flush().get()
    good = path.read_text()
    path.write_text(good[: len(good) // 2])  # an editor in the middle of saving
    h.stream(cell, "epoch 1\n")
    wait_for(lambda: h.writer.stats().get().failed_writes > 0, what="a refused write")
    assert path.read_text() == good[: len(good) // 2]
    assert any("not a valid notebook" in n for n in h.writer.take_notices().get())
    path.write_text(good)
    wait_for(lambda: "epoch 1" in stdout_of(path, cell), timeout=15, what="the retried write")
    wait_for(
        lambda: events_named(h.events(), "writer.flush_recovered"), what="writer.flush_recovered"
    )


def test_an_edit_that_could_not_be_written_is_replayed_on_the_persons_version(
    harness, tmp_path, read_only_folder
):
    folder = read_only_folder(tmp_path / "ro")
    path = folder.path / "n.ipynb"
    _, second = write_notebook(path, "a = 1", "b = 2")
    h = harness(path)
    h.writer.open().get()
    folder.make_read_only()
    result = h.writer.edit(nb.SetCell(cell_id=second, source="b = 200")).get()
    assert not result.written and "not writable" in (result.write_error or "")
    assert "".join(load(path)["cells"][1]["source"]) == "b = 2"
    folder.make_writable()
    by_hand = nbformat.read(path, as_version=4)
    by_hand.cells.insert(1, nbformat.v4.new_markdown_cell("# between, by hand"))
    nbformat.write(by_hand, path)
    wait_for(lambda: "b = 200" in path.read_text(), timeout=15, what="the retried edit")
    sources = ["".join(cell["source"]) for cell in load(path)["cells"]]
    assert sources == ["a = 1", "# between, by hand", "b = 200"]
    assert json.loads(path.read_text())["nbformat_minor"] == 5


def test_the_cells_queued_behind_a_running_one_are_numbered_within_their_job(harness, tmp_path):
    path = tmp_path / "n.ipynb"
    first, second, third = write_notebook(path, "a", "b", "c")
    h = harness(path)
    h.writer.open().get()
    h.writer.cell_started(first, 1, 3, time.time(), [second, third], "j-0000abcd").get()
    h.writer.flush().get()
    markers = ["".join(cell["outputs"][0]["text"]) for cell in load(path)["cells"]]
    assert "▶ Running (1/3," in markers[0]
    assert "⏳ Queued (2/3, job j-0000abcd" in markers[1]
    assert "⏳ Queued (3/3, job j-0000abcd" in markers[2]


def test_a_running_cell_turned_into_markdown_by_hand_keeps_the_file_a_valid_notebook(
    harness, tmp_path
):
    path = tmp_path / "n.ipynb"
    (cell,) = write_notebook(path, "train()")
    h = harness(path)
    h.writer.open().get()
    h.writer.cell_started(cell, 1, 1, time.time()).get()
    h.stream(cell, "epoch 1\n")
    h.writer.flush().get()
    by_hand = nbformat.read(path, as_version=4)
    by_hand.cells[0] = nbformat.v4.new_markdown_cell("# notes", id=cell)
    nbformat.write(by_hand, path)
    h.stream(cell, "epoch 2\n")
    h.writer.cell_finished(cell, nb.done_marker(time.time(), 1.0), 1, "j-1").get()
    h.writer.flush().get()
    saved = nbformat.read(path, as_version=4)
    nbformat.validate(saved)
    assert saved.cells[0].cell_type == "markdown" and saved.cells[0].source == "# notes"
    (dropped,) = wait_for(
        lambda: events_named(h.events(), "writer.output_dropped"), what="writer.output_dropped"
    )
    assert "markdown" in dropped["reason"]
    notices = h.writer.take_notices().get()
    assert any(f"cell {cell} became a markdown or raw cell" in n for n in notices), notices


def test_clearing_a_running_cells_outputs_clears_what_it_printed_so_far(harness, tmp_path):
    path = tmp_path / "n.ipynb"
    (cell,) = write_notebook(path, "train()")
    h = harness(path)
    h.writer.open().get()
    h.writer.cell_started(cell, 1, 1, time.time()).get()
    h.stream(cell, "before clear\n")
    h.writer.flush().get()
    assert stdout_of(path, cell) == "before clear\n"
    h.writer.edit(nb.ClearOutputs(cell_id=cell)).get()
    assert "before clear" not in stdout_of(path, cell)
    h.stream(cell, "after clear\n")
    h.writer.cell_finished(cell, nb.done_marker(time.time(), 1.0), 1, "j-1").get()
    h.writer.flush().get()
    assert stdout_of(path, cell) == "after clear\n"
