"""Merging a save with nb's document: three ways when nb knows the copy it came from, and the
rule that tells an editor's stale outputs from a person's. Pure: documents in memory."""

from __future__ import annotations

import copy

import nbformat
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.merge import merge
from nb_mcp.actors.write_memory import Verdict, WriteMemory, fingerprint


def document(*cells) -> nbformat.NotebookNode:
    doc = nb.new_notebook()
    doc.cells = list(cells)
    return doc


def code(cell_id: str, source: str, *lines: str, count: int | None = None):
    cell = nb.make_cell("code", source, cell_id=cell_id)
    if lines:
        cell.outputs = [{"output_type": "stream", "name": "stdout", "text": "".join(lines)}]
        cell.execution_count = count
    return cell


def note(cell_id: str, text: str):
    return nb.make_cell("markdown", text, cell_id=cell_id)


def written(memory: WriteMemory, doc, touched=()) -> dict:
    """nb writes `doc`; return what an editor reading the file gets."""
    memory.written(memory.stamp(doc, touched))
    return nbformat.reads(nb.serialize(doc), as_version=4)


def test_a_fingerprint_is_the_same_in_memory_and_read_back_from_the_file():
    cell = code("c", "x")
    cell.outputs = [
        {"output_type": "stream", "name": "stdout", "text": "a\nb\rc\n"},
        {
            "output_type": "display_data",
            "data": {"text/plain": "one\ntwo", "image/png": "iVBOR\n", "application/json": {}},
            "metadata": {},
        },
        {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t1", "t2"]},
    ]
    cell.execution_count = 4
    read_back = nbformat.reads(nb.serialize(document(cell)), as_version=4).cells[0]
    assert fingerprint(read_back) == fingerprint(cell)


def test_a_copy_from_before_nbs_outputs_gets_them_back_unless_the_person_edited_the_source():
    memory = WriteMemory("w")
    ours = document(code("a", "a()"), code("b", "b()"), code("c", "c()"))
    memory.loaded(ours)
    stale = written(memory, ours)
    ours.cells[0] = code("a", "a()", "A\n", count=1)
    ours.cells[1] = code("b", "b()", "B\n", count=2)
    ours.cells[2] = code("c", "c()", "C\n", count=3)
    written(memory, ours, ["a", "b", "c"])
    stale.cells[1].source = "b(edited)"
    result = merge(ours, stale, pending_ops=[], dirty=(), live=(), memory=memory)
    assert result.restored == ["a", "c"]
    assert [d.cell_id for d in result.dropped] == ["b"] and "source" in result.dropped[0].reason
    assert stale.cells[0].outputs[0]["text"] == "A\n" and stale.cells[0].execution_count == 1
    assert stale.cells[1].source == "b(edited)" and stale.cells[1].outputs == []


def test_outputs_cleared_in_a_copy_that_had_them_are_the_persons_choice():
    memory = WriteMemory("w")
    ours = document(code("a", "a()"))
    memory.loaded(ours)
    ours.cells[0] = code("a", "a()", "A\n", count=1)
    theirs = written(memory, ours, ["a"])  # the editor reloaded after nb's run
    theirs.cells[0].outputs, theirs.cells[0].execution_count = [], None
    assert memory.judge("a", ours.cells[0], theirs.cells[0], memory.base_of(theirs), False) == (
        Verdict.THEIRS
    )
    result = merge(ours, theirs, pending_ops=[], dirty=(), live=(), memory=memory)
    assert result.restored == [] and result.dropped == [] and theirs.cells[0].outputs == []


def test_a_copy_without_nbs_mark_or_from_another_process_predates_every_write():
    memory = WriteMemory("w")
    assert memory.base_of(document()) == -1
    other = document()
    other.metadata["nb"] = {"revision": "someone-else-12"}
    assert memory.base_of(other) == -1
    mine = document()
    written(memory, mine)
    assert memory.base_of(mine) == 1


def test_nbs_own_old_versions_are_recognised_by_their_markers_once_forgotten():
    memory = WriteMemory("w")
    ours = document(code("a", "a()"))
    memory.loaded(ours)
    old = copy.deepcopy(ours)
    old.cells[0].outputs = [
        nb.running_marker(1, 1, 0.0),
        {"output_type": "stream", "name": "stdout", "text": "tick 3"},
    ]
    for n in range(40):  # many streaming writes: the early versions are no longer kept
        ours.cells[0] = code("a", "a()", f"tick {n}\n", count=1)
        written(memory, ours, ["a"])
    assert memory.judge("a", ours.cells[0], old.cells[0], -1, False) == Verdict.RESTORE
    theirs_own = code("a", "a()", "run in their kernel\n", count=9)
    assert memory.judge("a", ours.cells[0], theirs_own, -1, False) == Verdict.OTHER_OUTPUTS


def test_a_three_way_merge_keeps_what_nb_changed_since_the_copy_and_what_the_person_did():
    memory = WriteMemory("w")
    ours = document(note("t", "# title"), code("a", "a()"), code("b", "b()"), code("gone", "x"))
    memory.loaded(ours)
    copy_ = written(memory, ours)  # the editor's copy
    # nb since: a cell added after a, b edited by the agent, `gone` deleted by the agent
    ours.cells.insert(2, code("new", "added_by_nb()"))
    ours.cells[3].source = "b(agent)"
    del ours.cells[4]
    written(memory, ours, ["new"])
    # the person, in the copy: edited the title, added a cell at the top, moved a to the end
    copy_.cells[0].source = "# my title"
    copy_.cells.insert(0, note("mine", "my note"))
    copy_.cells.append(copy_.cells.pop(2))
    merge(ours, copy_, pending_ops=[], dirty=(), live=(), memory=memory)
    assert [(c.id, c.source) for c in copy_.cells] == [
        ("mine", "my note"),
        ("t", "# my title"),
        ("b", "b(agent)"),
        ("a", "a()"),
        ("new", "added_by_nb()"),  # after the cell it followed in nb's document
    ]


def test_a_copy_nb_does_not_remember_is_taken_as_the_persons_whole_document():
    memory = WriteMemory("w")
    ours = document(code("a", "a()"), code("b", "b()"))
    memory.loaded(ours)
    theirs = document(code("a", "a()"))  # no mark: nothing to merge three ways with
    merge(ours, theirs, pending_ops=[], dirty=(), live=(), memory=memory)
    assert [c.id for c in theirs.cells] == ["a"]


def test_cells_of_the_copy_nb_wrote_are_kept_while_saves_still_come_from_it():
    memory = WriteMemory("w")
    ours = document(code("a", "a()"))
    memory.loaded(ours)
    copy_ = written(memory, ours)
    base = memory.base_of(copy_)
    for n in range(100):  # many writes with other cell lists, the copy's list in use
        ours.cells.append(note(f"n{n}", "x"))
        written(memory, ours)
        assert memory.snapshot(base) is not None, n
