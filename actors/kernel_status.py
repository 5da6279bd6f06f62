"""What the KernelProcess knows of its kernel, and the kernel as `status` shows it.

Pure books, no I/O: the process actor changes them as its kernel starts, runs, dies or is
replaced, and as the session and the queue tell it what runs; `info()` is what the tools see.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum, auto

from nb_mcp.actors.backend import KernelBackend
from nb_mcp.actors.environment import KernelChoice
from nb_mcp.actors.kernel_ends import KernelEnd
from nb_mcp.actors.kernel_messages import Activity, JobsNow
from nb_mcp.actors.kernel_protocol import KernelInfo, KernelState, Resumed
from nb_mcp.actors.launch import KernelLaunch


class Life(Enum):
    NONE = auto()
    STARTING = auto()  # a start is under way, or the kernel runs but its channels are not ready
    RUNNING = auto()
    DEAD = auto()


_SHOWN = {
    Life.NONE: KernelState.NONE,
    Life.STARTING: KernelState.STARTING,
    Life.DEAD: KernelState.DEAD,
}


@dataclass
class KernelBook:
    life: Life = Life.NONE
    generation: int = 0  # counts kernels: what was sent to an earlier one died with it
    attempt: int = 0  # counts starts: a start-up thread's answer to an older one is void
    choice: KernelChoice | None = None
    kernel_name: str | None = None
    session_id: str = ""  # the session whose environment the kernel was started with
    began: float = 0.0  # when the current start began (monotonic)
    start_timeout: float = 0.0
    restart_reason: str = ""  # set while a replacement kernel starts
    started_at: float | None = None  # wall clock, for status
    reattached: bool = False  # taken over from a daemon that died
    last_end: KernelEnd | None = None  # how the last kernel ended (for a session that missed it)
    activity: Activity = field(default_factory=lambda: Activity(KernelState.IDLE))
    jobs: JobsNow = field(default_factory=lambda: JobsNow(None, ()))

    def starting(self, launch: KernelLaunch, now: float, reason: str) -> None:
        self.life, self.attempt = Life.STARTING, self.attempt + 1
        self.kernel_name, self.choice, self.session_id = (
            launch.label,
            launch.choice,
            launch.session_id,
        )
        self.began, self.restart_reason, self.reattached = now, reason, False

    def gone(self, life: Life) -> None:
        """No kernel any more (stopped, died, failed to start); a start under way is void."""
        self.life, self.attempt = life, self.attempt + 1
        self.activity = Activity(KernelState.IDLE)

    def busy_job(self) -> str | None:
        """The job whose cell runs on the kernel now, if one does."""
        return self.activity.job_id if self.activity.state is not KernelState.IDLE else None

    def info(self, pid: int | None, remote: dict[str, str | None] | None = None) -> KernelInfo:
        """The kernel as `status` shows it, with the Python it runs in and why."""
        state = self.activity.state if self.life is Life.RUNNING else _SHOWN[self.life]
        choice = self.choice
        environment = choice.environment if choice is not None else None
        return KernelInfo(
            state=state,
            kernel_name=self.kernel_name,
            pid=pid,
            running_job=self.jobs.running_job,
            running_cell=self.activity.cell_id if self.activity.to_writer else None,
            queued_jobs=list(self.jobs.queued),
            started_at=self.started_at,
            reattached=self.reattached,
            environment=None if environment is None else str(environment),
            display_name=choice.display_name if choice else "",
            rule=choice.rule if choice else "",
            session_id=self.session_id,
            **(remote or {}),
        )


class Inheritance:
    """A kernel an earlier daemon left running, for the first KernelProcess incarnation only
    (a later one, after a failure of that actor, must not adopt a kernel its predecessor
    stopped)."""

    def __init__(
        self,
        backend: KernelBackend,
        choice: KernelChoice,
        started_at: float | None,
        in_flight: Resumed | None,
    ) -> None:
        self.backend = backend
        self.choice = choice
        self.started_at = started_at
        self.in_flight = in_flight
        self._lock = threading.Lock()
        self._claimed = False

    def claim(self) -> bool:
        with self._lock:
            claimed, self._claimed = self._claimed, True
        return not claimed
