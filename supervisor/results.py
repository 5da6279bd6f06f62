"""The facade's answers: plain data, for `mcp_front` and `ops` to turn into replies.

Everything a front reads comes from here or from the facade itself, never from an actor
module: the job and kernel snapshots the tree produces, the outputs of a finished job's cells,
and the pure helpers that read them (durations, nb's own marker outputs), re-exported.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from nb_mcp.actors.job_data import CellRun, JobSnapshot
from nb_mcp.actors.kernel_protocol import KernelInfo, KernelState
from nb_mcp.actors.notebook import MARKER_PREFIX, format_duration, is_marker, without_markers
from nb_mcp.actors.run_states import CellState, JobState
from nb_mcp.actors.writer import CellOutputs
from nb_mcp.supervisor import views

__all__ = [
    "MARKER_PREFIX",
    "OUTPUTS_KEPT",
    "CellOutputs",
    "CellRead",
    "CellRun",
    "CellState",
    "Edited",
    "JobSnapshot",
    "JobState",
    "KernelInfo",
    "KernelNotFound",
    "KernelState",
    "KernelStatus",
    "Listing",
    "NbError",
    "ServerStatus",
    "Submitted",
    "format_duration",
    "is_marker",
    "without_markers",
]


# Finished jobs that keep their own outputs for a later exec_status, newest first; an older
# one's reply shows what the notebook holds now (a day of plotting cells would otherwise hold
# hundreds of MB in the daemon).
OUTPUTS_KEPT = 50


class NbError(Exception):
    """A request nb refuses or cannot carry out; the message is written for the agent."""


class KernelNotFound(NbError):
    """No kernelspec has the name asked for; the message lists the installed ones."""


@dataclass(frozen=True)
class Listing:
    path: Path
    cells: list[views.CellSummary]
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CellRead:
    path: Path
    cell: views.CellView
    total: int
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Edited:
    path: Path
    op: str
    index: int
    cell_id: str | None
    total: int
    written: bool
    write_error: str | None
    created: bool = False
    detail: str = ""
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Submitted:
    job_id: str
    notebook: Path
    kind: str
    cells: tuple[str, ...]
    future: Future[JobSnapshot]
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KernelStatus:
    notebook: Path
    info: KernelInfo


@dataclass(frozen=True)
class ServerStatus:
    version: str
    pid: int
    uptime_sec: float
    log_path: Path
    state_dir: Path
    kernels: list[KernelStatus]
    jobs: list[JobSnapshot]  # active first, then recent
