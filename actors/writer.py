"""WriterActor: the only code that reads or writes a notebook file.

It holds the document in memory. Edits from tools and outputs from the kernel arrive as
messages; it writes atomically (temp file in the same folder, fsync, rename), at once after an
edit or a cell's start and end, and at most once per flush interval while output streams.

Before every read of its document and every write it checks whether someone else changed the
file. If so it reloads and replays its unwritten changes by cell id, so a cell a person added,
moved or edited by hand survives, and so does streamed output (actors/merge.py); outputs it
wrote that an editor's stale copy took away are put back (actors/write_memory.py). A file a
person deleted stays deleted: nothing is written there until an edit creates a new notebook.
A write that fails keeps everything in memory, is retried with back-off, and is reported in
the next tool reply.
"""

from __future__ import annotations

import contextlib
import errno
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nb_mcp.actors import atomic, disk_sync, writer_queued, writer_reports
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.log import emit
from nb_mcp.actors.merge import merge
from nb_mcp.actors.outputs import OutputBuilder
from nb_mcp.actors.refs import NotebookRefs
from nb_mcp.actors.timers import Timer
from nb_mcp.actors.write_memory import WriteMemory
from nb_mcp.supervisor.tree import SupervisedActor, Supervision
from nbformat import NotebookNode

T = TypeVar("T")
_RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
_MAX_MERGE_ROUNDS = 5
_RUNS_KEPT = 64
# While cells run and after writing outputs, look at the file now and then even with nothing to
# write: a silent cell's notebook may be deleted, an editor holding a copy from before the
# outputs may save it once the job is over.
_WATCH_EVERY_SEC = 1.0
_WATCH_FOR_SEC = 120.0


@dataclass
class _LiveCell:
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
class CellOutputs:
    """A cell's outputs for a reply; `index` is None when the cell was deleted meanwhile."""

    cell_id: str
    index: int | None
    outputs: list[Any]
    execution_count: int | None


@dataclass(frozen=True)
class CellMessage:
    """An output message of the kernel for a cell (told, many a second)."""

    cell_id: str
    msg_type: str
    content: dict[str, Any]


class _FlushDue:
    """The streaming flush interval is over (from the timer)."""


class _WriteNow:
    """Told to ourselves: write once the messages already queued are handled."""


class _Look:
    """Time to look at the file (from the watch timer)."""


class WriterActor(writer_queued.QueuedMarks, SupervisedActor):
    def __init__(
        self,
        *,
        supervision: Supervision,
        path: Path,
        flush_interval: float,
        refs: NotebookRefs | None = None,
    ) -> None:
        super().__init__(supervision=supervision)
        self.path = path
        self._refs = refs
        self._flush_interval = flush_interval
        self._doc: NotebookNode | None = None
        self._seen: disk_sync.Seen | None = None  # the file last read or written
        self._deleted = False  # a person deleted the file: the document is only in memory
        self._orphan: NotebookNode | None = None  # the deleted one, while an edit starts anew
        self._memory = WriteMemory()
        self._restored: dict[str, None] = {}  # cells whose outputs went back, for a notice
        self._queued: set[str] = set()  # cells marked Queued by us, not started yet
        self._watch: Timer | None = None
        self._watch_until = 0.0
        self._pending_ops: list[nb.Op] = []
        self._dirty_cells: set[str] = set()
        self._dirty = False
        self._live: dict[str, _LiveCell] = {}
        self._dropped: dict[str, list[Any]] = {}
        self._runs: OrderedDict[tuple[str, str], tuple[list[Any], int | None]] = OrderedDict()
        self._builder = OutputBuilder(self._outputs_of)
        self._notices: list[str] = []
        self._last_write = 0.0
        self._timer: Timer | None = None
        self._failing_since: float | None = None
        self._failures = 0
        self._blocked_reason: str | None = None
        self._writes = 0
        self._failed_writes = 0
        self._write_queued = False
        self._last_error = ""

    # ------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        if self._refs is not None:
            self._refs.register("writer", self.actor_ref)

    def teardown(self, reason: BaseException | None) -> None:
        if self._refs is not None:
            self._refs.unregister("writer", self.actor_ref)
        if self._timer is not None:
            self._timer.cancel()
        if self._watch is not None:
            self._watch.cancel()
        if self._dirty and self._doc is not None:
            self._write(final=True)
        self._set_seen(None)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _FlushDue):
            self._timer = None
            if self._dirty:
                self._write()
            return None
        if isinstance(message, CellMessage):
            try:
                self.cell_message(message.cell_id, message.msg_type, message.content)
            except Exception as error:  # one bad message must not cost the document
                emit(
                    "error.unhandled",
                    f"could not apply a {message.msg_type} message to cell {message.cell_id}: "
                    f"{error!r}",
                    level="error",
                    error=repr(error),
                    traceback="".join(traceback.format_exception(error)),
                    where="WriterActor.cell_message",
                    notebook=str(self.path),
                )
            return None
        if isinstance(message, _WriteNow):
            self._write_queued = False
            if self._dirty:
                self._write()
            return None
        if isinstance(message, _Look):
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
            self.actor_ref.tell(_WriteNow())

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
        if self._failing_since is not None:
            failing_for = time.monotonic() - self._failing_since
            notices.append(writer_reports.failing(self.path, failing_for, self._last_error))
        return notices

    def flush(self) -> WriterStats:
        """Write now if anything is waiting to be written; return the stats after."""
        if self._dirty and self._doc is not None:
            self._write()
        return self.stats()

    def stats(self) -> WriterStats:
        failing = None if self._failing_since is None else time.monotonic() - self._failing_since
        return WriterStats(self._writes, self._failed_writes, failing, self._dirty)

    def reply_for(self, cell_ids: list[str], job_id: str) -> tuple[list[CellOutputs], list[str]]:
        """What a finished job's reply needs from us, in one ask: its outputs, our notices."""
        return self.outputs_of_cells(cell_ids, job_id), self.take_notices()

    def outputs_of_cells(self, cell_ids: list[str], job_id: str = "") -> list[CellOutputs]:
        """The cells' outputs for a job's reply; the file is written first, so a reply about
        a finished job never precedes the file showing it."""
        if self._dirty:
            self._write()
        self._compose_live()
        result = []
        for cell_id in cell_ids:
            index = None if self._doc is None else nb.index_of(self._doc, cell_id)
            run = self._runs.get((job_id, cell_id)) if job_id else None
            if run is not None:
                outputs, count = nb.without_markers(run[0]), run[1]
            elif index is not None and self._doc is not None:
                cell = self._doc.cells[index]
                outputs = nb.without_markers(cell.get("outputs", []))
                count = cell.get("execution_count")
            else:
                outputs, count = self._dropped.get(cell_id, []), None
            result.append(CellOutputs(cell_id, index, outputs, count))
        return result

    # ------------------------------------------------------------ execution (tells)

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
        self._live[cell_id] = _LiveCell(marker=nb.running_marker(position, of, at))
        self._dirty_cells.add(cell_id)
        self._dirty = True
        # Within one flush interval, not at once: a cell that ends sooner is written once,
        # with its result, and one still running shows its Running marker 0.2 s in.
        self._schedule_flush(self._flush_interval)

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
        self._live[cell_id] = _LiveCell(
            marker=nb.marker(f"{nb.RUNNING} (resumed at {nb.clock()})"),
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
            self._schedule_flush()

    def cell_finished(
        self,
        cell_id: str,
        footer: NotebookNode,
        execution_count: int | None = None,
        job_id: str = "",
        last: bool = True,
    ) -> None:
        """A cell ended; `last`: it was its job's last, so its reply is about to need it."""
        live = self._live.pop(cell_id, None)
        self._queued.discard(cell_id)
        outputs = [] if live is None else live.outputs
        count = (
            execution_count
            if live is None or live.execution_count is None
            else (live.execution_count)
        )
        # This run's outputs, for its job's reply: the next job may run the cell again before
        # the reply is read. The list is kept, not copied: no one changes it after this.
        self._runs[(job_id, cell_id)] = (outputs, count)
        while len(self._runs) > _RUNS_KEPT:
            self._runs.popitem(last=False)
        cell = self._code_cell(cell_id)
        if cell is None:
            if live is not None and live.dropped:
                self._dropped[cell_id] = outputs  # already reported while it ran
            else:
                self._dropped[cell_id] = outputs
                self._gone(cell_id)
        else:
            cell["outputs"] = [*outputs, footer]
            cell["execution_count"] = count
            self._dirty_cells.add(cell_id)
        self._dirty = True
        if last:
            self._write_soon()  # the job's reply waits for this write: start it now
        else:
            # With the streaming cadence: a job of many quick cells is not one full rewrite
            # per cell. Within 0.2 s it is on disk.
            self._schedule_flush()

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

    # ------------------------------------------------------------ the document and the disk

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

    # ------------------------------------------------------------ reading the file

    def _load(self, create: bool) -> bool:
        try:
            data, seen = disk_sync.read(self.path)
        except FileNotFoundError:
            if not create:
                raise nb.NotebookError(f"no notebook at {self.path}") from None
            # In memory only: the edit that asked for it writes it, if the edit is valid.
            self._doc = nb.new_notebook()
            self._memory.loaded(self._doc)
            return True
        try:
            doc, upgrade = nb.parse(_text(data))
        except nb.NotebookError:
            seen.close()
            raise
        self._doc = doc
        self._set_seen(seen)
        self._memory.loaded(doc)
        self._after_reading(doc, upgrade)
        return False

    def _after_reading(self, doc: NotebookNode, upgrade: nb.Upgrade) -> None:
        """Ids given and nbformat upgraded, stale markers replaced: written at once."""
        stale = nb.replace_stale_markers(doc, time.time(), keep=self._queued | set(self._live))
        if upgrade.changed or stale:
            self._dirty = True
            self._dirty_cells.update(nb.cell_ids(doc))
            self._write()
        writer_reports.read(self.path, upgrade, stale)

    def _set_seen(self, seen: disk_sync.Seen | None) -> None:
        if self._seen is not None and self._seen is not seen:
            self._seen.close()
        self._seen = seen

    def _sync(self) -> None:
        """Pick up a change someone else made to the file, keeping ours on top of it."""
        look = disk_sync.look(self.path, self._seen)
        if not isinstance(look, disk_sync.Changed):
            self._blocked_reason = None
            if look is disk_sync.GONE:
                self._deleted_on_disk()
            return
        self._take_in(look.data, look.seen, look.same_bytes)

    def _take_in(self, data: bytes, seen: disk_sync.Seen, same_bytes: bool = False) -> None:
        """A file someone else wrote (at the path, or displaced by ours): merge it."""
        if same_bytes:  # touched, not changed
            self._set_seen(seen)
            self._blocked_reason = None
            return
        try:
            disk_doc, upgrade = nb.parse(_text(data))
        except nb.NotebookError as error:
            seen.close()
            # Half-saved or broken by hand: never overwrite it; keep ours in memory.
            self._blocked_reason = f"the file on disk is not a valid notebook right now ({error})"
            return
        self._blocked_reason = None
        if self._deleted:
            self._recreated(disk_doc, upgrade, seen)
        else:
            self._merge(disk_doc, seen)

    def _merge(self, disk_doc: NotebookNode, seen: disk_sync.Seen) -> None:
        assert self._doc is not None
        merged = merge(
            self._doc,
            disk_doc,
            pending_ops=self._pending_ops,
            dirty=self._dirty_cells,
            live=self._live.keys(),
            memory=self._memory,
        )
        for dropped in merged.dropped:
            if dropped.gone:
                self._dropped[dropped.cell_id] = dropped.outputs  # for the job's reply
        self._notices.extend(writer_reports.merged(self.path, merged))
        self._doc = disk_doc
        self._set_seen(seen)
        if merged.restored:
            self._restored.update(dict.fromkeys(merged.restored))
            self._dirty = True
            self._schedule_flush()  # at the streaming cadence: an editor may save again and again

    # ------------------------------------------------------------ a file deleted, or new

    def _deleted_on_disk(self) -> None:
        """The file we knew is gone: nothing of ours goes back there."""
        if self._deleted:
            return
        self._deleted = True
        self._set_seen(None)
        self._pending_ops.clear()
        self._dirty_cells.clear()
        self._restored.clear()
        self._dirty = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._failing_since, self._failures = None, 0  # nothing left to retry
        for live in self._live.values():
            live.dropped = True  # its outputs go to the job's reply only
        self._notices.append(writer_reports.deleted(self.path, len(self._live)))

    def _start_afresh(self) -> None:
        """An edit on a deleted notebook: a new, empty one (the edit writes it)."""
        self._orphan = self._doc
        self._doc = nb.new_notebook()
        self._deleted = False
        self._forget_finished_cells(self._orphan)
        self._memory.loaded(self._doc)
        self._notices = [n for n in self._notices if not writer_reports.is_deleted_notice(n)]

    def _undo_create(self) -> None:
        """The edit that was to create the notebook was refused or not written."""
        self._doc, self._dirty = self._orphan, False
        self._deleted = self._orphan is not None
        self._orphan = None
        self._pending_ops.clear()

    def _recreated(self, doc: NotebookNode, upgrade: nb.Upgrade, seen: disk_sync.Seen) -> None:
        """A new file where a deleted one was: read afresh, nothing of the old one in it."""
        self._forget_finished_cells(self._doc)
        self._doc, self._deleted = doc, False
        self._set_seen(seen)
        self._memory.loaded(doc)
        self._notices.append(writer_reports.created_again(self.path))
        self._after_reading(doc, upgrade)

    def _forget_finished_cells(self, old: NotebookNode | None) -> None:
        """What the output builder knew of cells not running is about the old file."""
        for cell_id in nb.cell_ids(old) if old is not None else []:
            if cell_id not in self._live:
                self._builder.forget(cell_id)

    def _on_look(self) -> None:
        self._watch = None
        if self._doc is None:
            return
        with contextlib.suppress(nb.NotebookError):  # a folder there: the next write says so
            self._sync()
        if self._live or time.monotonic() < self._watch_until:
            self._watch = Timer(_WATCH_EVERY_SEC, self.actor_ref, _Look())

    def _keep_watching(self) -> None:
        self._watch_until = time.monotonic() + _WATCH_FOR_SEC
        if self._watch is None:
            self._watch = Timer(_WATCH_EVERY_SEC, self.actor_ref, _Look())

    # ------------------------------------------------------------ writing

    def _schedule_flush(self, delay: float | None = None) -> None:
        """Write within `delay` (default: one flush interval after the last write)."""
        if self._timer is not None or self._failing_since is not None:
            return
        if delay is None:
            delay = max(0.0, self._last_write + self._flush_interval - time.monotonic())
        self._timer = Timer(delay, self.actor_ref, _FlushDue())

    def _write(self, final: bool = False) -> str | None:
        """Write the document now; return None, or why it could not be written."""
        if self._doc is None:
            return None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self._sync()
        except nb.NotebookError as error:
            self._blocked_reason = str(error)
        if not self._deleted:
            if self._blocked_reason is not None:
                return self._failed(OSError(self._blocked_reason), final)
            try:
                self._replace_file()
            except OSError as error:
                return self._failed(error, final)
        self._pending_ops.clear()
        self._dirty_cells.clear()
        self._dirty = False
        if self._deleted:
            return f"{self.path.name} was deleted on disk"
        self._last_write = time.monotonic()
        self._writes += 1
        if self._failing_since is not None:
            failed_for = time.monotonic() - self._failing_since
            self._failing_since, self._failures = None, 0
            self._notices.append(writer_reports.flush_recovered(self.path, failed_for))
        return None

    def _replace_file(self) -> None:
        """Write the document over the file without losing a save made meanwhile.

        The file is replaced only if it is still the one we last read or wrote (see
        actors/atomic.py). Otherwise a person saved (or deleted it) since our last look: their
        save is merged like any change on disk and we write again.
        """
        for _ in range(_MAX_MERGE_ROUNDS):
            assert self._doc is not None
            self._compose_live()
            stamped = self._memory.stamp(self._doc, self._touched())
            data = nb.serialize(self._doc).encode()
            expected = None if self._seen is None else self._seen.identity
            try:
                done = atomic.replace(self.path, data, expected)
            except atomic.ChangedMeanwhile as changed:
                try:
                    if changed.displaced is not None:
                        # Ours stood at the path for a moment (a copy may come from it); the
                        # save it displaced is back, and merged even if a newer one follows.
                        self._memory.written(stamped)
                        self._take_in(*disk_sync.read_open(changed.displaced, self.path))
                    self._sync()  # take in what is there now, then write again
                except nb.NotebookError as error:
                    raise OSError(errno.EAGAIN, str(error)) from None
                if self._deleted:
                    return
                if self._blocked_reason is not None:
                    raise OSError(errno.EAGAIN, self._blocked_reason) from None
                continue
            self._memory.written(stamped)
            self._set_seen(disk_sync.Seen(done.identity, disk_sync.digest(data), done.fd))
            if stamped.changes or self._live:  # outputs written, or on their way
                self._keep_watching()
            return
        raise OSError(errno.EAGAIN, "the file kept changing while nb wrote it")

    def _touched(self) -> set[str]:
        """Cells whose outputs nb may have changed since its last write."""
        touched = set(self._dirty_cells)
        for op in self._pending_ops:
            if isinstance(op, nb.ClearOutputs) and op.every_cell and self._doc is not None:
                touched.update(nb.cell_ids(self._doc))
            elif op.subject_id is not None:
                touched.add(op.subject_id)
        return touched

    def _failed(self, error: OSError, final: bool) -> str:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        delay = _RETRY_DELAYS[min(self._failures, len(_RETRY_DELAYS) - 1)]
        self._failures += 1
        self._failed_writes += 1
        self._last_error = writer_reports.flush_failed(self.path, error, None if final else delay)
        if not final:
            self._timer = Timer(delay, self.actor_ref, _FlushDue())
        return self._last_error


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise nb.NotebookError(
            f"the file is not UTF-8 text (byte {error.start}); it was left untouched"
        ) from None
