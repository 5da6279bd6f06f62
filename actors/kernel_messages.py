"""What a notebook's three kernel actors tell each other (the job's side is kernel_protocol.py).

    TurnQueue      lives as long as the notebook: the FIFO of jobs, who has the kernel, and
                   the requests and execution in flight while the session restarts
    KernelProcess  lives as long as the notebook: the kernel's OS process (or remote kernel),
                   its start, liveness, interrupt, stop, record, and `status`
    KernelSession  restartable: the channels, readiness, routing by msg_id, the execution in
                   flight, deadlines and progress

A session announces itself to the queue (SessionUp); the queue hands it the requests it holds
and what the previous session left (Resume); then the session attaches to the process
(Attach), which answers with the kernel it has (KernelUp) or that it has none (KernelDown).
Every message is a tell; none of these actors ever waits on another's reply.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any

import pykka
from nb_mcp.actors.channels import Channels
from nb_mcp.actors.execution import Execution
from nb_mcp.actors.kernel_ends import KernelEnd
from nb_mcp.actors.kernel_protocol import CellDone, Execute, KernelState, Resumed
from nb_mcp.actors.launch import KernelLaunch

# ---------------------------------------------------------------- queue <-> session


@dataclass(frozen=True)
class SessionUp:
    """Session -> queue: a new session incarnation is running; send it what you hold."""

    session: pykka.ActorRef[Any]


@dataclass(frozen=True)
class Assigned:
    """Queue -> session: a job's Execute, numbered so that one a dying session never handled
    is handed to the next (and one it handled never twice)."""

    seq: int
    execute: Execute


@dataclass(frozen=True)
class Unclaimed:
    """A taken-over cell that ended before its job claimed it: its end, and its outputs."""

    done: CellDone
    outputs: list[tuple[str, dict[str, Any]]]


@dataclass
class Handover:
    """What a session leaves for the next: the execution in flight (its msg_id is still
    routed), which cells recent msg_ids belong to, and resumed cells that ended unclaimed."""

    execution: Execution | None = None
    recent_cells: OrderedDict[str, str] = field(default_factory=OrderedDict)
    unclaimed: dict[str, Unclaimed] = field(default_factory=dict)


@dataclass(frozen=True)
class Resume:
    """Queue -> session, after the Assigned it held: what the previous incarnation left."""

    handover: Handover | None


@dataclass(frozen=True)
class SessionDown:
    """Session -> queue, from its teardown: the last Execute it handled, and its handover."""

    session: pykka.ActorRef[Any]
    accepted: int
    handover: Handover


@dataclass(frozen=True)
class QueueUp:
    """Queue -> session: the queue was restarted (a bug in it); announce yourself again."""

    queue: pykka.ActorRef[Any]


@dataclass(frozen=True)
class JobsNow:
    """Queue -> process, for `status`: who has the kernel and who waits."""

    running_job: str | None
    queued: tuple[str, ...]


# ---------------------------------------------------------------- session <-> process


@dataclass(frozen=True)
class Attach:
    """Session -> process: tell me about the kernel you have (and about it from now on)."""

    session: pykka.ActorRef[Any]


@dataclass(frozen=True)
class ProcessUp:
    """Process -> session: the process actor was restarted (a bug in it); attach again."""

    process: pykka.ActorRef[Any]


class Arrival(Enum):
    """How a kernel came to the session that attaches to it."""

    STARTED = auto()  # a kernel this daemon started, not yet ready
    RUNNING = auto()  # already running: the session was restarted (channels rebuilt)
    INHERITED = auto()  # taken over from a daemon that died


@dataclass(frozen=True)
class KernelUp:
    """Process -> session: a kernel to open channels to."""

    generation: int  # counts kernels: a request sent to an earlier one died with it
    arrival: Arrival
    open_channels: Callable[[pykka.ActorRef[Any], str], Channels]
    pid: int | None
    kernel_name: str
    began: float  # when its start began (monotonic), for kernel.ready's startup_sec
    restart_reason: str = ""  # set when it replaces a kernel (restart_kernel, a timeout)
    memory_mb: int = 0
    inherited: Resumed | None = None  # the cell it was running when taken over
    previous_end: KernelEnd | None = None  # how the kernel before it ended
    # A gateway's kernel has no pid: its id there and the gateway's URL, for the events.
    remote: dict[str, str | None] | None = None


@dataclass(frozen=True)
class KernelDown:
    """Process -> session: there is no kernel ready for you (none, starting, or dead)."""

    state: KernelState
    previous_end: KernelEnd | None = None  # how the last kernel ended, if one did


@dataclass(frozen=True)
class StartKernel:
    """Session -> process: a cell needs a kernel."""

    launch: KernelLaunch


@dataclass(frozen=True)
class RestartKernel:
    """Session -> process: replace the kernel (a timed-out cell ignored its interrupt)."""

    launch: KernelLaunch
    reason: str


@dataclass(frozen=True)
class InterruptKernel:
    """Session -> process: interrupt the kernel (a cell ran past its timeout)."""

    job_id: str
    cell_id: str | None
    timeout: float


@dataclass(frozen=True)
class ChannelsReady:
    """Session -> process: the kernel answers on every channel; it is ready."""

    generation: int


@dataclass(frozen=True)
class Activity:
    """Session -> process, for `status`: idle, busy (with which job and cell), unresponsive."""

    state: KernelState
    job_id: str | None = None
    cell_id: str | None = None
    to_writer: bool = True  # False: a scratch run, which status does not name as a cell
    # The kernel has begun the cell (its execute_input came): an interrupt sent before may be
    # swallowed by ipykernel while it sets the cell up, and the cell then reports ok unrun.
    executing: bool = True


@dataclass(frozen=True)
class RecordInFlight:
    """Session -> process: note in the kernel's record which cell runs (None: none)."""

    generation: int
    in_flight: dict[str, Any] | None


@dataclass(frozen=True)
class RemoteDeath:
    """Session -> process: the kernel's channels say the kernel is gone (a gateway's news)."""

    reason: str


@dataclass(frozen=True)
class KernelEnded:
    """Process -> session: the kernel died, or is being stopped or replaced; its cell in flight
    ends as `end` says. `fail`: a death, which fails the session so that its supervisor counts
    it (five in a minute and nb gives up on the notebook)."""

    end: KernelEnd
    fail: bool = False


@dataclass(frozen=True)
class StartFailed:
    """Process -> session: the kernel could not start."""

    reason: str
