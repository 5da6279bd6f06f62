"""WriterActor: the only code that reads or writes a notebook file.

It holds the document in memory. Edits from tools and outputs from the kernel arrive as
messages; it writes atomically (temp file in the same folder, fsync, rename), at once after an
edit or a cell's start and end, and at most once per flush interval while output streams
(actors/flush_policy.py). A write costs what changed: the file is composed from per-cell pieces
and only cells changed since the last write are serialised again (actors/notebook_json.py).

Before every read of its document and every write it checks whether someone else changed the
file. If so it reloads and replays its unwritten changes by cell id, so a cell a person added,
moved or edited by hand survives, and so does streamed output (actors/merge.py); outputs it
wrote that an editor's stale copy took away are put back (actors/write_memory.py). A file a
person deleted stays deleted: nothing is written there until an edit creates a new notebook.
A write that fails keeps everything in memory, is retried with back-off, and is reported in
the next tool reply. The disk side is actors/writer_disk.py, the cells' side
actors/writer_cells.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from nb_mcp.actors import disk_sync, writer_queued, writer_reports
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.flush_policy import FlushPolicy
from nb_mcp.actors.job_data import RunOutputs
from nb_mcp.actors.log import emit, emit_unhandled
from nb_mcp.actors.notebook_json import FileComposer
from nb_mcp.actors.outputs import OutputBuilder
from nb_mcp.actors.refs import NotebookRefs
from nb_mcp.actors.write_memory import WriteMemory
from nb_mcp.actors.writer_cells import CellSide
from nb_mcp.actors.writer_data import (
    CellMessage,
    CellOutputs,
    EditResult,
    FlushDue,
    LiveCell,
    Look,
    OpenResult,
    WriteNow,
    WriterStats,
)
from nb_mcp.actors.writer_disk import DiskSide
from nb_mcp.supervisor.clock import Clock, real_clock
from nb_mcp.supervisor.tree import SupervisedActor, Supervision
from nbformat import NotebookNode

__all__ = [
    "CellMessage",
    "CellOutputs",
    "EditResult",
    "OpenResult",
    "WriterActor",
    "WriterStats",
]

T = TypeVar("T")


class WriterActor(CellSide, DiskSide, writer_queued.QueuedMarks, SupervisedActor):
    def __init__(
        self,
        *,
        supervision: Supervision,
        path: Path,
        flush_interval: float,
        refs: NotebookRefs | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(supervision=supervision)
        self.path = path
        self._refs = refs
        self._flush = FlushPolicy(clock or real_clock(), flush_interval)
        self._doc: NotebookNode | None = None
        self._composer = FileComposer()  # the file's per-cell pieces, as last written
        self._written_size = 0
        self._seen: disk_sync.Seen | None = None  # the file last read or written
        self._deleted = False  # a person deleted the file: the document is only in memory
        self._orphan: NotebookNode | None = None  # the deleted one, while an edit starts anew
        self._memory = WriteMemory()
        self._restored: dict[str, None] = {}  # cells whose outputs went back, for a notice
        self._queued: set[str] = set()  # cells marked Queued by us, not started yet
        self._pending_ops: list[nb.Op] = []
        self._dirty_cells: set[str] = set()
        self._dirty = False
        self._live: dict[str, LiveCell] = {}
        self._builder = OutputBuilder(self._outputs_of)
        self._notices: list[str] = []
        self._blocked_reason: str | None = None
        self._writes = 0
        self._failed_writes = 0
        self._write_queued = False
        self._last_error = ""

    # ------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        self._flush.ref = self.actor_ref
        if self._refs is not None:
            self._refs.register("writer", self.actor_ref)

    def teardown(self, reason: BaseException | None) -> None:
        if self._refs is not None:
            self._refs.unregister("writer", self.actor_ref)
        if self._dirty and self._doc is not None:
            self._write(final=True)
        self._flush.stop()  # after the last write, which may have set the watch
        self._set_seen(None)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, FlushDue):
            self._flush.due()
            if self._dirty:
                self._write()
            return None
        if isinstance(message, CellMessage):
            try:
                self.cell_message(message.cell_id, message.msg_type, message.content)
            except Exception as error:  # one bad message must not cost the document
                emit_unhandled(
                    error,
                    "WriterActor.cell_message",
                    f"could not apply a {message.msg_type} message to cell {message.cell_id}: "
                    f"{error!r}",
                    notebook=str(self.path),
                )
            return None
        if isinstance(message, WriteNow):
            self._write_queued = False
            if self._dirty:
                self._write()
            return None
        if isinstance(message, Look):
            self._on_look()
            return None
        return super().on_receive(message)

    def _write_soon(self) -> None:
        """Write at the end of the current burst of messages.

        A cell's end and the next cell's start arrive back to back: the message this tells
        ourselves queues behind them, so both land in one write instead of two.
        """
        if not self._write_queued:
            self._write_queued = True
            self.actor_ref.tell(WriteNow())

    # ------------------------------------------------------------ requests from tools (asks)

    def open(self, create: bool = False, deleted_ok: bool = False) -> OpenResult:
        """Load the notebook (creating an empty one if asked); raise NotebookError if unusable.

        A notebook deleted on disk is "no notebook" (`create`: a new one starts); with
        `deleted_ok` (a job finishing its cells) the deleted document is still read.
        """
        created = False
        if self._doc is None:
            created = self._load(create)
        else:
            self._sync()
            if self._deleted and self._blocked_reason is not None:
                raise nb.NotebookError(self._blocked_reason)
            if self._deleted and create:
                self._start_afresh()
                created = True
            elif self._deleted and not deleted_ok:
                raise nb.NotebookError(
                    f"no notebook at {self.path} (it was deleted; insert_cell creates a new one)"
                )
        assert self._doc is not None
        return OpenResult(cells=len(self._doc.cells), created=created)

    def query(self, reader: Callable[[NotebookNode], T], deleted_ok: bool = False) -> T:
        """Run a pure reader on the current document (after picking up changes on disk)."""
        if deleted_ok and self._doc is None and not self.path.exists():
            return reader(nb.new_notebook())
        self.open(deleted_ok=deleted_ok)
        assert self._doc is not None
        self._compose_live()
        return reader(self._doc)

    def edit(self, op: nb.Op, create: bool = False) -> EditResult:
        """Apply one edit and write the file before replying."""
        created = self.open(create=create).created
        assert self._doc is not None
        self._compose_live()
        try:
            index = op.apply(self._doc)  # raises before changing anything
        except nb.NotebookError:
            if created:
                self._undo_create()  # a refused edit creates no file
            raise
        self._pending_ops.append(op)
        self._dirty = True
        cell_id = op.subject_id
        if isinstance(op, nb.ClearOutputs):
            self._forget_outputs(None if op.every_cell else op.cell_id)
        error = self._write()
        if self._deleted:  # deleted while this edit was being written
            raise nb.NotebookError(
                f"{self.path.name} was deleted on disk while nb wrote this edit; nothing was "
                "written (insert_cell creates a new notebook)"
            )
        if created:
            if error is not None:
                self._undo_create()
                raise nb.NotebookError(f"cannot create {self.path}: {error}")
            if self._orphan is not None:
                self._orphan = None
                self._notices.append(writer_reports.created_anew(self.path))
            emit("notebook.created", f"created {self.path.name}", notebook=str(self.path))
        emit(
            "notebook.edited",
            f"{op.name} on {self.path.name}" + (f" (not written yet: {error})" if error else ""),
            op=op.name,
            notebook=str(self.path),
            cell_id=cell_id,
            cell_index=index if cell_id else None,
            written=error is None,
        )
        return EditResult(
            index=index,
            cell_id=cell_id,
            written=error is None,
            write_error=error,
            detail=op.describe(),
            created=created,
        )

    def take_notices(self) -> list[str]:
        """What the agent should hear about in its next reply (failed writes, dropped output)."""
        notices, self._notices = list(dict.fromkeys(self._notices)), []
        if self._restored:
            notices.append(writer_reports.restored(self.path, list(self._restored)))
            self._restored.clear()
        failing_for = self._flush.failing_for()
        if failing_for is not None:
            notices.append(writer_reports.failing(self.path, failing_for, self._last_error))
        return notices

    def flush(self) -> WriterStats:
        """Write now if anything is waiting to be written; return the stats after."""
        if self._dirty and self._doc is not None:
            self._write()
        return self.stats()

    def stats(self) -> WriterStats:
        failing = self._flush.failing_for()
        return WriterStats(self._writes, self._failed_writes, failing, self._dirty)

    def reply_for(
        self, cell_ids: list[str], runs: Mapping[str, Future[RunOutputs]] | None = None
    ) -> tuple[list[CellOutputs], list[str]]:
        """What a finished job's reply needs from us, in one ask: its outputs, our notices."""
        return self.outputs_of_cells(cell_ids, runs), self.take_notices()

    def outputs_of_cells(
        self, cell_ids: list[str], runs: Mapping[str, Future[RunOutputs]] | None = None
    ) -> list[CellOutputs]:
        """The cells' outputs for a job's reply: from `runs` (each finished cell's own, which
        its job kept), else what the document holds. The file is written first, so a reply
        about a finished job never precedes the file showing it (except a big file's: see
        actors/flush_policy.py)."""
        if self._dirty and not self._flush.big:
            self._write()
        self._compose_live()
        result = []
        for cell_id in cell_ids:
            index = None if self._doc is None else nb.index_of(self._doc, cell_id)
            run = (runs or {}).get(cell_id)
            if run is not None and run.done():
                outputs, count = run.result().outputs, run.result().execution_count
            elif index is not None and self._doc is not None:
                cell = self._doc.cells[index]
                outputs = nb.without_markers(cell.get("outputs", []))
                count = cell.get("execution_count")
            else:
                outputs, count = [], None
            result.append(CellOutputs(cell_id, index, outputs, count))
        return result
