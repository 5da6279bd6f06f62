"""The execution in flight. Pure: no I/O, no actors, no clock of its own.

An `Execution` keeps its own books — what it printed, when, whether it errored or ran out of
time, when it is due a progress event — so the KernelSession only decides what to do about it.
Times are the session's clock's, passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pykka
from nb_mcp.actors.kernel_protocol import Execute
from nb_mcp.actors.launch import KernelLaunch
from nb_mcp.actors.outputs import last_line
from nb_mcp.actors.run_states import CellState

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
ABORTED = "NbMcpAborted"  # the ename of a cell whose execute_reply said "aborted"
NO_REPLY = "NbMcpNoReply"  # the ename of a cell the kernel went idle on without a reply
IDLE_GRACE = 1.0  # after execute_reply, how long the idle on iopub may lag behind
REPLY_GRACE = 1.0  # after the idle, how long the execute_reply may lag behind
RECORD_AFTER = 1.0  # only a cell running this long is noted in the kernel's record


@dataclass
class Execution:
    job_id: str
    job: pykka.ActorRef | None  # None: a resumed cell whose job has not claimed it yet
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
    progress_pending: bool = False  # output the job has not heard of (the throttle held it)
    across_rebuild: bool = False  # its channels were rebuilt while it ran
    probe_answered_at: float | None = None
    replied_at: float | None = None  # when the shell's execute_reply came
    # When iopub's idle came while no execute_reply had: ipykernel replies before it goes
    # idle, so the reply is on its way, or is not coming at all (see reply_lost).
    idle_at: float | None = None
    last_iopub: float = 0.0  # when iopub last delivered a message of this execution
    recorded: bool = False  # noted in the kernel's record, for a daemon that takes over
    # The job's session: how to start a kernel for it, and how often it wants progress events.
    launch: KernelLaunch | None = None
    progress_interval: float | None = None
    started_wall: float = 0.0  # when it was sent, on the wall clock (for the kernel's record)
    kernel: int = 0  # the generation of the kernel it was sent to (0: not sent yet)
    # A taken-over cell's outputs until its job claims it: the job first tells the writer the
    # cell runs again, and output that got there before would be lost in that reset.
    held: list[tuple[str, dict[str, Any]]] | None = None

    @classmethod
    def of(cls, execute: Execute) -> Execution:
        return cls(
            job_id=execute.job_id,
            job=execute.job,
            cell_id=execute.cell_id,
            code=execute.code,
            to_writer=execute.to_writer,
            timeout=execute.timeout,
            launch=execute.launch,
            progress_interval=execute.progress_interval,
        )

    def sent(self, msg_id: str, now: float, wall: float = 0.0, kernel: int = 0) -> None:
        self.msg_id = msg_id
        self.started_mono = self.last_output = self.last_event = now
        self.started_wall, self.kernel = wall, kernel
        if self.timeout:
            self.deadline = now + self.timeout

    def resumed(self, msg_id: str, now: float, wall: float, started_at: float, kernel: int) -> None:
        """Sent by an earlier daemon at `started_at` (wall clock); read from now on. Its
        channels are new, so the idle that ends it may come late or not at all."""
        ran_for = max(0.0, wall - started_at)
        self.sent(msg_id, now - ran_for, started_at, kernel)
        self.last_output = self.last_event = now
        self.across_rebuild = True
        self.recorded = True  # the record already names it

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
        elif content.get("status") == "aborted" and self.ename is None:
            # ipykernel aborts what was queued behind a request that failed (an interrupt that
            # landed on nb's readiness probe, say): the cell never ran, so it is no success.
            self.ename, self.evalue = ABORTED, "the kernel aborted this cell before it ran"
        if self.execution_count is None:
            self.execution_count = content.get("execution_count")

    @property
    def status(self) -> CellState:
        if self.timed_out_at is not None:
            return CellState.TIMEOUT
        return CellState.ERROR if self.ename is not None else CellState.OK

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

    def reply_lost(self, now: float) -> bool:
        """iopub said idle and the shell never answered: ipykernel caught an interrupt that
        landed between the cell's execute_input and its code (it logs "KeyboardInterrupt
        caught in kernel" and sends no reply), so the code most likely never ran."""
        return (
            self.idle_at is not None
            and self.replied_at is None
            and now - self.idle_at > REPLY_GRACE
        )

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
            "started_at": self.started_wall,
        }
