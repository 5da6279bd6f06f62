"""Replacing a file so that no reader sees half of it and no concurrent save is lost.

The new content goes to a temp file in the same folder (fsync'd, so a crash never leaves a
file whose name points at unwritten data), which then takes the file's place. The folder is
not fsync'd: that would only make the rename itself durable, at a few ms a write; after a
power cut the file is the previous version or this one, never a mix (as with Jupyter's
own save).

A person's editor saves by renaming its own temp file over the notebook at any moment, and
POSIX has no "rename if the file there is still X". So the swap is done in three steps, back
to back: look at the file at the path; exchange it with ours atomically (renameat2
RENAME_EXCHANGE), which leaves the displaced file at our temp name; look at what was
displaced. A save that landed between the first look and the exchange is found in the second
look and exchanged back at once: it is never overwritten, it is handed to the caller (read it
even if a newer save replaces it at once), and nb's version was at the path for the time
between two system calls (an editor that re-read the file just then has nb's version: the
caller knows it was shown, see write_memory). Those calls are made without releasing the GIL (the
writer shares its process with kernel readers that would otherwise take it for a switch
interval, 5 ms, between any two of them): under load that gap was long enough for a
re-reading editor to read nb's version and save on top of it. A file created where there was
none uses RENAME_NOREPLACE, so it never replaces one that appeared meanwhile. Where the
kernel or filesystem cannot exchange, a plain rename after the look is the fallback.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_STATX_BASIC_STATS = 0x7FF
_STATX_SIZE = 256  # struct statx is 256 bytes on every architecture (linux/stat.h)
_NOT_SUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP}
# PyDLL: these calls keep the GIL, so no other thread of ours runs between the look and the
# exchange (see the module docstring).
_libc = ctypes.PyDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
_statx = getattr(_libc, "statx", None)
if _renameat2 is not None:
    _renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    _renameat2.restype = ctypes.c_int
_libc_open = _libc.open
_libc_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc_open.restype = ctypes.c_int
if _statx is not None:
    _statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
    _statx.restype = ctypes.c_int


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
    """The file at the path is not the expected one (a save, or it was deleted): nothing of
    ours is in place. Read what is there now, then write again.

    `displaced`: a save that landed during the swap, open (the caller reads and closes it);
    ours stood at the path meanwhile, for microseconds.
    """

    def __init__(self, reason: str, displaced: int | None = None) -> None:
        super().__init__(reason)
        self.displaced = displaced


@dataclass(frozen=True)
class Replaced:
    identity: Identity  # of the file now at the path (ours)
    fd: int  # open on that file; the caller owns it (while open, its inode is not reused)


def replace(
    path: Path, data: bytes | Sequence[bytes], expected: Identity | None = None
) -> Replaced:
    """Put `data` (bytes, or pieces written one after the other) at `path` if the file there
    is `expected` (None: if there is no file).

    Raise ChangedMeanwhile, with nothing of ours left in place, if the file at `path` is
    another one, is gone, or (with `expected` None) appeared. The file's mode is kept.
    """
    folder = path.parent
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".nbtmp", dir=folder)
    placed = False
    try:
        os.fchmod(fd, mode)
        for piece in [data] if isinstance(data, bytes) else data:
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
        # Our identity before the rename (a rename keeps inode and mtime).
        identity = Identity.of(os.fstat(fd))
        # Kept open read-only: a file open for writing stops a filesystem going read-only.
        written, fd = fd, os.open(temp, os.O_RDONLY)
        os.close(written)
        outcome, displaced = _place(os.fsencode(temp), os.fsencode(path), expected)
        placed = outcome == _PLACED
        if not placed:
            raise ChangedMeanwhile(f"{path}: {outcome}", displaced)
        return Replaced(identity, fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        if not placed:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        raise


_PLACED = "placed"


def _place(temp: bytes, path: bytes, expected: Identity | None) -> tuple[str, int | None]:
    """Move the temp file to the path under the rule above: ("placed", None), or why not and
    the save displaced meanwhile, open."""
    if expected is None:
        return _create(temp, path), None
    if _renameat2 is None or _statx is None:
        return _replace_plainly(temp, path, expected), None
    buffer = ctypes.create_string_buffer(_STATX_SIZE)
    # From here to the put-back: no GIL release (PyDLL calls), nothing but system calls.
    there = _identity_at(path, buffer)
    if there is None:
        return "deleted", None
    if there != expected:
        return "changed", None
    if _renameat2(_AT_FDCWD, temp, _AT_FDCWD, path, _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        if code == errno.ENOENT:
            return "deleted", None
        if code in _NOT_SUPPORTED or code == errno.EXDEV:
            return _replace_plainly(temp, path, expected), None
        raise OSError(code, os.strerror(code), os.fsdecode(path))
    if _identity_at(temp, buffer) == expected:
        _discard(temp)  # the previous version, displaced
        return _PLACED, None
    # A save landed between the look and the exchange: it is at `temp` now. Keep hold of it,
    # put it back.
    theirs = _open(temp)
    if _renameat2(_AT_FDCWD, temp, _AT_FDCWD, path, _RENAME_EXCHANGE) == 0:
        _discard(temp)  # ours
        return "changed (a save landed during the swap and was put back)", theirs
    # The path vanished since the exchange (deleted right after that save): the save goes
    # back only where nothing is (what a person put there since is newer).
    if _renameat2(_AT_FDCWD, temp, _AT_FDCWD, path, _RENAME_NOREPLACE) != 0:
        _discard(temp)
    return "changed (a save landed during the swap)", theirs


def _open(name: bytes) -> int | None:
    """Open read-only, keeping the GIL (os.open would let other threads run first)."""
    fd = _libc_open(name, os.O_RDONLY | os.O_CLOEXEC)
    return None if fd < 0 else fd


def _discard(name: bytes) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)


def _create(temp: bytes, path: bytes) -> str:
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, temp, _AT_FDCWD, path, _RENAME_NOREPLACE) == 0:
            return _PLACED
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            return "appeared"
        if code not in _NOT_SUPPORTED:
            raise OSError(code, os.strerror(code), os.fsdecode(path))
    try:
        os.link(temp, path)  # fails if anything is there, like RENAME_NOREPLACE
    except FileExistsError:
        return "appeared"
    _discard(temp)
    return _PLACED


def _replace_plainly(temp: bytes, path: bytes, expected: Identity) -> str:
    """No exchange here: look, then rename (a save in between is lost; nothing better exists)."""
    try:
        there = Identity.of(os.stat(path))
    except FileNotFoundError:
        return "deleted"
    if there != expected:
        return "changed"
    os.replace(temp, path)
    return _PLACED


def _identity_at(path: bytes, buffer: ctypes.Array[ctypes.c_char]) -> Identity | None:
    assert _statx is not None
    if _statx(_AT_FDCWD, path, 0, _STATX_BASIC_STATS, buffer) != 0:
        code = ctypes.get_errno()
        if code in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise OSError(code, os.strerror(code), os.fsdecode(path))
    inode, size = struct.unpack_from("=QQ", buffer, 32)
    seconds, nanoseconds = struct.unpack_from("=qI", buffer, 112)
    return Identity(inode, seconds * 1_000_000_000 + nanoseconds, size)
