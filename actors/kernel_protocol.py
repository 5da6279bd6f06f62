"""What the KernelActor and the jobs that take turns on it tell each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Turn:
    """Kernel -> job: the kernel is yours."""


@dataclass(frozen=True)
class Waiting:
    """Kernel -> job: you are queued behind `ahead` jobs."""

    ahead: int


@dataclass(frozen=True)
class CellDone:
    """Kernel -> job: the cell finished (status ok, error, timeout, died)."""

    cell_id: str
    status: str
    execution_count: int | None
    duration: float
    ename: str | None = None
    evalue: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class CellProgress:
    """Kernel -> job, throttled: the running cell's latest output."""

    cell_id: str
    last_output_at: float
    tail: str
    outputs: int


@dataclass(frozen=True)
class ScratchMessage:
    """Kernel -> job: an output message of a scratch execution (written nowhere)."""

    msg_type: str
    content: dict[str, Any]


@dataclass(frozen=True)
class KernelInfo:
    """The kernel as `status` shows it."""

    state: str  # none, starting, idle, busy, dead, unresponsive
    kernel_name: str | None
    pid: int | None
    running_job: str | None
    running_cell: str | None
    queued_jobs: list[str]
    started_at: float | None
    reattached: bool = False
    # Which Python: the environment the kernel runs in (None: a kernelspec's own), what
    # front-ends call it, the rule that chose it, and the session whose variables it got.
    environment: str | None = None
    display_name: str = ""
    rule: str = ""
    session_id: str = ""
