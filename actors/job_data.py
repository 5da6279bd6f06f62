"""What a job is asked to run, and what it reports: plain data, shared by the JobActor and the
tools that wait on jobs (they never hold an actor).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb_mcp.actors.kernel_protocol import Resumed
from nb_mcp.actors.launch import KernelLaunch

SCRATCH = "scratch"


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    notebook: Path
    kind: str
    cell_ids: tuple[str, ...]
    launch: KernelLaunch  # the kernel to start if none runs, with the session's environment
    timeout: float | None
    code: str | None = None  # run_scratch: the code; nothing is written to the file
    submitted_at: float = field(default_factory=time.time)
    # The first cell's (source, index, type) as read when the job was planned: used if the
    # job starts at once, so the cell is not read a second time a millisecond later.
    first: tuple[str, int, str] | None = None
    progress_interval: float | None = None  # the session's NB_MCP_PROGRESS_INTERVAL_SEC
    resumed: Resumed | None = None  # kind "resumed": its one cell already runs on the kernel


@dataclass(frozen=True)
class CellRun:
    cell_id: str
    position: int
    state: str  # queued, running, ok, error, timeout, died, skipped, lost
    index: int | None = None
    started_at: float | None = None
    duration: float | None = None
    last_output_at: float | None = None
    tail: str = ""
    execution_count: int | None = None
    ename: str | None = None
    evalue: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class JobSnapshot:
    job_id: str
    notebook: Path
    kind: str
    state: str  # queued, running, ok, error, stopped
    submitted_at: float
    cells: tuple[CellRun, ...]
    started_at: float | None = None
    finished_at: float | None = None
    ahead: int = 0
    reason: str = ""
    scratch_outputs: tuple[dict[str, Any], ...] = ()
    # Its turn came and its kernel is still starting (a gateway's may take minutes): filled
    # in by the facade from the kernel's state, for exec_status and progress.
    kernel_starting: bool = False

    @property
    def done(self) -> bool:
        return self.state in ("ok", "error", "stopped")

    @property
    def running(self) -> CellRun | None:
        return next((cell for cell in self.cells if cell.state == "running"), None)
