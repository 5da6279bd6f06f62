"""What nb remembers of its own writes, to merge a save made from an older copy correctly.

Pure: no I/O. A person's save replaces the whole file with their editor's copy, and that copy
may be older than what nb wrote since: an editor that loaded the notebook before nb ran its
cells and saves it afterwards puts back the old outputs; an editor that read the file at the
instant nb's version stood in for a save (see actors/atomic.py) lacks that save. Nothing in the
file says that this was not a person clearing outputs or deleting cells on purpose. So:

- every write carries a revision mark in the notebook's metadata (`metadata.nb.revision`),
  which editors keep when they save. A save carrying mark N was made from a copy of nb's write
  N; no mark, or a mark from another nb process, means a copy older than anything this writer
  wrote.
- for the last few writes, nb keeps the list of cells it wrote (ids, types, source hashes).
  A save made from one of them is merged three ways: what the person changed since that copy
  wins, what nb changed since (cells it added, deleted or edited, a save it merged) stays.
- for each code cell, nb keeps when it last wrote its outputs and the fingerprints of the
  versions it wrote or read. nb's outputs written after the copy was made were never in it,
  so the save cannot have removed them on purpose: they go back, as long as the cell is an old
  version of itself (one of nb's, or one carrying nb's markers) with the same source. A cell
  whose source the person edited, or that holds outputs nb never had (run in the person's own
  kernel), keeps the person's version, and that is reported. Outputs written at or before the
  copy's mark were in it: a save that differs there is a person's decision (cleared on
  purpose), and stands.
"""

from __future__ import annotations

import enum
import hashlib
import json
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nb_mcp.actors import notebook as nb

METADATA_KEY = "nb"
REVISION_KEY = "revision"
BEFORE = -1  # "before any write of this writer"
_VERSIONS_KEPT = 8  # per cell, besides the first (nb's own versions carry its markers)
_LISTS_KEPT = 32  # distinct cell lists of recent writes (a streaming run shares one)


class Verdict(enum.Enum):
    SAME = "same"  # the save has nb's outputs for the cell
    THEIRS = "theirs"  # the person's version stands (nb has nothing newer they did not see)
    RESTORE = "restore"  # an old copy of the cell: nb's outputs go back in
    SOURCE_EDITED = "source edited"  # an old copy whose source the person edited: theirs stands
    OTHER_OUTPUTS = "other outputs"  # an old copy with outputs nb never had: theirs stands


@dataclass(frozen=True)
class Snapshot:
    """The cells of one write: (id, cell type, source hash), in order."""

    cells: tuple[tuple[str, str, str], ...]

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> Snapshot:
        return cls(tuple(content_of(cell) for cell in doc.get("cells", [])))


@dataclass
class _Written:
    """Writes first..last all had these cells; `touched`: when it was last written or used."""

    first: int
    last: int
    snapshot: Snapshot
    touched: int


@dataclass
class _Cell:
    _fingerprint: str  # of the outputs now on disk, as nb last wrote or read them
    since: int  # the revision that wrote them; BEFORE if they were read from the file
    _first: str = ""  # the first version nb saw (the one an editor most often still has)
    earlier: OrderedDict[str, None] = field(default_factory=OrderedDict)
    # Read from the file and not fingerprinted yet: (outputs, execution count) as read. Opening
    # a 50 MB notebook parses it once; a cell's fingerprint is worked out when first needed.
    # nb never changes outputs read from the file in place (it assigns new lists), so these
    # still are what was read.
    unread: tuple[list[Any], Any] | None = None

    @classmethod
    def read(cls, cell: Mapping[str, Any]) -> _Cell:
        return cls("", BEFORE, unread=(list(cell.get("outputs", [])), cell.get("execution_count")))

    @property
    def fingerprint(self) -> str:
        if self.unread is not None:
            outputs, count = self.unread
            self._fingerprint = self._first = fingerprint(
                {"outputs": outputs, "execution_count": count}
            )
            self.unread = None
        return self._fingerprint

    @property
    def first(self) -> str:
        return self._first if self.unread is None else self.fingerprint

    def knows(self, fingerprint: str) -> bool:
        return fingerprint in (self.fingerprint, self.first) or fingerprint in self.earlier

    def moved_on(self, fingerprint: str, since: int) -> None:
        current = self.fingerprint
        self.earlier[current] = None
        self.earlier.move_to_end(current)
        while len(self.earlier) > _VERSIONS_KEPT:
            self.earlier.popitem(last=False)
        self._fingerprint, self.since = fingerprint, since


@dataclass(frozen=True)
class Stamped:
    """A write about to happen: its revision, its cells, whose outputs it changes."""

    revision: int
    snapshot: Snapshot
    changes: tuple[tuple[str, str], ...]  # (cell id, fingerprint)


class WriteMemory:
    def __init__(self, instance: str | None = None) -> None:
        self._instance = instance or secrets.token_hex(4)
        self._revision = 0
        self._cells: dict[str, _Cell] = {}
        self._writes: list[_Written] = []
        self._clock = 0

    # ------------------------------------------------------------ the file's versions

    def loaded(self, doc: Mapping[str, Any]) -> None:
        """A document read from the file from scratch: every version in it is the file's."""
        self._writes = []
        self._cells = {cell["id"]: _Cell.read(cell) for cell in _code_cells(doc)}

    def adopt(self, cell_id: str, cell: Mapping[str, Any]) -> None:
        """The file's version of the cell stands (a person's, or nb had nothing newer)."""
        print_ = fingerprint(cell)
        known = self._cells.get(cell_id)
        if known is None:
            self._cells[cell_id] = _Cell(print_, BEFORE, _first=print_)
        elif known.fingerprint != print_:
            known.moved_on(print_, BEFORE)

    def keep_only(self, cell_ids: Iterable[str]) -> None:
        """Forget cells no longer in the document (memory stays the document's size)."""
        wanted = set(cell_ids)
        for cell_id in [c for c in self._cells if c not in wanted]:
            del self._cells[cell_id]

    # ------------------------------------------------------------ writing

    def stamp(self, doc: Any, touched: Iterable[str]) -> Stamped:
        """Before serializing `doc`: mark it with the next revision, and find which of the
        `touched` cells' outputs differ from what is on disk."""
        by_id = {cell["id"]: cell for cell in _code_cells(doc)}
        changes = []
        for cell_id in touched:
            cell = by_id.get(cell_id)
            if cell is None or _in_progress(cell):
                continue  # a running cell's versions carry nb's markers: no need to hash each
            print_ = fingerprint(cell)
            known = self._cells.get(cell_id)
            if known is None and print_ == _EMPTY:
                continue  # a new cell without outputs: nothing a stale copy could take away
            if known is None or known.fingerprint != print_:
                changes.append((cell_id, print_))
        revision = self._revision + 1
        metadata = doc.setdefault("metadata", {})
        if not isinstance(metadata.get(METADATA_KEY), dict):
            metadata[METADATA_KEY] = {}
        metadata[METADATA_KEY][REVISION_KEY] = f"{self._instance}-{revision}"
        return Stamped(revision, Snapshot.of(doc), tuple(changes))

    def written(self, stamped: Stamped) -> None:
        """The stamped version is (or was, for a moment) the file: a copy may come from it."""
        self._revision = max(self._revision, stamped.revision)
        self._clock += 1
        latest = self._writes[-1] if self._writes else None
        if latest is not None and latest.snapshot == stamped.snapshot:
            latest.last, latest.touched = stamped.revision, self._clock
        else:
            self._writes.append(
                _Written(stamped.revision, stamped.revision, stamped.snapshot, self._clock)
            )
        if len(self._writes) > _LISTS_KEPT:
            self._writes.remove(min(self._writes, key=lambda written: written.touched))
        for cell_id, print_ in stamped.changes:
            known = self._cells.get(cell_id)
            if known is None:
                self._cells[cell_id] = _Cell(print_, stamped.revision, _first=print_)
            else:
                known.moved_on(print_, stamped.revision)

    # ------------------------------------------------------------ judging a save

    def base_of(self, doc: Mapping[str, Any]) -> int:
        """The revision the saved copy was made from (BEFORE if not from one of ours)."""
        ours = doc.get("metadata", {}).get(METADATA_KEY)
        mark = ours.get(REVISION_KEY) if isinstance(ours, Mapping) else None
        if not isinstance(mark, str):
            return BEFORE
        instance, _, revision = mark.rpartition("-")
        if instance != self._instance or not revision.isdigit():
            return BEFORE
        return int(revision)

    def snapshot(self, revision: int) -> Snapshot | None:
        """The cells of that write, if nb still has them (kept while saves refer to them)."""
        for written in reversed(self._writes):
            if written.first <= revision <= written.last:
                self._clock += 1
                written.touched = self._clock  # an editor copies from it: it may again
                return written.snapshot
        return None

    def judge(
        self,
        cell_id: str,
        ours: Mapping[str, Any],
        theirs: Mapping[str, Any],
        base: int,
        dirty: bool,
    ) -> Verdict:
        """What to do with a code cell in both nb's document (`ours`) and a save (`theirs`).

        `dirty`: nb changed the cell's outputs since its last write (no copy has them yet).
        """
        known = self._cells.get(cell_id)
        working = _in_progress(ours)
        their_print = fingerprint(theirs)
        fresh = dirty or working or known is None
        our_print = fingerprint(ours) if fresh else known.fingerprint
        if their_print == our_print:
            return Verdict.SAME
        if working:
            return Verdict.RESTORE  # queued or running: nb is working on this cell now
        unseen = dirty or (known is not None and known.since > base)
        if not unseen:
            return Verdict.THEIRS
        if theirs.get("source") != ours.get("source"):
            return Verdict.SOURCE_EDITED
        if known is not None and known.knows(their_print):
            return Verdict.RESTORE
        if any(nb.is_marker(output) for output in theirs.get("outputs", [])):
            return Verdict.RESTORE  # one of nb's own versions, older than the ones it keeps
        return Verdict.OTHER_OUTPUTS


def content_of(cell: Mapping[str, Any]) -> tuple[str, str, str]:
    """A cell's id, type and source hash: what a three-way merge compares."""
    source = cell.get("source", "")
    text = "".join(source) if isinstance(source, list) else str(source)
    digest = hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
    return str(cell.get("id")), str(cell.get("cell_type")), digest


def fingerprint(cell: Mapping[str, Any]) -> str:
    """Of a code cell's outputs and execution count, the same in memory and read back."""
    outputs = [_plain(output) for output in cell.get("outputs", [])]
    text = json.dumps(
        [outputs, cell.get("execution_count")],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _plain(output: Mapping[str, Any]) -> dict[str, Any]:
    """An output as nbformat gives it back after a save: multi-line values joined."""
    plain = dict(output)
    if isinstance(plain.get("text"), list):
        plain["text"] = "".join(plain["text"])
    data = plain.get("data")
    if isinstance(data, Mapping):
        plain["data"] = {
            mime: "".join(value)
            if isinstance(value, list)
            and not _is_json_mime(mime)
            and all(isinstance(line, str) for line in value)
            else value
            for mime, value in data.items()
        }
    return plain


def _is_json_mime(mime: str) -> bool:
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


def _in_progress(cell: Mapping[str, Any]) -> bool:
    """Running or Queued: nb pins that marker first while it works on the cell."""
    outputs = cell.get("outputs") or []
    return bool(outputs) and nb.is_pending_marker(outputs[0])


def _code_cells(doc: Mapping[str, Any]) -> list[Any]:
    return [cell for cell in doc.get("cells", []) if cell.get("cell_type") == "code"]


_EMPTY = fingerprint({"outputs": [], "execution_count": None})
