"""Replacing a file so that no reader sees half of it and no concurrent save is lost.

The new content goes to a temp file in the same folder (fsync'd, so a crash never leaves a
file whose name points at unwritten data), which then takes the file's place. The folder is
not fsync'd: that would only make the rename itself durable, at a few ms a write; after a
power cut the file is the previous version or this one, never a mix (as with Jupyter's
own save). Where the kernel and filesystem allow it, the two are exchanged atomically
(renameat2 RENAME_EXCHANGE): the file that was displaced is still there to look at, so a save
someone made between our last look at the disk and our rename is not silently overwritten —
the caller sees it, merges it, and writes again. Elsewhere a plain rename is the fallback.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
_NOT_SUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP, errno.ENOENT}


@dataclass(frozen=True)
class Identity:
    """Which file is at a path: a new save has a new inode or mtime or size."""

    inode: int
    mtime_ns: int
    size: int

    @classmethod
    def of(cls, stat: os.stat_result) -> Identity:
        return cls(stat.st_ino, stat.st_mtime_ns, stat.st_size)


class ChangedMeanwhile(Exception):
    """The file changed while we prepared its replacement; nothing was replaced."""


@dataclass(frozen=True)
class Replaced:
    identity: Identity  # of the file now at the path (ours)
    displaced: Path | None  # where the file that was there went (the caller removes it)


def replace(path: Path, data: bytes, expected: Identity | None = None) -> Replaced:
    """Put `data` at `path`, keeping the file's mode; return what is there now and what was.

    With `expected`, raise ChangedMeanwhile instead if the file at `path` is no longer that
    one once ours is ready (writing and fsync take milliseconds; a save may land then).
    """
    folder = path.parent
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".nbtmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # Our identity before the rename (a rename keeps inode and mtime): looking after it
        # could take a save that landed in between for ours.
        identity = Identity.of(os.stat(temp))
        if expected is not None and _identity_at(path) not in (expected, None):
            raise ChangedMeanwhile(str(path))
        displaced = Path(temp) if _exchange(Path(temp), path) else None
        if displaced is None:
            os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return Replaced(identity, displaced)


def _identity_at(path: Path) -> Identity | None:
    try:
        return Identity.of(os.stat(path))
    except FileNotFoundError:
        return None


def put_back(displaced: Path, path: Path) -> bool:
    """Swap the displaced file back into place (ours goes to `displaced`); False if we cannot."""
    try:
        return _exchange(displaced, path)
    except OSError:
        return False


def _exchange(temp: Path, path: Path) -> bool:
    if _renameat2 is None:
        return False
    result = _renameat2(
        _AT_FDCWD, os.fsencode(temp), _AT_FDCWD, os.fsencode(path), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in _NOT_SUPPORTED:  # no file there yet, or a filesystem that cannot exchange
        return False
    raise OSError(code, os.strerror(code), str(path))
