"""Edits of the in-memory notebook, as small op objects. Pure: no I/O.

The WriterActor applies an op to its document and keeps it until the file is written; if the
file changed on disk meanwhile, it reloads and replays the pending ops on the reloaded
document, by cell id. So every op resolves its target once, on first application, to ids (a
cell id, the id of the cell it goes after), never to an index that a person's edit could shift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nb_mcp.actors.notebook_doc import (
    CELL_TYPES,
    CellNotFound,
    NotebookError,
    _normalize_index,
    index_of,
    insertion_point,
    locate,
)
from nbformat import NotebookNode
from nbformat.v4.nbbase import new_code_cell, new_markdown_cell, new_raw_cell


def make_cell(cell_type: str, source: str, cell_id: str | None = None) -> NotebookNode:
    if cell_type not in CELL_TYPES:
        raise NotebookError(f"cell_type must be one of {', '.join(CELL_TYPES)}, not {cell_type!r}")
    maker = {"code": new_code_cell, "markdown": new_markdown_cell, "raw": new_raw_cell}[cell_type]
    cell = maker(source=source)
    if cell_id is not None:
        cell["id"] = cell_id
    return cell


class Op:
    """An edit that can be applied once, then replayed by id on a reloaded document."""

    name = "edit"

    @property
    def subject_id(self) -> str | None:
        """The id of the cell the op acted on (known once applied)."""
        return None

    def apply(self, notebook: NotebookNode) -> int:
        """Apply the edit; return the affected cell's index. Raises before changing anything."""
        raise NotImplementedError

    def describe(self) -> str:
        """Anything the reply should say beyond the op's name and the cell."""
        return ""

    def replay(self, notebook: NotebookNode) -> str | None:
        """Re-apply on a reloaded document; return a note if it could not be applied."""
        try:
            self.apply(notebook)
        except NotebookError as error:
            return f"{self.name} could not be re-applied after the file changed on disk: {error}"
        return None


@dataclass
class InsertCell(Op):
    cell: NotebookNode
    index: int | None = None
    after_id: str | None = None
    _anchored: bool = field(default=False, repr=False)
    name = "insert_cell"

    @property
    def subject_id(self) -> str | None:
        return str(self.cell["id"])

    def apply(self, notebook: NotebookNode) -> int:
        if self._anchored:
            position = self._anchor_position(notebook)
        elif self.after_id is not None:
            anchor = index_of(notebook, self.after_id)
            if anchor is None:
                raise CellNotFound(f"no cell has id {self.after_id!r} to insert after")
            position = anchor + 1
        else:
            position = insertion_point(notebook, self.index)
            self.after_id = notebook.cells[position - 1]["id"] if position > 0 else None
        existing = index_of(notebook, self.cell["id"])
        if existing is not None:  # replaying an insert that the reloaded file already has
            return existing
        notebook.cells.insert(position, self.cell)
        self._anchored = True
        return position

    def _anchor_position(self, notebook: NotebookNode) -> int:
        if self.after_id is None:
            return 0
        anchor = index_of(notebook, self.after_id)
        # The cell we went after was deleted by hand: keep ours, at the end, rather than lose it.
        return len(notebook.cells) if anchor is None else anchor + 1


class _Targeted(Op):
    """An op on one existing cell, addressed by index or id the first time, by id after."""

    index: int | None
    cell_id: str | None

    @property
    def subject_id(self) -> str | None:
        return self.cell_id

    def _target(self, notebook: NotebookNode) -> int:
        position = locate(notebook, self.index, self.cell_id)
        self.index, self.cell_id = None, notebook.cells[position]["id"]
        return position


@dataclass
class SetCell(_Targeted):
    index: int | None = None
    cell_id: str | None = None
    source: str | None = None
    cell_type: str | None = None
    name = "set_cell"

    def apply(self, notebook: NotebookNode) -> int:
        if self.cell_type is not None and self.cell_type not in CELL_TYPES:
            raise NotebookError(
                f"cell_type must be one of {', '.join(CELL_TYPES)}, not {self.cell_type!r}"
            )
        position = self._target(notebook)
        old = notebook.cells[position]
        source = old["source"] if self.source is None else self.source
        if self.cell_type is not None and self.cell_type != old["cell_type"]:
            new = make_cell(self.cell_type, source, cell_id=old["id"])
            new["metadata"] = old.get("metadata", NotebookNode())
            notebook.cells[position] = new
        else:
            old["source"] = source
        return position


@dataclass
class DeleteCell(_Targeted):
    index: int | None = None
    cell_id: str | None = None
    name = "delete_cell"

    removed: str = ""

    def describe(self) -> str:
        return self.removed

    def apply(self, notebook: NotebookNode) -> int:
        position = self._target(notebook)
        cell = notebook.cells.pop(position)
        first = next((line for line in cell["source"].splitlines() if line.strip()), "")
        self.removed = f"{cell['cell_type']}: {first[:60] or '(empty)'}"
        return position

    def replay(self, notebook: NotebookNode) -> str | None:
        # Deleted on disk too: the wish is already true.
        if self.cell_id is not None and index_of(notebook, self.cell_id) is None:
            return None
        return super().replay(notebook)


@dataclass
class MoveCell(_Targeted):
    index: int | None = None
    cell_id: str | None = None
    to: int = -1
    after_id: str | None = None
    origin: int | None = None
    _anchored: bool = field(default=False, repr=False)
    name = "move_cell"

    def describe(self) -> str:
        return f"from index {self.origin}"

    def apply(self, notebook: NotebookNode) -> int:
        if self._anchored:
            position = self._target(notebook)
            cell = notebook.cells.pop(position)
            anchor = None if self.after_id is None else index_of(notebook, self.after_id)
            if self.after_id is None:
                target = 0
            else:  # the cell it went after was deleted by hand: keep it, at the end
                target = len(notebook.cells) if anchor is None else anchor + 1
            notebook.cells.insert(target, cell)
            return target
        position = locate(notebook, self.index, self.cell_id)
        target = _normalize_index(notebook, self.to)
        self.origin = position
        self._target(notebook)
        cell = notebook.cells.pop(position)
        notebook.cells.insert(target, cell)
        self.after_id = notebook.cells[target - 1]["id"] if target > 0 else None
        self._anchored = True
        return target


@dataclass
class ClearOutputs(_Targeted):
    index: int | None = None
    cell_id: str | None = None
    every_cell: bool = False
    name = "clear_outputs"

    def describe(self) -> str:
        return "all" if self.every_cell else ""

    def apply(self, notebook: NotebookNode) -> int:
        if self.every_cell:
            for cell in notebook.cells:
                _clear(cell)
            return 0
        position = self._target(notebook)
        _clear(notebook.cells[position])
        return position


@dataclass
class SetKernel(Op):
    """Record the kernel nb chose where Jupyter front-ends read it (`metadata.kernelspec`) and
    what nb itself remembers (`metadata.nb`: the environment, or a kernelspec a call named,
    and the rule); no cell changes."""

    kernelspec: dict[str, str]
    ours: dict[str, str]
    name = "set_kernel"

    def apply(self, notebook: NotebookNode) -> int:
        metadata = notebook.setdefault("metadata", NotebookNode())
        metadata["kernelspec"] = NotebookNode(self.kernelspec)
        previous = metadata.get("nb")
        kept = {
            key: value
            for key, value in (previous.items() if isinstance(previous, dict) else ())
            if key not in _KERNEL_KEYS
        }
        kept.update(self.ours)
        if kept:
            metadata["nb"] = NotebookNode(kept)
        else:
            metadata.pop("nb", None)
        return 0


_KERNEL_KEYS = ("environment", "kernelspec", "kernel_rule")


def _clear(cell: NotebookNode) -> None:
    if cell["cell_type"] == "code":
        cell["outputs"] = []
        cell["execution_count"] = None
