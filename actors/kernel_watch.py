"""The KernelSession's books on time: what is due at a tick, and whether new channels answer.

Pure: the session's clock reads the time and passes it in, so a test moves time by hand and
checks each decision without a kernel, a thread or a sleep.
"""

from __future__ import annotations

from enum import Enum, auto

from nb_mcp.actors.execution import Execution

TICK_SEC = 0.1  # how often a session with work in flight looks at its books
PROBE_EVERY_SEC = 0.5  # a probe without answer is sent again after this
INTERRUPT_GRACE_SEC = 5.0  # a timed-out cell that ignores its interrupt this long: restart
PROGRESS_TO_JOB_SEC = 0.5  # the job hears of new output at most this often


class Due(Enum):
    """What a tick found due for the execution in flight, in the order to act on it."""

    INTERRUPT = auto()  # past its deadline: interrupt the kernel
    RESTART = auto()  # interrupted INTERRUPT_GRACE_SEC ago and still running: restart
    RECORD = auto()  # running long enough to be worth noting in the kernel's record
    OUTPUT_EVENT = auto()  # a cell.output event (it printed since the last one)
    HEARTBEAT_EVENT = auto()  # a cell.heartbeat event (it has been silent)
    OVER_AFTER_REBUILD = auto()  # channels rebuilt mid-cell and it ended meanwhile
    IDLE_LOST = auto()  # the shell said done and the idle on iopub never came
    REPLY_LOST = auto()  # iopub said idle and the shell's reply never came
    PROGRESS_TO_JOB = auto()  # output the throttle held back from the job: send it now


def due(execution: Execution, now: float, progress_interval: float) -> list[Due]:
    """What to do now about a sent execution (a restart ends it: nothing else is due then)."""
    if execution.deadline is not None and now >= execution.deadline:
        if execution.timed_out_at is None:
            execution.timed_out_at = now
            return [Due.INTERRUPT]
        if now - execution.timed_out_at > INTERRUPT_GRACE_SEC:
            return [Due.RESTART]
    found = []
    if execution.worth_recording(now):
        found.append(Due.RECORD)
    if execution.progress_pending and now - execution.last_progress_to_job >= PROGRESS_TO_JOB_SEC:
        found.append(Due.PROGRESS_TO_JOB)  # the latest line, held by the throttle, goes now
    progress = execution.progress_due(now, progress_interval)
    if progress == "output":
        found.append(Due.OUTPUT_EVENT)
    elif progress == "heartbeat":
        found.append(Due.HEARTBEAT_EVENT)
    if execution.over_after_rebuild(now):
        found.append(Due.OVER_AFTER_REBUILD)
    elif execution.idle_lost(now):
        found.append(Due.IDLE_LOST)
    elif execution.reply_lost(now):
        found.append(Due.REPLY_LOST)
    return found


def progress_to_job_due(execution: Execution, now: float) -> bool:
    """Whether the job is due news of the cell's output (throttled: thousands of outputs)."""
    if now - execution.last_progress_to_job < PROGRESS_TO_JOB_SEC:
        execution.progress_pending = True  # a tick sends it when the throttle allows
        return False
    execution.last_progress_to_job = now
    return True


class Readiness:
    """New channels are ready once a probe (kernel_info) came back on the shell AND iopub has
    delivered something: then our subscription is live, and output published from now on
    reaches us (before that it would be lost, so the probe is sent again until it is)."""

    def __init__(self) -> None:
        self._probes: set[str] = set()
        self._sent_at = 0.0
        self.replied = False
        self.saw_iopub = False

    @property
    def ready(self) -> bool:
        return self.replied and self.saw_iopub

    def probe_sent(self, msg_id: str, now: float) -> None:
        self._probes.add(msg_id)
        self._sent_at = now

    def probe_due(self, now: float) -> bool:
        return not self.ready and now - self._sent_at > PROBE_EVERY_SEC

    def is_probe(self, parent: str | None) -> bool:
        return parent in self._probes

    def answered(self) -> bool:
        """A probe's reply came; True if that made the channels ready."""
        was, self.replied = self.ready, True
        return self.ready and not was

    def iopub_delivered(self, parent: str | None, running: str | None = None) -> bool:
        """iopub delivered a message answering `parent`; True if that made the channels ready.
        Only our probe's or the running cell's count: a gateway replays what it buffered for
        our session, a restarted kernel's predecessor's messages too, and those prove nothing."""
        if self.saw_iopub or (parent not in self._probes and (not parent or parent != running)):
            return False
        was, self.saw_iopub = self.ready, True
        return self.ready and not was
