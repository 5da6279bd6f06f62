"""Ctrl-C, SIGTERM and SIGHUP for a command that must clean up before it exits (`nb run`).

Python's default SIGINT handler raises KeyboardInterrupt wherever the main thread happens to
be, which can be inside the shutdown that stops the kernels: the shutdown is abandoned halfway
and the actors' threads keep the process alive. Here the handler only counts, so a signal
never lands in the middle of shutdown code; the command's own loop reads the counts and
decides what to do (the first Ctrl-C interrupts the running cell, later ones stop the job).

Once the command has cleaned up it ends by the signal it got (`die_by`), so the shell sees
what it expects: `$?` is 130 after Ctrl-C, and a shell loop running it stops too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType


class StopSignals:
    """Counts Ctrl-C presses and notes a SIGTERM / SIGHUP; never raises in the handler."""

    def __init__(self) -> None:
        self.presses = 0
        self.terminated: int | None = None  # SIGTERM or SIGHUP, if one came

    @classmethod
    def install(cls) -> StopSignals:
        signals = cls()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signals._handle)
        return signals

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # Only assignments: no I/O (a write here could re-enter a write the main thread was
        # in the middle of), no exception.
        if signum == signal.SIGINT:
            self.presses += 1
        else:
            self.terminated = signum

    @property
    def received(self) -> int | None:
        """The signal the command should end by, if any came."""
        if self.terminated is not None:
            return self.terminated
        return signal.SIGINT if self.presses else None


def die_by(signum: int) -> int:
    """End the process by `signum` with its default action; return 128 + signum if it lives."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return 128 + signum


def ignore_stop_signals() -> None:
    # A client that finds us slow to exit sends SIGTERM (then SIGKILL): let the shutdown in
    # progress finish stopping the kernels rather than die halfway and leave them running.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
