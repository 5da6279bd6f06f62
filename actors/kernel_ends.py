"""How a cell ends when nb ends it, and why a kernel died: the error a cell gets, in words.

Every error nb itself puts in a cell (`NbMcp…`) is made here, so the texts say what happened
and what to do in one voice. Pure: no I/O, no actors.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from nb_mcp.actors.backend import Limits
from nb_mcp.actors.execution import NO_REPLY
from nb_mcp.actors.run_states import CellState


@dataclass(frozen=True)
class CellEnd:
    """An end nb gives the cell in flight: its status, and the error output it gets."""

    status: CellState  # died, timeout or error
    ename: str
    evalue: str

    @classmethod
    def died(cls, note: str) -> CellEnd:
        return cls(
            CellState.DIED,
            "NbMcpKernelDied",
            f"the kernel process died while this cell ran ({note}). Its variables are gone: "
            "the next execution starts a fresh kernel, so re-run the cells this one needs.",
        )

    @classmethod
    def orphaned(cls) -> CellEnd:
        return cls(
            CellState.DIED,
            "NbMcpKernelDied",
            "the kernel this cell ran on is gone; its variables too",
        )

    @classmethod
    def restarted(cls) -> CellEnd:
        return cls(
            CellState.ERROR,
            "NbMcpKernelRestarted",
            "the kernel was restarted by restart_kernel while this cell ran",
        )

    @classmethod
    def stopped(cls) -> CellEnd:
        return cls(
            CellState.ERROR,
            "NbMcpKernelStopped",
            "the kernel was shut down by shutdown_kernel while this cell ran",
        )

    @classmethod
    def start_failed(cls, reason: str) -> CellEnd:
        return cls(
            CellState.ERROR, "NbMcpKernelStartFailed", f"the kernel could not start: {reason}"
        )

    @classmethod
    def unanswered(cls) -> CellEnd:
        return cls(
            CellState.ERROR,
            NO_REPLY,
            "the kernel went idle without answering for this cell, so its code most likely "
            "never ran (an interrupt that reaches the kernel just as a cell begins is caught "
            "by the kernel itself); run it again if it should have",
        )

    @classmethod
    def timed_out(cls, timeout: float) -> CellEnd:
        return cls(
            CellState.TIMEOUT,
            "NbMcpTimeout",
            f"the cell ran past its {timeout:g}s timeout and did not stop when interrupted; "
            "the kernel was restarted",
        )

    @classmethod
    def request_lost(cls) -> CellEnd:
        # It may never have reached the kernel, or may have: sending it again could run the
        # cell twice, and a cell never runs twice.
        return cls(
            CellState.ERROR,
            "NbMcpRequestLost",
            "the connection to the gateway dropped while this cell was being sent; it may not "
            "have run, so nb did not send it again: run it again if it should run",
        )

    @classmethod
    def gateway_lost(cls, url: str, unreachable: float, error: str) -> CellEnd:
        return cls(
            CellState.ERROR,
            "NbMcpGatewayLost",
            f"the Jupyter gateway at {url} could not be reached for {unreachable:.0f}s "
            f"({error}); the kernel there may still be running with its variables: the next "
            "execution reconnects to it",
        )


@dataclass(frozen=True)
class KernelEnd:
    """The end of one kernel (its generation), as the cell that was running on it gets it."""

    generation: int
    cell: CellEnd


def death_note(code: int | None, limits: Limits, reason: str | None = None) -> str:
    """What killed the kernel, from its exit code (a local child) or its backend's words."""
    limit = limits.describe_signal(-code) if code is not None and code < 0 else ""
    if limit:
        return limit
    if code is not None and code < 0:
        note = f"killed by {_signal_name(-code)}"
        if code == -signal.SIGKILL:
            note += ", as the out-of-memory killer does"
        return note
    if code is None and reason:
        return reason
    return f"exit code {code}"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
