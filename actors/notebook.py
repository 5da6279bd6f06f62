"""The in-memory notebook: parsing, addressing by index or id, edits, markers. Pure: no I/O.

Edits are small op objects. The WriterActor applies an op to its document and keeps it
until the file is written; if the file changed on disk meanwhile, it reloads and replays the
pending ops on the reloaded document, by cell id. So every op resolves its target once, on
first application, to ids (a cell id, the id of the cell it goes after), never to an index
that a person's edit could shift.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import nbjson
from nbformat.v4.nbbase import new_code_cell, new_markdown_cell, new_raw_cell, random_cell_id

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


def serialize(notebook: dict[str, Any]) -> str:
    """The notebook as JupyterLab saves it: indent 1, sorted keys, lines split, final newline.

    nbformat's own writer deep-copies the whole document first; this builds only the
    split-line copies it needs, because it runs up to five times a second while a cell
    streams megabytes of output.
    """
    disk = dict(notebook)
    metadata = dict(notebook.get("metadata", {}))
    for transient in ("orig_nbformat", "orig_nbformat_minor", "signature"):
        metadata.pop(transient, None)
    disk["metadata"] = metadata
    disk["cells"] = [_disk_cell(cell) for cell in notebook["cells"]]
    return (
        json.dumps(disk, indent=1, sort_keys=True, ensure_ascii=False, separators=(",", ": "))
        + "\n"
    )


def _disk_cell(cell: dict[str, Any]) -> dict[str, Any]:
    disk = dict(cell)
    if isinstance(cell.get("source"), str):
        disk["source"] = cell["source"].splitlines(True)
    if "trusted" in cell.get("metadata", {}):
        disk["metadata"] = {k: v for k, v in cell["metadata"].items() if k != "trusted"}
    if "attachments" in cell:
        disk["attachments"] = {
            name: _split_bundle(bundle) for name, bundle in cell["attachments"].items()
        }
    if cell.get("cell_type") == "code":
        disk["outputs"] = [_disk_output(output) for output in cell.get("outputs", [])]
    return disk


def _disk_output(output: dict[str, Any]) -> dict[str, Any]:
    kind = output.get("output_type")
    if kind in ("execute_result", "display_data"):
        disk = dict(output)
        disk["data"] = _split_bundle(output.get("data", {}))
        return disk
    if kind == "stream" and isinstance(output.get("text"), str):
        disk = dict(output)
        disk["text"] = output["text"].splitlines(True)
        return disk
    return output


_SPLIT_NON_TEXT = ("application/javascript", "image/svg+xml")


def _split_bundle(bundle: dict[str, Any]) -> dict[str, Any]:
    return {
        mime: value.splitlines(True)
        if isinstance(value, str) and (mime.startswith("text/") or mime in _SPLIT_NON_TEXT)
        else value
        for mime, value in bundle.items()
    }


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


# ---------------------------------------------------------------- edits


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


# ---------------------------------------------------------------- markers

MARKER_PREFIX = "[nb mcp] "
RUNNING, QUEUED = "▶ Running", "⏳ Queued"


def clock(at: float | None = None) -> str:
    """Wall-clock time with its zone, as a person reading the notebook wants it."""
    return time.strftime("%H:%M:%S %Z", time.localtime(time.time() if at is None else at))


def marker(text: str) -> NotebookNode:
    return NotebookNode(output_type="stream", name="stderr", text=f"{MARKER_PREFIX}{text}\n")


def is_marker(output: Any) -> bool:
    return (
        output.get("output_type") == "stream"
        and output.get("name") == "stderr"
        and str(output.get("text", "")).startswith(MARKER_PREFIX)
    )


def without_markers(outputs: list[Any]) -> list[Any]:
    return [output for output in outputs if not is_marker(output)]


def queued_marker(position: int, of: int, job_id: str, at: float) -> NotebookNode:
    return marker(f"{QUEUED} ({position}/{of}, job {job_id}, since {clock(at)})")


def running_marker(position: int, of: int, started: float) -> NotebookNode:
    return marker(f"{RUNNING} ({position}/{of}, started {clock(started)})")


def done_marker(finished: float, duration: float) -> NotebookNode:
    return marker(f"✓ Done at {clock(finished)} · ran {format_duration(duration)}")


def error_marker(finished: float, duration: float, detail: str = "") -> NotebookNode:
    suffix = f" · {detail}" if detail else ""
    return marker(f"✗ Error at {clock(finished)} · ran {format_duration(duration)}{suffix}")


def footer(status: str, finished: float, duration: float, ename: str | None = None) -> NotebookNode:
    """The marker a finished cell ends with, by how it ended."""
    ran = format_duration(duration)
    if status == "ok":
        return done_marker(finished, duration)
    if status == "timeout":
        return marker(
            f"⏱ Timed out at {clock(finished)} · ran {ran} (wall-clock timeout); "
            "the kernel was interrupted"
        )
    if status == "died":
        return marker(f"✗ Kernel died at {clock(finished)} · ran {ran}")
    return error_marker(finished, duration, ename or "")


def skipped_marker(reason: str = "earlier cell errored") -> NotebookNode:
    return marker(f"⊘ Skipped ({reason})")


def stopped_marker(at: float) -> NotebookNode:
    return marker(
        f"⚠ The nb server stopped before this cell finished (found at {clock(at)}); "
        "outputs below are what was saved before it stopped"
    )


def is_pending_marker(output: Any) -> bool:
    """A Running or Queued marker: only true while a server is working on the cell."""
    text = str(output.get("text", ""))
    return is_marker(output) and text[len(MARKER_PREFIX) :].startswith((RUNNING, QUEUED))


def replace_stale_markers(
    notebook: NotebookNode, at: float, keep: frozenset[str] | set[str] = frozenset()
) -> int:
    """Replace Running/Queued markers a stopped server left behind; return how many cells.

    `keep`: ids of cells whose markers are this server's own (it is running or queueing them).
    """
    cells = 0
    for cell in notebook.cells:
        if cell["id"] in keep:
            continue
        outputs = cell.get("outputs") or []
        if any(is_pending_marker(output) for output in outputs):
            cell["outputs"] = [stopped_marker(at)] + [o for o in outputs if not is_marker(o)]
            cells += 1
    return cells


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"
