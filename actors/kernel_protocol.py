"""What a job and the notebook's kernel tell each other, and the kernel as `status` shows it.

A job talks only to the notebook's TurnQueue, an actor that lives as long as the notebook (it
never restarts on a kernel death or a channel failure), so a job never waits for a kernel
actor's restart and never loses a request to one:

    job ──Enqueue──▶ TurnQueue ──Waiting…, Turn──▶ job
    job ──Execute──▶ TurnQueue ──▶ KernelSession ──CellProgress…, ScratchMessage…, CellDone──▶ job
    job ──Release──▶ TurnQueue          (then the next job gets its Turn)

Every message is a `tell`: nothing in the tree waits on another actor's reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pykka
from nb_mcp.actors.launch import KernelLaunch
from nb_mcp.actors.run_states import CellState


@dataclass(frozen=True)
class Enqueue:
    """Job -> queue: give me the kernel when it is my turn (jobs on a notebook queue FIFO)."""

    job_id: str
    job: pykka.ActorRef[Any]


@dataclass(frozen=True)
class Resumed:
    """A cell an earlier daemon sent to a kernel that outlived it, still running: its request,
    when it started (wall clock), and the note its cell gets about the gap."""

    job_id: str
    cell_id: str
    msg_id: str
    started_at: float
    note: str


@dataclass(frozen=True)
class Execute:
    """Job -> queue -> session: run one cell (or claim a resumed one) on the kernel."""

    job_id: str
    job: pykka.ActorRef[Any]
    cell_id: str
    code: str
    timeout: float | None
    to_writer: bool  # False: a scratch run, written nowhere, outputs go to the job
    launch: KernelLaunch  # how to start a kernel if none runs, with the job's session's env
    progress_interval: float | None = None  # the session's; None: the daemon's
    resumed: Resumed | None = None  # already running: route its outputs, never send it


@dataclass(frozen=True)
class Release:
    """Job -> queue: I am done with the kernel (or gave up waiting for it)."""

    job_id: str


@dataclass(frozen=True)
class InterruptJob:
    """Job -> the kernel's process actor: interrupt my cell, and no other job's (cancel_job).

    Sent when the job is cancelled; if its cell is not on the kernel yet, the interrupt waits
    for it, and is dropped if another job's cell comes first."""

    job_id: str


@dataclass(frozen=True)
class Turn:
    """Queue -> job: the kernel is yours."""


@dataclass(frozen=True)
class Waiting:
    """Queue -> job: you are queued behind `ahead` jobs."""

    ahead: int


@dataclass(frozen=True)
class CellDone:
    """Session -> job: the cell finished (status ok, error, timeout, died)."""

    cell_id: str
    status: CellState
    execution_count: int | None
    duration: float
    ename: str | None = None
    evalue: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", CellState(self.status))


@dataclass(frozen=True)
class CellProgress:
    """Session -> job, throttled: the running cell's latest output."""

    cell_id: str
    last_output_at: float
    tail: str
    outputs: int


@dataclass(frozen=True)
class ScratchMessage:
    """Session -> job: an output message of a scratch execution (written nowhere)."""

    msg_type: str
    content: dict[str, Any]


class KernelState(StrEnum):
    """A notebook's kernel as `status` names it."""

    NONE = "none"  # none started yet, or shut down
    STARTING = "starting"  # starting, or its channels not answering yet
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"  # died; the next execution starts a fresh one
    UNRESPONSIVE = "unresponsive"  # its heartbeat stopped answering


@dataclass(frozen=True)
class KernelInfo:
    """The kernel as `status` shows it."""

    state: KernelState
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
    gateway_url: str | None = None  # a kernel on a Jupyter gateway: where, and its id there
    kernel_id: str | None = None
