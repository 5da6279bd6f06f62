"""The notebook as bytes on disk, exactly as nbformat writes it, at the cost of what changed.

Pure: no I/O. nbformat writes `json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False,
separators=(",", ": "))` plus a final newline, with multi-line strings split into lists of
lines and transient metadata left out. In that text each cell is an indented block of its own,
so a cell's block can be kept and reused while the cell does not change: a notebook of 300
plots streaming into one cell re-serialises one cell per write, not 50 MB.

`FileComposer` keeps, per cell id, the cell object it serialised and its bytes. A block is
reused only if the document still holds that very object and the caller did not name the cell
as changed; anything else (a cell replaced by a merge, a new document) is serialised afresh.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_DUMP = {"indent": 1, "sort_keys": True, "ensure_ascii": False, "separators": (",", ": ")}
_TRANSIENT_METADATA = ("orig_nbformat", "orig_nbformat_minor", "signature")
_SPLIT_NON_TEXT = ("application/javascript", "image/svg+xml")
_CELL_INDENT = "\n  "  # a cell sits two levels deep: {"cells": [ {…} ]}


def serialize(notebook: dict[str, Any]) -> str:
    """The whole notebook as nbformat writes it (no cache)."""
    return FileComposer().compose(notebook, ()).text()


@dataclass(frozen=True)
class Composed:
    """The file's bytes, as pieces (joined only once, when written)."""

    pieces: tuple[bytes, ...]

    def data(self) -> bytes:
        return b"".join(self.pieces)

    def text(self) -> str:
        return self.data().decode()

    def digest(self) -> str:
        """The same as disk_sync.digest(self.data()), without joining the pieces."""
        hasher = hashlib.blake2b(digest_size=16)
        for piece in self.pieces:
            hasher.update(piece)
        return hasher.hexdigest()

    @property
    def size(self) -> int:
        return sum(len(piece) for piece in self.pieces)


class FileComposer:
    def __init__(self) -> None:
        self._blocks: dict[str, tuple[Any, bytes]] = {}
        self.serialised = 0  # cells serialised by the last compose (tests and stats read it)

    def forget(self) -> None:
        self._blocks.clear()

    def compose(self, notebook: dict[str, Any], changed: Iterable[str]) -> Composed:
        """The file for `notebook`; `changed`: ids of cells changed in place since last time."""
        stale = set(changed)
        blocks: dict[str, tuple[Any, bytes]] = {}
        pieces: list[bytes] = []
        self.serialised = 0
        for cell in notebook["cells"]:
            cell_id = cell.get("id")
            known = self._blocks.get(cell_id) if isinstance(cell_id, str) else None
            if known is not None and known[0] is cell and cell_id not in stale:
                block = known[1]
            else:
                block = _cell_block(cell)
                self.serialised += 1
            if isinstance(cell_id, str) and cell_id not in blocks:
                blocks[cell_id] = (cell, block)
            pieces.append(block)
        self._blocks = blocks
        head, tail = _frame(notebook)
        if not pieces:
            return Composed((head, b"[]", tail))
        joined: list[bytes] = [head, b"[" + _CELL_INDENT.encode()]
        separator = ("," + _CELL_INDENT).encode()
        for position, block in enumerate(pieces):
            if position:
                joined.append(separator)
            joined.append(block)
        joined.append(b"\n ]")
        joined.append(tail)
        return Composed(tuple(joined))


def _frame(notebook: dict[str, Any]) -> tuple[bytes, bytes]:
    """The text before and after the cells list (everything but the cells)."""
    top = {key: value for key, value in notebook.items() if key != "cells"}
    metadata = dict(notebook.get("metadata", {}))
    for transient in _TRANSIENT_METADATA:
        metadata.pop(transient, None)
    top["metadata"] = metadata
    while True:
        placeholder = f"nb-cells-{secrets.token_hex(8)}"
        text = json.dumps({**top, "cells": placeholder}, **_DUMP) + "\n"  # type: ignore[arg-type]
        quoted = f'"{placeholder}"'
        if text.count(quoted) == 1:
            head, _, tail = text.partition(quoted)
            return head.encode(), tail.encode()


def _cell_block(cell: dict[str, Any]) -> bytes:
    text = json.dumps(_disk_cell(cell), **_DUMP)  # type: ignore[arg-type]
    # JSON strings hold no raw newline: every newline here is indentation.
    return text.replace("\n", _CELL_INDENT).encode()


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


def _split_bundle(bundle: dict[str, Any]) -> dict[str, Any]:
    return {
        mime: value.splitlines(True)
        if isinstance(value, str) and (mime.startswith("text/") or mime in _SPLIT_NON_TEXT)
        else value
        for mime, value in bundle.items()
    }
