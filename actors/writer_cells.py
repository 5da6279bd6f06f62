"""The writer's side that faces execution: cells queued, started, streaming, finished,
skipped (tells from the job, outputs from the kernel), and the running cells' live outputs.

A mixin of WriterActor (actors/writer.py), which owns the state it uses (see its __init__).
A finished cell's own outputs go back to its job (`outputs_to`), so the job's reply shows that
run's outputs whatever happened to the cell since.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from nb_mcp.actors import notebook as nb
from nb_mcp.actors import writer_reports
from nb_mcp.actors.job_data import RunOutputs
from nb_mcp.actors.writer_data import LiveCell
from nbformat import NotebookNode


class CellSide:
    def mark_queued(self, job_id: str, cell_ids: list[str], at: float) -> None:
        self._mark_queued(job_id, cell_ids, at, first=1, total=len(cell_ids))
        self._write_soon()

    def _mark_queued(
        self, job_id: str, cell_ids: list[str], at: float, first: int, total: int
    ) -> None:
        if self._doc is None:
            return
        for position, cell_id in enumerate(cell_ids, start=first):
            cell = self._code_cell(cell_id)
            if cell is None or cell_id in self._live:
                continue
            self._builder.forget(cell_id)
            self.remember_before_queued(job_id, cell_id, cell.get("outputs", []))
            previous = nb.without_markers(cell.get("outputs", []))
            cell["outputs"] = [nb.queued_marker(position, total, job_id, at), *previous]
            self._dirty_cells.add(cell_id)
            self._queued.add(cell_id)
        self._dirty = True

    def cell_started(
        self,
        cell_id: str,
        position: int,
        of: int,
        at: float,
        queued: list[str] | None = None,
        job_id: str = "",
    ) -> None:
        """A cell starts: pin its Running marker (and mark `queued`, the job's next cells)."""
        if queued:
            self._mark_queued(job_id, queued, at, first=position + 1, total=of)
        self._builder.forget(cell_id)
        self._queued.discard(cell_id)
        self._live[cell_id] = LiveCell(marker=nb.running_marker(position, of, at))
        self._dirty_cells.add(cell_id)
        self._dirty = True
        # Within one flush interval, not at once: a cell that ends sooner is written once,
        # with its result, and one still running shows its Running marker 0.2 s in.
        self._flush.schedule(self._flush.interval)

    def resume_cell(self, cell_id: str, note: NotebookNode) -> None:
        """A cell that kept running while nb's daemon was replaced becomes live again.

        Its saved outputs stay (the next output merges with them), under a fresh Running
        marker, with `note` saying what may be missing.
        """
        if self._doc is None:
            self.open()
        assert self._doc is not None
        cell = self._code_cell(cell_id)
        if cell is None:
            return
        previous = nb.without_markers(cell.get("outputs", []))
        self._builder.forget(cell_id)
        self._live[cell_id] = LiveCell(
            marker=nb.marker(f"{nb.RUNNING} (resumed at {nb.clock(self._flush.clock.time())})"),
            outputs=[*previous, note],
            execution_count=cell.get("execution_count"),
        )
        self._dirty_cells.add(cell_id)
        self._dirty = True
        self._write_soon()

    def cell_message(self, cell_id: str, msg_type: str, content: dict[str, Any]) -> None:
        applied = self._builder.apply(cell_id, msg_type, content)
        live = self._live.get(cell_id)
        if live is not None and applied.execution_count is not None:
            live.execution_count = applied.execution_count
        if applied.changed:
            self._dirty_cells |= applied.changed
            self._dirty = True
            self._flush.schedule()

    def cell_finished(
        self,
        cell_id: str,
        footer: NotebookNode,
        execution_count: int | None = None,
        job_id: str = "",
        last: bool = True,
        outputs_to: Future[RunOutputs] | None = None,
    ) -> None:
        """A cell ended; `last`: it was its job's last, so its reply is about to need it.
        `outputs_to`: where this run's outputs go (the job keeps them for its reply)."""
        live = self._live.pop(cell_id, None)
        self._queued.discard(cell_id)
        outputs = [] if live is None else live.outputs
        count = (
            execution_count
            if live is None or live.execution_count is None
            else live.execution_count
        )
        if outputs_to is not None and not outputs_to.done():
            # The list is handed over, not copied: nothing appends to it after this.
            outputs_to.set_result(RunOutputs(nb.without_markers(outputs), count))
        cell = self._code_cell(cell_id)
        if cell is None:
            if live is None or not live.dropped:
                self._gone(cell_id)
        else:
            cell["outputs"] = [*outputs, footer]
            cell["execution_count"] = count
            self._dirty_cells.add(cell_id)
        self._dirty = True
        if last and not self._flush.big:
            self._write_soon()  # the job's reply waits for this write: start it now
        else:
            # With the streaming cadence: a job of many quick cells is not one full rewrite
            # per cell. Within 0.2 s it is on disk.
            self._flush.schedule()

    def mark_skipped(self, cell_ids: list[str], reason: str) -> None:
        if self._doc is None:
            return
        for cell_id in cell_ids:
            self._queued.discard(cell_id)
            cell = self._code_cell(cell_id)
            if cell is None:
                continue
            self._builder.forget(cell_id)
            cell["outputs"] = [nb.skipped_marker(reason), *nb.without_markers(cell["outputs"])]
            self._dirty_cells.add(cell_id)
        self._dirty = True
        self._write_soon()

    # ------------------------------------------------------------ live outputs

    def _outputs_of(self, cell_id: str) -> list[Any] | None:
        live = self._live.get(cell_id)
        if live is not None:
            return live.outputs
        cell = self._code_cell(cell_id)
        return None if cell is None else cell["outputs"]

    def _code_cell(self, cell_id: str) -> NotebookNode | None:
        """The code cell with this id; None if there is none, or it became markdown or raw
        (outputs there would make the file an invalid notebook)."""
        cell = None if self._doc is None else nb.cell_by_id(self._doc, cell_id)
        return cell if cell is not None and cell["cell_type"] == "code" else None

    def _forget_outputs(self, cell_id: str | None) -> None:
        keys = (
            [cell_id]
            if cell_id is not None
            else list(nb.cell_ids(self._doc or NotebookNode(cells=[])))
        )
        for key in keys:
            if key in self._live:
                self._builder.clear(key)  # a running cell: what it printed so far goes too
            else:
                self._builder.forget(key)

    def _compose_live(self) -> None:
        """Put each running cell's outputs, under its Running marker, into the document."""
        if self._doc is None:
            return
        for cell_id, live in self._live.items():
            cell = self._code_cell(cell_id)
            if cell is None:
                if not live.dropped:
                    live.dropped = True
                    self._gone(cell_id)
                continue
            cell["outputs"] = [live.marker, *live.outputs]
            cell["execution_count"] = live.execution_count

    def _gone(self, cell_id: str) -> None:
        """A running cell's outputs have nowhere to go: it was deleted, or is no longer code."""
        retyped = self._doc is not None and nb.cell_by_id(self._doc, cell_id) is not None
        what = "was changed to a markdown or raw cell" if retyped else "was deleted"
        reason = f"the cell {what} while it ran"
        self._notices.append(
            writer_reports.running_cell_dropped(self.path, cell_id, reason, retyped)
        )
