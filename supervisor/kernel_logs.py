"""Kernels' own log files (the state dir's kernels/<id>.log): which of them may go.

A kernel's stdout and stderr go to its log for as long as it runs, and so do those of the
processes its cells start. A log may be removed once no process holds it open any more. That
test is exact whoever owns the kernel (this daemon, another one, an `nb run`, a kernel taken
over from a killed daemon, one whose server was killed), and it covers a kernel being started:
the server holds the log open while it starts the kernel process. Records are not enough: a
kernel whose server was killed still has a record naming a server that is gone.
"""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")


def stopped_kernel_logs(state_dir: Path) -> list[Path]:
    """The logs in the state dir that no running process writes to."""
    logs = sorted((state_dir / "kernels").glob("*.log"))
    if not logs or not (_PROC / "self" / "fd").is_dir():
        return []  # no way to tell a running kernel's log apart: remove nothing
    in_use = _open_by_any_process({str(log.resolve()) for log in logs})
    return [log for log in logs if str(log.resolve()) not in in_use]


def remove_stopped_kernel_logs(state_dir: Path) -> list[Path]:
    """Remove the logs of kernels that no longer run; return those removed."""
    removed = []
    for log in stopped_kernel_logs(state_dir):
        try:
            log.unlink()
        except FileNotFoundError:
            continue  # another cleanup got there first
        removed.append(log)
    return removed


def _open_by_any_process(paths: set[str]) -> set[str]:
    """Which of `paths` some process has open (among the processes we may look into: ours)."""
    found: set[str] = set()
    for process in os.scandir(_PROC):
        if not process.name.isdigit():
            continue
        try:
            descriptors = os.scandir(f"{process.path}/fd")
        except OSError:  # gone meanwhile, or another user's
            continue
        with descriptors:
            for descriptor in descriptors:
                try:
                    target = os.readlink(descriptor.path)
                except OSError:
                    continue
                if target in paths:
                    found.add(target)
    return found
