"""A save someone else made, merged with nb's document by cell id. Pure: no I/O, no events.

The save is the base: a cell a person added, moved, edited or deleted stays as they left it.
On top of it go nb's changes that the file does not have:
- when the save was made from a copy of one of nb's last writes, everything nb changed since
  that copy (cells added, deleted or edited by nb, a save nb merged meanwhile): a three-way
  merge with that write as the common ancestor;
- edits not written yet (replayed by id), the outputs of running cells, outputs not written;
- outputs nb wrote that the save lacks, judged by `WriteMemory`: put back when the save was
  made from a copy older than them, left as saved when the person changed them (and reported
  when nb's could not go back: see write_memory for the rule).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from nb_mcp.actors import notebook as nb
from nb_mcp.actors.write_memory import Snapshot, Verdict, WriteMemory, content_of
from nbformat import NotebookNode


@dataclass(frozen=True)
class Dropped:
    """nb's outputs for a cell that the merged document does not hold."""

    cell_id: str
    reason: str  # for the event
    outputs: list[Any]
    gone: bool  # the cell was deleted or is no longer code (else: the person's version stood)
    retyped: bool = False


@dataclass
class Merged:
    doc: NotebookNode
    reapplied: int = 0  # pending edits and unwritten outputs that went back in
    restored: list[str] = field(default_factory=list)  # cells whose written outputs went back
    op_notes: list[tuple[str, str]] = field(default_factory=list)  # (cell id, note)
    dropped: list[Dropped] = field(default_factory=list)


def merge(
    ours: NotebookNode,
    theirs: NotebookNode,
    *,
    pending_ops: Sequence[nb.Op],
    dirty: Collection[str],
    live: Collection[str],
    memory: WriteMemory,
) -> Merged:
    """Merge `theirs` (read from the file; changed in place) with `ours`; `memory` learns."""
    merged = Merged(theirs)
    base = memory.base_of(theirs)
    ancestor = memory.snapshot(base)
    if ancestor is not None:
        _three_way(theirs, ours, ancestor)
    for op in pending_ops:
        note = op.replay(theirs)
        if note is None:
            merged.reapplied += 1
        else:
            merged.op_notes.append((getattr(op, "cell_id", None) or "-", note))
    for cell in ours.cells:
        if cell["cell_type"] == "code":
            _merge_cell(merged, cell, theirs, base, dirty, live, memory)
    for cell in theirs.cells:
        if cell["cell_type"] == "code" and nb.cell_by_id(ours, cell["id"]) is None:
            memory.adopt(cell["id"], cell)  # added by the person
    memory.keep_only(nb.cell_ids(theirs))
    return merged


def _merge_cell(
    merged: Merged,
    ours: NotebookNode,
    theirs_doc: NotebookNode,
    base: int,
    dirty: Collection[str],
    live: Collection[str],
    memory: WriteMemory,
) -> None:
    cell_id = ours["id"]
    theirs = nb.cell_by_id(theirs_doc, cell_id)
    running, unwritten = cell_id in live, cell_id in dirty
    if theirs is None or theirs["cell_type"] != "code":
        if unwritten and not running:  # a running cell is reported by the writer, once
            merged.dropped.append(
                Dropped(
                    cell_id,
                    "the cell was deleted on disk"
                    if theirs is None
                    else "the cell was changed to a markdown or raw cell on disk",
                    ours.get("outputs", []),
                    gone=True,
                    retyped=theirs is not None,
                )
            )
        return
    if running:
        _put_back(ours, theirs)
        merged.reapplied += 1
        return
    verdict = memory.judge(cell_id, ours, theirs, base, unwritten)
    if verdict is Verdict.SAME:
        return
    if verdict is Verdict.RESTORE:
        _put_back(ours, theirs)
        if unwritten:
            merged.reapplied += 1
        else:
            merged.restored.append(cell_id)
        return
    memory.adopt(cell_id, theirs)
    if verdict is Verdict.THEIRS:
        return
    reason = (
        "its source was edited in a copy saved over the file, so nb's outputs (for the old "
        "source) were not put back"
        if verdict is Verdict.SOURCE_EDITED
        else "a copy saved over the file has other outputs for it, so nb's were not put back"
    )
    merged.dropped.append(Dropped(cell_id, reason, ours.get("outputs", []), gone=False))


def _three_way(theirs: NotebookNode, ours: NotebookNode, ancestor: Snapshot) -> None:
    """Cells: what nb changed since the copy the save was made from goes on top of it.

    A cell the person left as it was in the copy takes nb's version (nb edited it since) or
    goes (nb deleted it since); a cell nb has that the copy never had comes in, next to its
    neighbour in nb's document. The person's order and changes stand.
    """
    was = {cell_id: (kind, source) for cell_id, kind, source in ancestor.cells}
    mine = {cell["id"]: cell for cell in ours.cells}
    cells: list[NotebookNode] = []
    for cell in theirs.cells:
        cell_id, kind, source = content_of(cell)
        untouched = was.get(cell_id) == (kind, source)
        our_cell = mine.get(cell_id)
        if untouched and our_cell is None:
            continue  # deleted by nb since
        if untouched and content_of(our_cell)[1:] != (kind, source):
            cell = _with_content(cell, our_cell)  # edited by nb since
        cells.append(cell)
    present = {cell["id"] for cell in cells}
    for position, cell in enumerate(ours.cells):
        if cell["id"] in present or cell["id"] in was:
            continue  # in the save already, or deleted by the person
        cells.insert(_place_of(ours.cells, position, cells, present), cell)
        present.add(cell["id"])
    theirs.cells = cells


def _place_of(
    ours: list[NotebookNode], position: int, cells: list[NotebookNode], present: set[str]
) -> int:
    """Where a cell of ours goes among `cells`: right after the cell before it in ours (cells
    the person added at that spot come after it: theirs are newer); a cell that had none
    before it goes before the cell after it (a person adding at the top adds above it)."""
    ids = [cell["id"] for cell in cells]
    before = next((c["id"] for c in reversed(ours[:position]) if c["id"] in present), None)
    if before is not None:
        return ids.index(before) + 1
    after = next((c["id"] for c in ours[position + 1 :] if c["id"] in present), None)
    return len(cells) if after is None else ids.index(after)


def _with_content(theirs: NotebookNode, ours: NotebookNode) -> NotebookNode:
    if theirs["cell_type"] != ours["cell_type"]:
        return ours  # retyped by nb: its cell (a code cell's outputs are judged after)
    theirs["source"] = ours["source"]
    return theirs


def _put_back(ours: NotebookNode, theirs: NotebookNode) -> None:
    # The list itself, not a copy: the output builder keeps finding a running cell's outputs.
    theirs["outputs"] = ours["outputs"]
    theirs["execution_count"] = ours.get("execution_count")
