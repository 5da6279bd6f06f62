"""What a job is asked to run, and what it reports: plain data, shared by the JobActor and the
tools that wait on jobs (they never hold an actor).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb_mcp.actors.kernel_protocol import Resumed
from nb_mcp.actors.launch import KernelLaunch
from nb_mcp.actors.run_states import CellState, JobState

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
class CellOutputs:
    """A cell's outputs for a reply; `index` is None when the cell was deleted meanwhile."""

    cell_id: str
    index: int | None
    outputs: list[Any]
    execution_count: int | None


@dataclass(frozen=True)
class RunOutputs:
    """What one run of a cell left: its outputs (markers left out) and execution count."""

    outputs: list[Any]
    execution_count: int | None


@dataclass(frozen=True)
class CellRun:
    cell_id: str
    position: int
    state: CellState
    index: int | None = None
    started_at: float | None = None
    duration: float | None = None
    last_output_at: float | None = None
    tail: str = ""
    execution_count: int | None = None
    ename: str | None = None
    evalue: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", CellState(self.state))  # "ok" is CellState.OK


@dataclass(frozen=True)
class JobSnapshot:
    job_id: str
    notebook: Path
    kind: str
    state: JobState
    submitted_at: float
    cells: tuple[CellRun, ...]
    started_at: float | None = None
    finished_at: float | None = None
    ahead: int = 0
    reason: str = ""
    scratch_outputs: tuple[dict[str, Any], ...] = ()
    # Each finished file cell's own outputs, handed over by the writer when the cell ended
    # (so a reply shows this run's outputs, even if the cell ran again since).
    outputs: Mapping[str, Future[RunOutputs]] = field(default_factory=dict, compare=False)
    # Its turn came and its kernel is still starting (a gateway's may take minutes): filled
    # in by the facade from the kernel's state, for exec_status and progress.
    kernel_starting: bool = False
    # An old job's own outputs were let go (see supervisor/jobs.py): a reply about it shows
    # what the notebook holds now, and says so.
    outputs_released: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", JobState(self.state))

    @classmethod
    def queued(cls, spec: JobSpec) -> JobSnapshot:
        """A job as it is before it ran anything."""
        cells = tuple(
            CellRun(cell_id, position, CellState.QUEUED)
            for position, cell_id in enumerate(spec.cell_ids or (SCRATCH,), start=1)
        )
        return cls(spec.job_id, spec.notebook, spec.kind, JobState.QUEUED, spec.submitted_at, cells)

    @property
    def done(self) -> bool:
        return self.state.ended

    @property
    def running(self) -> CellRun | None:
        return next((cell for cell in self.cells if cell.state is CellState.RUNNING), None)


class JobBoard:
    """A job's latest snapshot, put up by its actor at every change, read from any thread.

    The facade answers "how is job X doing" from here without asking the actor, and a tool call
    waiting on the job is told each change as it happens (its watcher runs in the job's thread:
    it must only hand the snapshot on).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: JobSnapshot | None = None
        self._watchers: list[Callable[[JobSnapshot], None]] = []

    def put(self, snapshot: JobSnapshot) -> None:
        with self._lock:
            self._latest = snapshot
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher(snapshot)

    def latest(self) -> JobSnapshot | None:
        with self._lock:
            return self._latest

    def watch(self, watcher: Callable[[JobSnapshot], None]) -> Callable[[], None]:
        """Call `watcher` with each new snapshot; returns the call that stops it."""
        with self._lock:
            self._watchers.append(watcher)

        def unwatch() -> None:
            with self._lock:
                if watcher in self._watchers:
                    self._watchers.remove(watcher)

        return unwatch
