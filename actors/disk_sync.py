"""What is at a notebook's path now, compared with the file the writer last read or wrote.

The writer looks before every read of its document and every write. A stat is enough when
nothing happened; a changed stat costs one read and a hash, so a file only touched (same
bytes) is not taken for a change. The file last seen is kept open: while it is, its inode
number cannot be given to a new file, so "same inode, mtime and size" really means "the same
file" (otherwise an editor's next save, created after ours was unlinked, could get our inode
back and, written within one clock tick at the same size, pass for the file we wrote).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nb_mcp.actors import notebook as nb
from nb_mcp.actors.atomic import Identity


class Seen:
    """A file the writer read or wrote: its identity, content hash, and an open descriptor.

    The hash of a file nb wrote is worked out only if a changed stat asks for it
    (`digest_of`: from the pieces nb wrote, which do not change); most writes never need it.
    """

    def __init__(self, identity: Identity, digest: str | Callable[[], str], fd: int) -> None:
        self.identity = identity
        self._digest = digest
        self._fd: int | None = fd

    @property
    def digest(self) -> str:
        if not isinstance(self._digest, str):
            self._digest = self._digest()
        return self._digest

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def __repr__(self) -> str:
        return f"Seen({self.identity}, {self.digest[:8]})"


@dataclass
class Changed:
    """Another file, or other bytes, at the path: the bytes, and the file they came from."""

    data: bytes
    seen: Seen
    same_bytes: bool  # touched (or replaced by an identical copy), not changed


class _Nothing:
    def __repr__(self) -> str:
        return "UNCHANGED"


class _Gone:
    def __repr__(self) -> str:
        return "GONE"


UNCHANGED = _Nothing()  # the file last seen is there (or there was none and there is none)
GONE = _Gone()  # the file last seen is no longer at the path, and nothing else is
Look = Changed | _Nothing | _Gone


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def read(path: Path) -> tuple[bytes, Seen]:
    """The file's bytes and a Seen for it; FileNotFoundError if there is none.

    NotebookError when what is there cannot be a notebook (a folder, unreadable).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except IsADirectoryError:
        raise nb.NotebookError(f"{path} is a directory, not a notebook") from None
    except PermissionError as error:
        raise nb.NotebookError(f"cannot read {path}: {error.strerror}") from None
    return read_open(fd, path)


def read_open(fd: int, path: Path) -> tuple[bytes, Seen]:
    """The bytes of an open file (from its start) and a Seen that takes over `fd`."""
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise nb.NotebookError(f"{path} is a directory, not a notebook")
        chunks, offset = [], 0
        # Looked at before reading: a change made while we read shows at the next look.
        while chunk := os.pread(fd, max(status.st_size - offset, 0) + (1 << 16), offset):
            chunks.append(chunk)
            offset += len(chunk)
        data = b"".join(chunks)
    except BaseException:
        os.close(fd)
        raise
    return data, Seen(Identity.of(status), digest(data), fd)


def look(path: Path, seen: Seen | None) -> Look:
    """Whether the file at `path` is still `seen` (None: no file was there)."""
    try:
        now = Identity.of(os.stat(path))
    except FileNotFoundError:
        return UNCHANGED if seen is None else GONE
    if seen is not None and now == seen.identity:
        return UNCHANGED
    try:
        data, fresh = read(path)
    except FileNotFoundError:  # deleted between the stat and the open
        return UNCHANGED if seen is None else GONE
    return Changed(data, fresh, seen is not None and fresh.digest == seen.digest)
