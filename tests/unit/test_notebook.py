"""The pure document: parsing, addressing, edits and their replay by id, markers."""

from __future__ import annotations

import json

import nbformat
import pytest
from nb_mcp.actors import notebook as nb


def doc(*sources: str) -> nbformat.NotebookNode:
    notebook = nb.new_notebook()
    notebook.cells = [nb.make_cell("code", source) for source in sources]
    return notebook


def texts(notebook: nbformat.NotebookNode) -> list[str]:
    return [cell.source for cell in notebook.cells]


def test_parse_gives_ids_to_cells_without_them_and_upgrades_to_4_5():
    raw = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "source": "a",
                "outputs": [],
                "execution_count": None,
            },
            {"cell_type": "markdown", "metadata": {}, "source": ["# b\n", "c"]},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 4,
    }
    notebook, upgrade = nb.parse(json.dumps(raw))
    assert upgrade.ids_added == 2 and upgrade.from_version == "4.4"
    assert notebook.nbformat_minor == 5
    assert notebook.cells[1].source == "# b\nc"
    nbformat.validate(notebook)


def test_parse_replaces_duplicate_and_invalid_ids():
    notebook = doc("a", "b", "c")
    notebook.cells[1].id = notebook.cells[0].id
    notebook.cells[2].id = "has spaces!"
    parsed, upgrade = nb.parse(json.dumps(notebook))
    ids = nb.cell_ids(parsed)
    assert upgrade.ids_added == 2 and len(set(ids)) == 3 and ids[0] == notebook.cells[0].id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "not a Jupyter notebook"),
        ('{"cells": [], "nbformat": 3}', "nbformat 3 is not supported"),
        (
            '{"cells": [1], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
            "a cell is not a JSON object",
        ),
        ('{"cells": [], "nbformat": 4, "nbformat_minor": "x", "metadata": {}}', "nbformat_minor"),
        (
            '{"cells": [{"cell_type": "code", "source": ""}], "nbformat": 4, "nbformat_minor": 5,'
            ' "metadata": {}}',
            "not a valid notebook",
        ),
    ],
)
def test_parse_refuses_what_is_not_a_notebook_with_a_clear_message(text: str, message: str):
    with pytest.raises(nb.NotebookError, match=message):
        nb.parse(text)


def test_serialize_matches_nbformat_byte_for_byte():
    notebook = doc("x = 1\ny = 2")
    notebook.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="a\nb\n"),
        nbformat.v4.new_output("display_data", data={"text/plain": "p\nq", "image/png": "AA=="}),
    ]
    notebook.metadata["signature"] = "transient"
    expected = nbformat.writes(nbformat.from_dict(json.loads(json.dumps(notebook)))) + "\n"
    assert nb.serialize(notebook) == expected
    assert notebook.cells[0].outputs[0].text == "a\nb\n"  # the document is not changed


@pytest.mark.parametrize(("index", "expected"), [(0, 0), (2, 2), (-1, 2), (-3, 0)])
def test_locate_counts_negative_indices_from_the_end(index: int, expected: int):
    assert nb.locate(doc("a", "b", "c"), index, None) == expected


def test_locate_needs_exactly_one_of_index_and_id():
    notebook = doc("a")
    with pytest.raises(nb.NotebookError, match="not both"):
        nb.locate(notebook, 0, notebook.cells[0].id)
    with pytest.raises(nb.NotebookError, match="give index or cell_id"):
        nb.locate(notebook, None, None)
    with pytest.raises(nb.CellNotFound, match="out of range"):
        nb.locate(notebook, 1, None)


def test_an_insert_replayed_on_a_reloaded_document_goes_after_the_same_cell():
    notebook = doc("a", "b")
    op = nb.InsertCell(cell=nb.make_cell("code", "new"), index=1)
    op.apply(notebook)
    assert texts(notebook) == ["a", "new", "b"]
    reloaded = doc()
    reloaded.cells = [nb.make_cell("markdown", "added by hand"), *doc().cells]
    reloaded.cells += [notebook.cells[0], notebook.cells[2]]  # a person's version: no "new"
    assert op.replay(reloaded) is None
    assert texts(reloaded) == ["added by hand", "a", "new", "b"]


def test_set_cell_replays_by_id_after_a_person_moved_the_cell():
    notebook = doc("a", "b", "c")
    op = nb.SetCell(index=2, source="C")
    op.apply(notebook)
    moved = doc()
    moved.cells = [notebook.cells[2], notebook.cells[0], notebook.cells[1]]
    moved.cells[0] = nbformat.from_dict({**moved.cells[0], "source": "c"})
    assert op.replay(moved) is None
    assert texts(moved) == ["C", "a", "b"]


def test_an_op_whose_cell_was_deleted_by_hand_returns_a_note_instead_of_raising():
    notebook = doc("a", "b")
    op = nb.SetCell(index=0, source="A")
    op.apply(notebook)
    without = doc()
    without.cells = [notebook.cells[1]]
    note = op.replay(without)
    assert note is not None and "could not be re-applied" in note
    assert texts(without) == ["b"]


def test_delete_replayed_where_the_cell_is_already_gone_is_not_an_error():
    notebook = doc("a", "b")
    op = nb.DeleteCell(index=0)
    op.apply(notebook)
    assert op.replay(notebook) is None
    assert texts(notebook) == ["b"]


def test_move_cell_replays_relative_to_its_new_neighbour():
    notebook = doc("a", "b", "c")
    a, b, c = nb.cell_ids(notebook)
    op = nb.MoveCell(index=0, to=-1)
    assert op.apply(notebook) == 2
    assert nb.cell_ids(notebook) == [b, c, a]
    reloaded = doc("z")
    reloaded.cells += [nbformat.from_dict(cell) for cell in doc().cells]
    reloaded.cells = [reloaded.cells[0], *[nbformat.from_dict(c) for c in notebook.cells]]
    reloaded.cells = [reloaded.cells[0], reloaded.cells[3], reloaded.cells[1], reloaded.cells[2]]
    assert nb.cell_ids(reloaded)[1:] == [a, b, c]
    assert op.replay(reloaded) is None
    assert nb.cell_ids(reloaded)[1:] == [b, c, a]


def test_set_cell_changes_type_and_keeps_id_and_metadata():
    notebook = doc("x")
    notebook.cells[0].metadata["tags"] = ["keep"]
    notebook.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    cell_id = notebook.cells[0].id
    nb.SetCell(cell_id=cell_id, cell_type="markdown").apply(notebook)
    cell = notebook.cells[0]
    assert (cell.id, cell.cell_type, cell.metadata["tags"]) == (cell_id, "markdown", ["keep"])
    assert "outputs" not in cell
    nbformat.validate(notebook)


def test_markers_are_stderr_outputs_with_a_prefix_and_a_zoned_clock():
    marker = nb.done_marker(0.0, 3.21)
    assert marker.output_type == "stream" and marker.name == "stderr"
    assert marker.text.startswith("[nb mcp] ✓ Done at ")
    assert "· ran 3.2s" in marker.text
    assert nb.clock(0.0).count(":") == 2 and len(nb.clock(0.0).split()) == 2


def test_stale_running_and_queued_markers_are_replaced_and_outputs_kept():
    notebook = doc("a", "b", "c")
    kept = nbformat.v4.new_output("stream", name="stdout", text="epoch 3\n")
    notebook.cells[0].outputs = [nb.running_marker(1, 2, 0.0), kept]
    notebook.cells[1].outputs = [nb.queued_marker(2, 2, "j-00000000", 0.0)]
    notebook.cells[2].outputs = [nb.done_marker(0.0, 1.0)]
    assert nb.replace_stale_markers(notebook, 0.0) == 2
    assert "server stopped" in notebook.cells[0].outputs[0].text
    assert notebook.cells[0].outputs[1] == kept
    assert "Done" in notebook.cells[2].outputs[0].text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.04, "0.0s"), (3.25, "3.2s"), (75, "1m15s"), (3725, "1h02m05s")]
)
def test_durations_read_naturally(seconds: float, text: str):
    assert nb.format_duration(seconds) == text
