"""WriterActor: the only code that reads or writes a notebook file.

It holds the document in memory. Edits from tools and outputs from the kernel arrive as
messages; it writes atomically (temp file in the same folder, fsync, rename), at once after an
edit or a cell's start and end, and at most once per flush interval while output streams.

Before every read of its document and every write it checks whether someone else changed the
file. If so it reloads and replays its unwritten changes by cell id, so a cell a person added,
moved or edited by hand survives, and so does streamed output. A write that fails keeps
everything in memory, is retried with back-off, and is reported in the next tool reply.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nb_mcp.actors import atomic
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.log import emit
from nb_mcp.actors.outputs import OutputBuilder
from nb_mcp.actors.refs import NotebookRefs
from nb_mcp.actors.timers import Timer
from nb_mcp.supervisor.tree import SupervisedActor, Supervision
from nbformat import NotebookNode

T = TypeVar("T")
_RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
_MAX_MERGE_ROUNDS = 5
_RUNS_KEPT = 64


@dataclass(frozen=True)
class _Stamp:
    """What the file looked like when we last read or wrote it."""

    mtime_ns: int
    size: int
    inode: int
    digest: str


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


class WriterActor(SupervisedActor):
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
        self._stamp: _Stamp | None = None
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
        if self._dirty and self._doc is not None:
            self._write(final=True)

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

    def open(self, create: bool = False) -> OpenResult:
        """Load the notebook (creating an empty one if asked); raise NotebookError if unusable."""
        created = False
        if self._doc is None:
            created = self._load(create)
        else:
            self._sync()
        assert self._doc is not None
        return OpenResult(cells=len(self._doc.cells), created=created)

    def query(self, reader: Callable[[NotebookNode], T]) -> T:
        """Run a pure reader on the current document (after picking up changes on disk)."""
        self.open()
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
                self._doc = None  # a refused edit creates no file
            raise
        self._pending_ops.append(op)
        self._dirty = True
        cell_id = op.subject_id
        if isinstance(op, nb.ClearOutputs):
            self._forget_outputs(None if op.every_cell else op.cell_id)
        error = self._write()
        if created:
            if error is not None:
                self._doc, self._dirty = None, False
                self._pending_ops.clear()
                raise nb.NotebookError(f"cannot create {self.path}: {error}")
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
        notices, self._notices = self._notices, []
        if self._failing_since is not None:
            notices.append(self._failure_notice())
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
            previous = nb.without_markers(cell.get("outputs", []))
            cell["outputs"] = [nb.queued_marker(position, total, job_id, at), *previous]
            self._dirty_cells.add(cell_id)
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
        self._notify_dropped(cell_id, f"the cell {what} while it ran", retyped)

    def _drop(self, cell_id: str, outputs: list[Any], reason: str) -> None:
        self._dropped[cell_id] = outputs
        self._notify_dropped(cell_id, reason)

    def _notify_dropped(self, cell_id: str, reason: str, retyped: bool = False) -> None:
        emit(
            "writer.output_dropped",
            f"output for cell {cell_id} not written to {self.path.name}: {reason}",
            level="warning",
            notebook=str(self.path),
            cell_id=cell_id,
            reason=reason,
        )
        what = "became a markdown or raw cell" if retyped else "was deleted from the file"
        self._notices.append(
            f"cell {cell_id} {what} while it ran; its outputs were not written "
            "(they are in this reply when the job finishes)"
        )

    def _load(self, create: bool) -> bool:
        try:
            text, stamp = self._read_file()
        except FileNotFoundError:
            if not create:
                raise nb.NotebookError(f"no notebook at {self.path}") from None
            # In memory only: the edit that asked for it writes it, if the edit is valid.
            self._doc = nb.new_notebook()
            return True
        doc, upgrade = nb.parse(text)
        self._doc, self._stamp = doc, stamp
        stale = nb.replace_stale_markers(doc, time.time())
        if upgrade.changed or stale:
            self._dirty = True
            self._dirty_cells.update(nb.cell_ids(doc))
            self._write()
        if upgrade.changed:
            emit(
                "notebook.upgraded",
                f"{self.path.name}: gave {upgrade.ids_added} cells ids"
                + (
                    f", upgraded from nbformat {upgrade.from_version} to 4.5"
                    if upgrade.from_version
                    else ""
                ),
                notebook=str(self.path),
                ids_added=upgrade.ids_added,
                from_version=upgrade.from_version or "4.5",
            )
        if stale:
            emit(
                "notebook.stale_markers_replaced",
                f"{self.path.name}: {stale} cells had Running/Queued markers from a server "
                "that stopped",
                notebook=str(self.path),
                cells=stale,
            )
        return False

    def _read_file(self) -> tuple[str, _Stamp]:
        if self.path.is_dir():
            raise nb.NotebookError(f"{self.path} is a directory, not a notebook")
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
                stat = os.fstat(handle.fileno())
        except IsADirectoryError:
            raise nb.NotebookError(f"{self.path} is a directory, not a notebook") from None
        except PermissionError as error:
            raise nb.NotebookError(f"cannot read {self.path}: {error.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise nb.NotebookError(
                f"the file is not UTF-8 text (byte {error.start}); it was left untouched"
            ) from None
        return text, _Stamp(stat.st_mtime_ns, stat.st_size, stat.st_ino, _digest(data))

    def _disk_changed(self) -> tuple[str, _Stamp] | None:
        """The file's text if someone else changed it since our last read or write."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        stamp = self._stamp
        if stamp is not None and (stat.st_mtime_ns, stat.st_size, stat.st_ino) == (
            stamp.mtime_ns,
            stamp.size,
            stamp.inode,
        ):
            return None
        text, new_stamp = self._read_file()
        if stamp is not None and new_stamp.digest == stamp.digest:
            self._stamp = new_stamp  # touched, not changed
            return None
        return text, new_stamp

    def _sync(self) -> None:
        """Pick up a change someone else made to the file, keeping ours on top of it."""
        changed = self._disk_changed()
        if changed is None:
            self._blocked_reason = None
            return
        text, stamp = changed
        try:
            disk_doc, _ = nb.parse(text)
        except nb.NotebookError as error:
            # Half-saved or broken by hand: never overwrite it; keep ours in memory.
            self._blocked_reason = f"the file on disk is not a valid notebook right now ({error})"
            return
        self._blocked_reason = None
        self._merge(disk_doc, stamp)

    def _merge(self, disk_doc: NotebookNode, stamp: _Stamp) -> None:
        assert self._doc is not None
        reapplied = dropped = 0
        for op in self._pending_ops:
            note = op.replay(disk_doc)
            if note is None:
                reapplied += 1
            else:
                dropped += 1
                self._notices.append(note)
                emit(
                    "writer.output_dropped",
                    note,
                    level="warning",
                    notebook=str(self.path),
                    cell_id=getattr(op, "cell_id", None) or "-",
                    reason=note,
                )
        for cell_id in self._dirty_cells:
            ours = nb.cell_by_id(self._doc, cell_id)
            theirs = nb.cell_by_id(disk_doc, cell_id)
            if ours is None or ours["cell_type"] != "code":
                continue
            if theirs is None:
                if cell_id not in self._live:
                    self._drop(cell_id, ours.get("outputs", []), "the cell was deleted on disk")
                    dropped += 1
                continue
            if theirs["cell_type"] == "code":
                theirs["outputs"] = ours["outputs"]
                theirs["execution_count"] = ours.get("execution_count")
                reapplied += 1
            elif cell_id not in self._live:
                self._dropped[cell_id] = ours.get("outputs", [])
                self._notify_dropped(
                    cell_id, "the cell was changed to a markdown or raw cell on disk", True
                )
                dropped += 1
        self._doc, self._stamp = disk_doc, stamp
        emit(
            "writer.external_change_merged",
            f"{self.path.name} changed on disk; reloaded it and re-applied {reapplied} pending "
            f"changes" + (f", {dropped} could not be applied" if dropped else ""),
            notebook=str(self.path),
            reapplied=reapplied,
            dropped=dropped,
        )

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
        if self._blocked_reason is not None:
            return self._failed(OSError(self._blocked_reason), final)
        try:
            self._replace_file()
        except OSError as error:
            return self._failed(error, final)
        self._last_write = time.monotonic()
        self._writes += 1
        self._pending_ops.clear()
        self._dirty_cells.clear()
        self._dirty = False
        if self._failing_since is not None:
            failed_for = time.monotonic() - self._failing_since
            self._failing_since, self._failures = None, 0
            emit(
                "writer.flush_recovered",
                f"{self.path.name} written again after {failed_for:.1f}s of failed writes",
                notebook=str(self.path),
                failed_for_sec=round(failed_for, 3),
            )
            self._notices.append(f"{self.path.name} is written to disk again")
        return None

    def _replace_file(self) -> None:
        """Write the document over the file without losing a save made meanwhile.

        Between our last look at the disk and our rename, a person may save. The atomic
        exchange leaves the file we displaced at hand: if it is not the one we last saw, it is
        that save, so it is merged like any change on disk and we write again.
        """
        for _ in range(_MAX_MERGE_ROUNDS):
            assert self._doc is not None
            self._compose_live()
            data = nb.serialize(self._doc).encode()
            expected = self._stamp
            known = (
                None
                if expected is None
                else atomic.Identity(expected.inode, expected.mtime_ns, expected.size)
            )
            try:
                done = atomic.replace(self.path, data, known)
            except atomic.ChangedMeanwhile:
                self._sync()  # a save landed while we wrote ours: take it in, then again
                if self._blocked_reason is not None:
                    raise OSError(errno.EAGAIN, self._blocked_reason) from None
                continue
            self._stamp = _Stamp(
                done.identity.mtime_ns, done.identity.size, done.identity.inode, _digest(data)
            )
            if done.displaced is None:
                return
            with open(done.displaced, "rb") as theirs_file:
                identity = atomic.Identity.of(os.fstat(theirs_file.fileno()))
                if expected is None or identity == atomic.Identity(
                    expected.inode, expected.mtime_ns, expected.size
                ):
                    _remove(done.displaced)
                    return
                # Someone saved after our last look. Put their save back first, so that a
                # reader sees it gone for no longer than a rename; then merge it, write again.
                restored = atomic.put_back(done.displaced, self.path)
                displaced = theirs_file.read()
            _remove(done.displaced)
            saved = _Stamp(identity.mtime_ns, identity.size, identity.inode, _digest(displaced))
            if restored:
                self._stamp = saved
            try:
                theirs, _ = nb.parse(displaced.decode("utf-8"))
            except (nb.NotebookError, UnicodeDecodeError):
                if restored:  # a broken save is back in place: never write over it
                    raise OSError(
                        errno.EAGAIN,
                        "the file on disk is not a valid notebook right now (a save in progress?)",
                    ) from None
                return  # it is gone and ours stands, as after a plain rename
            self._merge(theirs, saved)
            # ...and write again, now with their save in it.
        raise OSError(errno.EAGAIN, "the file kept changing while nb wrote it")

    def _failed(self, error: OSError, final: bool) -> str:
        reason = _describe(error)
        self._last_error = reason
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        delay = _RETRY_DELAYS[min(self._failures, len(_RETRY_DELAYS) - 1)]
        self._failures += 1
        self._failed_writes += 1
        emit(
            "writer.flush_failed",
            f"could not write {self.path.name}: {reason}; kept in memory"
            + ("" if final else f", retrying in {delay:g}s"),
            level="error",
            notebook=str(self.path),
            error=reason,
            errno=error.errno,
            retry_in_sec=0.0 if final else delay,
        )
        if not final:
            self._timer = Timer(delay, self.actor_ref, _FlushDue())
        return reason

    def _failure_notice(self) -> str:
        assert self._failing_since is not None
        return (
            f"{self.path.name} could not be written for "
            f"{time.monotonic() - self._failing_since:.0f}s ({self._last_error}); nb keeps "
            "its changes in memory and retries (the file on disk is the last good version)"
        )


def _describe(error: OSError) -> str:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full ({error.strerror})"
    if error.errno == errno.EFBIG:
        return f"file size limit reached ({error.strerror})"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"not writable ({error.strerror}: {error.filename or ''})".replace(": )", ")")
    return error.strerror or str(error)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
