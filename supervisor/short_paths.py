"""Unix socket paths short enough to bind: a socket path holds at most 107 bytes, and a deep
state dir would pass that. Such sockets go in a short folder of their own instead, private to
this user (0700, and refused if someone else made it first)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

MAX_SOCKET_PATH = 100  # below the 107-byte limit, with room for a suffix


class NotPrivate(OSError):
    """The short folder exists but belongs to another user: no socket of ours goes there."""


def private_folder(state_dir: Path) -> Path:
    """The short folder for `state_dir`'s sockets (one per state dir), made if need be."""
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"nb-{os.getuid()}" / digest
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for level in (folder.parent, folder):
        if level.stat().st_uid != os.getuid():
            raise NotPrivate(f"{level} belongs to another user; cannot put sockets there")
        os.chmod(level, 0o700)
    return folder
