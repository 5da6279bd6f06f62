"""Processes nb did not start itself, or no longer holds a handle on: who they are, whether they
still run, and how to stop one (psutil, not /proc parsing).

A pid alone is not an identity: the kernel a killed daemon left behind may be gone and its
pid reused by now. Records therefore hold the process's start time beside its pid
(`psutil.Process.create_time()`); records written by nb before 0.2 hold it as clock ticks since
boot (`start_ticks`), which `same_process_alive` still understands.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

import psutil

# Two start times of the same process, read twice, agree to the clock tick (10 ms); a
# different process on the same pid started at least that much later.
_SAME_START = 0.005
_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def process_started(pid: int) -> float | None:
    """The process's start time (seconds since the epoch), None if there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def recorded_start(record: Mapping[str, Any], prefix: str = "") -> float | int | None:
    """The start time a record holds for its process (`start_time`, or the `start_ticks` of
    records from earlier versions); `prefix` picks another process's, e.g. "server_"."""
    started = record.get(f"{prefix}start_time")
    if isinstance(started, int | float) and not isinstance(started, bool):
        return float(started)
    ticks = record.get(f"{prefix}start_ticks")
    return ticks if isinstance(ticks, int) and not isinstance(ticks, bool) else None


def running(pid: int, started: float | int | None = None) -> psutil.Process | None:
    """The process if `pid` runs (a zombie does not) and is the one that started at `started`
    (a float: seconds since the epoch; an int: clock ticks since boot, as older records hold)."""
    try:
        process = psutil.Process(pid)
        if process.status() in _GONE:
            return None
        if started is not None and abs(process.create_time() - _as_epoch(started)) > _SAME_START:
            return None  # the pid was reused
    except psutil.Error:
        return None
    return process


def same_process_alive(pid: int, started: float | int | None = None) -> bool:
    """True if `pid` runs and is the process recorded, not a reuse of its pid."""
    return running(pid, started) is not None


def still_running(process: psutil.Process) -> bool:
    """Whether a process found earlier still runs (same identity; a zombie is dead)."""
    try:
        return process.is_running() and process.status() not in _GONE
    except psutil.Error:
        return False


def send_to_group(pid: int, pgid: int | None, signum: int) -> None:
    """Signal the process's group if it leads one (a kernel is started in a session of its
    own, so what its cells spawned goes too), else the process alone: never a group that
    holds other processes, e.g. the server's."""
    with contextlib.suppress(OSError):
        if pgid and pgid == pid:
            os.killpg(pgid, signum)
        else:
            os.kill(pid, signum)


def stop_group(
    pid: int,
    pgid: int | None,
    *,
    grace: float,
    started: float | int | None = None,
    wait: float = 5.0,
) -> None:
    """Stop a kernel nb holds no handle on: SIGTERM, and SIGKILL if it is still there after
    `grace` seconds; return once it is gone (or after `wait` more seconds). A process that is
    not the one recorded (its pid reused) is left alone."""
    process = running(pid, started)
    if process is None:
        return
    send_to_group(pid, pgid, signal.SIGCONT)  # a stopped process would not act on SIGTERM
    if grace > 0:
        send_to_group(pid, pgid, signal.SIGTERM)
        if _wait_gone(process, grace):
            return
    send_to_group(pid, pgid, signal.SIGKILL)
    _wait_gone(process, wait)


def _wait_gone(process: psutil.Process, timeout: float) -> bool:
    # psutil's wait() polls until the pid disappears, which a zombie nobody reaps never does
    # (an orphan's parent may be a container's init that does not reap): poll its status.
    deadline = time.monotonic() + timeout
    while still_running(process):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _as_epoch(started: float | int) -> float:
    if isinstance(started, float):
        return started
    return psutil.boot_time() + started / os.sysconf("SC_CLK_TCK")
