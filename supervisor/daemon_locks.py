"""The two locks that keep one daemon per state dir (filelock: flock on POSIX).

`daemon.lock` is held by the daemon for its whole life, so a second `nb serve` sees it taken
and says so. `daemon.start.lock` is held by a front while it starts a daemon, so two fronts
connecting at once start one daemon, not two. Both files are 0600 in the 0700 state dir.
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout


def hold_daemon_lock(state_dir: Path) -> FileLock | None:
    """Take the daemon's lock for as long as the returned lock is held; None if another
    process holds it (a daemon already runs)."""
    lock = FileLock(state_dir / "daemon.lock", mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock


def starting_lock(state_dir: Path) -> FileLock:
    """Held (`with`) while a front starts a daemon: blocks until no other front is starting one."""
    return FileLock(state_dir / "daemon.start.lock", mode=0o600)
