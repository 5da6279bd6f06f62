"""The in-memory notebook: parsing (ids given, nbformat upgraded) and addressing cells by index
or id. Pure: no I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import nbjson
from nbformat.v4.nbbase import random_cell_id

CELL_TYPES = ("code", "markdown", "raw")
_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class NotebookError(Exception):
    """A request the notebook cannot satisfy; the message is written for the agent."""


class CellNotFound(NotebookError):
    pass


@dataclass(frozen=True)
class Upgrade:
    """What parse() changed so the document could be addressed by cell id."""

    ids_added: int = 0
    from_version: str = ""

    @property
    def changed(self) -> bool:
        return self.ids_added > 0 or bool(self.from_version)


# ---------------------------------------------------------------- reading and writing


def parse(text: str) -> tuple[NotebookNode, Upgrade]:
    """Parse and validate a notebook; give every cell an id (nbformat 4.5 rules)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise NotebookError(
            f"the file is not valid JSON ({error.msg} at line {error.lineno}, "
            f"column {error.colno}); it was left untouched"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError("the file is JSON but not a Jupyter notebook (no 'cells' list)")
    if data.get("nbformat") != 4:
        raise NotebookError(
            f"nbformat {data.get('nbformat')!r} is not supported: nb reads nbformat 4 "
            "(convert it with `jupyter nbconvert --to notebook`)"
        )
    for position, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict):
            raise NotebookError("the file is not a valid notebook: a cell is not a JSON object")
        if not isinstance(cell.get("cell_type"), str):
            raise NotebookError(
                f"the file is not a valid notebook: cell {position} has no cell_type string; "
                "it was left untouched"
            )
    minor = data.get("nbformat_minor", 0)
    if not isinstance(minor, int) or isinstance(minor, bool):
        raise NotebookError(f"the file is not a valid notebook: nbformat_minor is {minor!r}")
    upgrade = _assign_ids(data, minor)
    try:
        nbformat.validate(data)
    except (TypeError, KeyError, AttributeError) as error:
        # nbformat's error formatting itself can trip over shapes it does not expect.
        raise NotebookError(
            f"the file is not a valid notebook ({type(error).__name__}: {error}); "
            "it was left untouched"
        ) from None
    except nbformat.ValidationError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "top level"
        raise NotebookError(
            f"the file is not a valid notebook: {error.message} (at {where}); it was left untouched"
        ) from None
    notebook = nbjson.to_notebook(data)
    return notebook, upgrade


def _assign_ids(notebook: dict[str, Any], minor: int) -> Upgrade:
    seen: set[str] = set()
    added = 0
    for cell in notebook["cells"]:
        cell_id = cell.get("id")
        if not isinstance(cell_id, str) or not _ID_PATTERN.match(cell_id) or cell_id in seen:
            cell_id = _fresh_id(seen)
            cell["id"] = cell_id
            added += 1
        seen.add(cell_id)
    from_version = ""
    if minor < 5:
        from_version = f"4.{minor}"
        notebook["nbformat_minor"] = 5
    return Upgrade(ids_added=added, from_version=from_version)


def _fresh_id(taken: set[str]) -> str:
    while True:
        candidate = random_cell_id()
        if candidate not in taken:
            return candidate


def new_notebook() -> NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook["nbformat_minor"] = 5
    return notebook


# ---------------------------------------------------------------- addressing


def cell_ids(notebook: NotebookNode) -> list[str]:
    return [cell["id"] for cell in notebook.cells]


def index_of(notebook: NotebookNode, cell_id: str) -> int | None:
    for index, cell in enumerate(notebook.cells):
        if cell["id"] == cell_id:
            return index
    return None


def cell_by_id(notebook: NotebookNode, cell_id: str) -> NotebookNode | None:
    index = index_of(notebook, cell_id)
    return None if index is None else notebook.cells[index]


def locate(notebook: NotebookNode, index: int | None, cell_id: str | None) -> int:
    """The index of the cell addressed by exactly one of `index` (negative from the end) or id."""
    if index is not None and cell_id is not None:
        raise NotebookError("give either index or cell_id, not both")
    if cell_id is not None:
        found = index_of(notebook, cell_id)
        if found is None:
            raise CellNotFound(
                f"no cell has id {cell_id!r} ({_count(notebook)}; list_cells shows the ids)"
            )
        return found
    if index is None:
        raise NotebookError("give index or cell_id to say which cell")
    return _normalize_index(notebook, index)


def _normalize_index(notebook: NotebookNode, index: int) -> int:
    total = len(notebook.cells)
    if total == 0:
        raise CellNotFound(f"index {index} is out of range: the notebook has no cells")
    if not -total <= index < total:
        raise CellNotFound(
            f"index {index} is out of range: {_count(notebook)} "
            f"(valid: 0..{total - 1}, or -{total}..-1 from the end)"
        )
    return index % total


def insertion_point(notebook: NotebookNode, index: int | None) -> int:
    """Where a new cell goes so it ends up at `index` (negative from the end; None: append)."""
    total = len(notebook.cells)
    if index is None:
        return total
    if not -(total + 1) <= index <= total:
        raise NotebookError(
            f"index {index} is out of range for inserting: {_count(notebook)} "
            f"(valid: 0..{total}, or -{total + 1}..-1 where -1 appends)"
        )
    return index if index >= 0 else total + 1 + index


def _count(notebook: NotebookNode) -> str:
    total = len(notebook.cells)
    return f"the notebook has {total} cell{'s' if total != 1 else ''}"


def resolve_range(notebook: NotebookNode, start: int | None, end: int | None) -> list[str]:
    """Ids of the code cells from `start` to `end` inclusive (negative from the end)."""
    total = len(notebook.cells)
    if total == 0:
        raise NotebookError("the notebook has no cells")
    first = 0 if start is None else _normalize_index(notebook, start)
    last = total - 1 if end is None else _normalize_index(notebook, end)
    if first > last:
        raise NotebookError(f"start ({start}) comes after end ({end}): nothing to run")
    return [cell["id"] for cell in notebook.cells[first : last + 1] if cell["cell_type"] == "code"]
