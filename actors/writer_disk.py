"""The writer's side that faces the disk: reading the file, noticing someone else's change and
merging it, a file deleted or created anew, and writing (atomically, retried on failure).

A mixin of WriterActor (actors/writer.py), which owns the state it uses (see its __init__).
The file is composed from per-cell pieces (actors/notebook_json.py): a write re-serialises
only the cells that changed since the last one. The check for someone else's change is a stat
when nothing happened; the file is hashed only when its stat changed (actors/disk_sync.py).
"""

from __future__ import annotations

import contextlib
import errno

from nb_mcp.actors import atomic, disk_sync, writer_reports
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.merge import merge
from nbformat import NotebookNode

_MAX_MERGE_ROUNDS = 5


class DiskSide:
    # ------------------------------------------------------------ reading the file

    def _load(self, create: bool) -> bool:
        try:
            data, seen = disk_sync.read(self.path)
        except FileNotFoundError:
            if not create:
                raise nb.NotebookError(f"no notebook at {self.path}") from None
            # In memory only: the edit that asked for it writes it, if the edit is valid.
            self._set_doc(nb.new_notebook())
            return True
        try:
            doc, upgrade = nb.parse(_text(data))
        except nb.NotebookError:
            seen.close()
            raise
        self._set_doc(doc)
        self._set_seen(seen)
        self._after_reading(doc, upgrade)
        return False

    def _set_doc(self, doc: NotebookNode) -> None:
        """A document read from scratch (or a new one): nothing of the old one applies."""
        self._doc = doc
        self._memory.loaded(doc)
        self._composer.forget()

    def _after_reading(self, doc: NotebookNode, upgrade: nb.Upgrade) -> None:
        """Ids given and nbformat upgraded, stale markers replaced: written at once."""
        keep = self._queued | set(self._live)
        stale = nb.replace_stale_markers(doc, self._flush.clock.time(), keep=keep)
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
        self._notices.extend(writer_reports.merged(self.path, merged))
        self._doc = disk_doc  # new cell objects: the composer serialises them afresh
        self._set_seen(seen)
        if merged.restored:
            self._restored.update(dict.fromkeys(merged.restored))
            self._dirty = True
            self._flush.schedule()  # at the streaming cadence: an editor may save again and again

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
        self._composer.forget()
        self._flush.give_up()  # nothing left to retry
        for live in self._live.values():
            live.dropped = True  # its outputs go to the job's reply only
        self._notices.append(writer_reports.deleted(self.path, len(self._live)))

    def _start_afresh(self) -> None:
        """An edit on a deleted notebook: a new, empty one (the edit writes it)."""
        self._orphan = self._doc
        self._deleted = False
        self._set_doc(nb.new_notebook())
        self._forget_finished_cells(self._orphan)
        self._notices = [n for n in self._notices if not writer_reports.is_deleted_notice(n)]

    def _undo_create(self) -> None:
        """The edit that was to create the notebook was refused or not written."""
        self._doc, self._dirty = self._orphan, False
        self._composer.forget()
        self._deleted = self._orphan is not None
        self._orphan = None
        self._pending_ops.clear()

    def _recreated(self, doc: NotebookNode, upgrade: nb.Upgrade, seen: disk_sync.Seen) -> None:
        """A new file where a deleted one was: read afresh, nothing of the old one in it."""
        self._forget_finished_cells(self._doc)
        self._deleted = False
        self._set_doc(doc)
        self._set_seen(seen)
        self._notices.append(writer_reports.created_again(self.path))
        self._after_reading(doc, upgrade)

    def _forget_finished_cells(self, old: NotebookNode | None) -> None:
        """What the output builder knew of cells not running is about the old file."""
        for cell_id in nb.cell_ids(old) if old is not None else []:
            if cell_id not in self._live:
                self._builder.forget(cell_id)

    def _on_look(self) -> None:
        if self._doc is not None:
            with contextlib.suppress(nb.NotebookError):  # a folder there: the next write says
                self._sync()
        self._flush.looked(running=bool(self._live))

    # ------------------------------------------------------------ writing

    def _write(self, final: bool = False) -> str | None:
        """Write the document now; return None, or why it could not be written."""
        if self._doc is None:
            return None
        self._flush.cancel()
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
        self._writes += 1
        failed_for = self._flush.wrote(self._written_size)
        if failed_for is not None:
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
            touched = self._touched()
            stamped = self._memory.stamp(self._doc, touched)
            composed = self._composer.compose(self._doc, touched | self._live.keys())
            expected = None if self._seen is None else self._seen.identity
            try:
                done = atomic.replace(self.path, composed.pieces, expected)
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
            self._set_seen(disk_sync.Seen(done.identity, composed.digest, done.fd))
            self._written_size = composed.size
            if stamped.changes or self._live:  # outputs written, or on their way
                self._flush.keep_watching()
            return
        raise OSError(errno.EAGAIN, "the file kept changing while nb wrote it")

    def _touched(self) -> set[str]:
        """Cells nb may have changed in place since its last write."""
        touched = set(self._dirty_cells)
        for op in self._pending_ops:
            if isinstance(op, nb.ClearOutputs) and op.every_cell and self._doc is not None:
                touched.update(nb.cell_ids(self._doc))
            elif op.subject_id is not None:
                touched.add(op.subject_id)
        return touched

    def _failed(self, error: OSError, final: bool) -> str:
        self._failed_writes += 1
        delay = self._flush.failed(final)
        self._last_error = writer_reports.flush_failed(self.path, error, None if final else delay)
        return self._last_error


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise nb.NotebookError(
            f"the file is not UTF-8 text (byte {error.start}); it was left untouched"
        ) from None
