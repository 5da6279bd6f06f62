"""The execution in flight and the KernelActor's restart state. Pure: no I/O, no actors.

An `Execution` keeps its own books — what it printed, when, whether it errored or ran out of
time, when it is due a progress event — so the KernelActor only decides what to do about it.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pykka
from nb_mcp.actors.backend import KernelBackend
from nb_mcp.actors.environment import KernelChoice
from nb_mcp.actors.kernel_protocol import KernelInfo
from nb_mcp.actors.launch import KernelLaunch
from nb_mcp.actors.outputs import last_line

OUTPUT_TYPES = frozenset(
    {
        "stream",
        "display_data",
        "update_display_data",
        "execute_result",
        "error",
        "clear_output",
        "execute_input",
    }
)
_VISIBLE = ("stream", "display_data", "execute_result", "error")
IDLE_GRACE = 1.0  # after execute_reply, how long the idle on iopub may lag behind
RECORD_AFTER = 1.0  # only a cell running this long is noted in the kernel's record


@dataclass
class Execution:
    job_id: str
    job: pykka.ActorRef | None  # None: a cell resumed from an earlier daemon, no job left
    cell_id: str
    code: str
    to_writer: bool
    timeout: float | None
    msg_id: str | None = None
    started_mono: float = 0.0
    deadline: float | None = None
    timed_out_at: float | None = None
    execution_count: int | None = None
    ename: str | None = None
    evalue: str | None = None
    outputs: int = 0
    tail: str = ""
    last_output: float = 0.0
    last_event: float = 0.0
    last_event_outputs: int = 0
    last_progress_to_job: float = 0.0
    across_rebuild: bool = False  # its channels were rebuilt while it ran
    probe_answered_at: float | None = None
    replied_at: float | None = None  # when the shell's execute_reply came
    last_iopub: float = 0.0  # when iopub last delivered a message of this execution
    recorded: bool = False  # noted in the kernel's record, for a daemon that takes over
    # The job's session: how to start a kernel for it, and how often it wants progress events.
    launch: KernelLaunch | None = None
    progress_interval: float | None = None

    def sent(self, msg_id: str, now: float) -> None:
        self.msg_id = msg_id
        self.started_mono = self.last_output = self.last_event = now
        if self.timeout:
            self.deadline = now + self.timeout

    def saw(self, msg_type: str, content: dict[str, Any], now: float) -> bool:
        """Account for one of its iopub messages; True if it is output a person sees."""
        if msg_type == "execute_input":
            self.execution_count = content.get("execution_count")
        elif msg_type == "error":
            self.ename, self.evalue = content.get("ename"), content.get("evalue")
        if msg_type not in _VISIBLE:
            return False
        self.outputs += 1
        self.last_output = now
        tail = last_line(content.get("text", "")) if msg_type == "stream" else ""
        self.tail = tail or f"<{msg_type}>"
        return True

    def replied(self, content: dict[str, Any], now: float) -> None:
        """The shell's execute_reply: reliable where iopub may drop messages."""
        self.replied_at = now
        if content.get("status") == "error" and self.ename is None:
            self.ename, self.evalue = content.get("ename"), content.get("evalue")
        if self.execution_count is None:
            self.execution_count = content.get("execution_count")

    @property
    def status(self) -> str:
        if self.timed_out_at is not None:
            return "timeout"
        return "error" if self.ename is not None else "ok"

    def progress_due(self, now: float, interval: float) -> str | None:
        """Which progress event is due now: "output", "heartbeat" (silent), or None."""
        if now - self.last_event < interval:
            return None
        self.last_event = now
        if self.outputs > self.last_event_outputs:
            self.last_event_outputs = self.outputs
            return "output"
        return "heartbeat" if now - self.last_output >= interval else None

    def idle_lost(self, now: float) -> bool:
        """The shell said it is done, and iopub has been quiet since: its idle is not coming."""
        if self.replied_at is None:
            return False
        return now - max(self.replied_at, self.last_iopub) > IDLE_GRACE

    def over_after_rebuild(self, now: float) -> bool:
        """After channels were rebuilt mid-cell, the probe on the new shell is answered only
        once the cell is done; if no idle came a second after that, the cell is over."""
        return self.probe_answered_at is not None and now - self.probe_answered_at > 1.0

    def worth_recording(self, now: float) -> bool:
        return not self.recorded and self.to_writer and now - self.started_mono >= RECORD_AFTER

    def record(self, now: float) -> dict[str, Any]:
        self.recorded = True
        return {
            "job_id": self.job_id,
            "cell_id": self.cell_id,
            "msg_id": self.msg_id,
            "started_at": time.time() - (now - self.started_mono),
        }


@dataclass
class KernelSlot:
    """The KernelActor's restart state: what must outlive an incarnation of the actor."""

    notebook: Path
    backend: KernelBackend | None = None
    kernel_name: str | None = None
    # What the kernel runs (its kernelspec or environment, and the rule that chose it) and
    # the session whose environment it was started with.
    choice: KernelChoice | None = None
    session_id: str = ""
    state: str = "none"
    started_at: float | None = None
    queue: deque[tuple[str, pykka.ActorRef, KernelLaunch]] = field(default_factory=deque)
    turn: tuple[str, pykka.ActorRef | None] | None = None
    execution: Execution | None = None
    recent_cells: OrderedDict[str, str] = field(default_factory=OrderedDict)
    unresponsive_since: float | None = None
    # Set when this kernel was taken over from a daemon that died.
    reattached: bool = False
    recovery_note: str = ""

    def info(self) -> KernelInfo:
        """The kernel as `status` shows it, with the Python it runs in and why."""
        execution, choice = self.execution, self.choice
        environment = choice.environment if choice is not None else None
        return KernelInfo(
            state=self.state,
            kernel_name=self.kernel_name,
            pid=self.backend.pid if self.backend is not None else None,
            running_job=self.turn[0] if self.turn else None,
            running_cell=execution.cell_id if execution and execution.to_writer else None,
            queued_jobs=[job_id for job_id, _, _ in self.queue],
            started_at=self.started_at,
            reattached=self.reattached,
            environment=None if environment is None else str(environment),
            display_name=choice.display_name if choice else "",
            rule=choice.rule if choice else "",
            session_id=self.session_id,
        )

    def close(self) -> None:
        """Stop the kernel for good: the supervisor gave up while no incarnation held it."""
        if self.backend is not None:
            backend, self.backend, self.state = self.backend, None, "none"
            backend.stop(grace=0.0)
