"""What a cell showed before a job marked it Queued, so that cancelling the job gives it back.

A mixin of WriterActor (the only code that touches the document): marking a cell Queued keeps
its previous outputs under the marker but drops its old footer; a queued job that is cancelled
(cancel_job, MCP tasks/cancel) never ran, so its cells get back exactly what they had.
"""

from __future__ import annotations

from typing import Any


class QueuedMarks:
    """WriterActor's memory of Queued cells' outputs before the mark (it uses the writer's
    document, output builder and write scheduling)."""

    _before_queued: dict[str, tuple[str, list[Any]]] | None = None
    _queued: set[str]
    _live: dict[str, Any]
    _builder: Any
    _dirty_cells: set[str]
    _dirty: bool
    _code_cell: Any
    _write_soon: Any

    def remember_before_queued(self, job_id: str, cell_id: str, outputs: list[Any]) -> None:
        if self._before_queued is None:
            self._before_queued = {}
        self._before_queued[cell_id] = (job_id, list(outputs))

    def unmark_queued(self, job_id: str, cell_ids: list[str]) -> None:
        """A queued job was cancelled: its cells show again what they showed before."""
        before_queued = self._before_queued or {}
        for cell_id in cell_ids:
            job, before = before_queued.pop(cell_id, ("", []))
            cell = self._code_cell(cell_id)
            if job != job_id or cell is None or cell_id in self._live:
                continue  # another job marked it since, or it runs: not ours to undo
            self._queued.discard(cell_id)
            self._builder.forget(cell_id)
            cell["outputs"] = before
            self._dirty_cells.add(cell_id)
            self._dirty = True
        self._write_soon()
