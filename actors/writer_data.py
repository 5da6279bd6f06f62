"""What the WriterActor is told and what it answers: plain data, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nb_mcp.actors.job_data import CellOutputs
from nbformat import NotebookNode

__all__ = [
    "CellMessage",
    "CellOutputs",
    "EditResult",
    "FlushDue",
    "LiveCell",
    "Look",
    "OpenResult",
    "WriteNow",
    "WriterStats",
]


@dataclass
class LiveCell:
    """A running cell: its outputs so far, shown under a pinned Running marker."""

    marker: NotebookNode
    outputs: list[Any] = field(default_factory=list)
    execution_count: int | None = None
    dropped: bool = False


@dataclass(frozen=True)
class EditResult:
    index: int
    cell_id: str | None
    written: bool
    write_error: str | None
    detail: str = ""
    created: bool = False


@dataclass(frozen=True)
class WriterStats:
    writes: int
    failed_writes: int
    failing_for_sec: float | None
    pending: bool


@dataclass(frozen=True)
class OpenResult:
    cells: int
    created: bool


@dataclass(frozen=True)
class CellMessage:
    """An output message of the kernel for a cell (told, many a second)."""

    cell_id: str
    msg_type: str
    content: dict[str, Any]


class FlushDue:
    """The streaming flush interval (or a retry's back-off) is over (from the clock)."""


class WriteNow:
    """Told to ourselves: write once the messages already queued are handled."""


class Look:
    """Time to look at the file (from the watch timer)."""
