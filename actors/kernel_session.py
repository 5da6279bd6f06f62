"""KernelSession: one per notebook, the restartable half of its kernel (child id "kernel").

It owns the kernel's channels (a pump from the backend), knows when new channels are ready,
routes what comes back by msg_id to the cell in flight, and keeps that cell's deadline and
progress. What must outlive it does not live here: the kernel process is the KernelProcess's,
the jobs and the requests in flight are the TurnQueue's. So:
- a read failure on the channels (iopub desync) fails this actor; its restart opens new channels
  on the same kernel, variables untouched, and resumes routing the same msg_id;
- a dead kernel (the KernelProcess finds it within 0.1 s) ends the running cell with
  `NbMcpKernelDied` and fails this actor too, so the supervisor counts it; the next execution
  starts a fresh kernel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import pykka
from nb_mcp.actors.cell_in_flight import InFlight
from nb_mcp.actors.channels import Channels, ChannelsFailed, Heartbeat, Incoming
from nb_mcp.actors.execution import Execution
from nb_mcp.actors.gateway_channels import ChannelsResumed, GatewayLost, RemoteKernelDied
from nb_mcp.actors.kernel_ends import CellEnd, KernelEnd
from nb_mcp.actors.kernel_events import KernelEvents
from nb_mcp.actors.kernel_messages import (
    Activity,
    Arrival,
    Assigned,
    Attach,
    ChannelsReady,
    InterruptKernel,
    KernelDown,
    KernelEnded,
    KernelUp,
    ProcessUp,
    QueueUp,
    RecordInFlight,
    RestartKernel,
    Resume,
    SessionDown,
    SessionUp,
    StartFailed,
    StartKernel,
)
from nb_mcp.actors.kernel_protocol import KernelState
from nb_mcp.actors.kernel_session_remote import RemoteChannels
from nb_mcp.actors.kernel_watch import TICK_SEC, Due, Readiness, due
from nb_mcp.actors.refs import NotebookRefs
from nb_mcp.supervisor.clock import Clock, Timer, cancel
from nb_mcp.supervisor.tree import SupervisedActor, Supervision


class KernelDied(Exception):
    """The kernel died; the session fails so that its supervisor counts the restart."""


class ChannelsBroken(Exception):
    """The kernel's channels could not be read; the restart rebuilds them."""


@dataclass(frozen=True)
class _Tick:
    pass


class KernelSession(RemoteChannels, SupervisedActor):
    def __init__(
        self,
        *,
        supervision: Supervision,
        refs: NotebookRefs,
        clock: Clock,
        progress_interval: float,
    ) -> None:
        super().__init__(supervision=supervision)
        self._refs = refs
        self._clock = clock
        self._progress_interval = progress_interval
        self._name = refs.path.name
        self._events = KernelEvents(str(refs.path), refs.path.name)
        self._cell = InFlight(refs, clock, on_end=self._cell_ended)
        self._queue: pykka.ActorRef[Any] | None = None
        self._process: pykka.ActorRef[Any] | None = None
        self._kernel: KernelUp | None = None  # the kernel our channels are to
        self._channels: Channels | None = None
        self._readiness = Readiness()
        self._attached = False  # the process has told us what kernel it has
        self._asked_start = False  # a start is under way for us: KernelUp or StartFailed comes
        self._accepted = 0  # the last Assigned handled (the queue resends later ones)
        self._activity = KernelState.IDLE
        self._ticker: Timer | None = None

    # ------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        self._refs.register("session", self.actor_ref)
        self._queue = self._refs.current("turns")
        if self._queue is not None:
            self._queue.tell(SessionUp(self.actor_ref))
        # else: the queue is restarting; its QueueUp brings us together

    def teardown(self, reason: BaseException | None) -> None:
        cancel(self._ticker)
        self._close_channels()
        self._refs.unregister("session", self.actor_ref)
        if self._queue is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                self._queue.tell(SessionDown(self.actor_ref, self._accepted, self._cell.handover()))

    def on_receive(self, message: Any) -> Any:
        handler = self._handlers.get(type(message))
        if handler is None:
            return super().on_receive(message)
        return handler(self, message)

    # ------------------------------------------------------------ the queue and the process

    def _on_resume(self, resume: Resume) -> None:
        if resume.handover is not None:
            self._cell.take(resume.handover)
        self._process = self._refs.current("process")
        self._tell_process(Attach(self.actor_ref))  # else: its ProcessUp brings us together

    def _on_restarted_peer(self, message: ProcessUp | QueueUp) -> None:
        if isinstance(message, QueueUp):
            self._queue = message.queue
            message.queue.tell(SessionUp(self.actor_ref))
            return
        self._process, self._attached = message.process, False
        self._tell_process(Attach(self.actor_ref))

    def _tell_process(self, message: Any) -> None:
        if self._process is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                self._process.tell(message)

    def _on_kernel_up(self, up: KernelUp) -> None:
        self._attached, self._asked_start = True, False
        kernel = self._kernel
        if kernel is not None and kernel.generation == up.generation and self._channels:
            return  # told twice (our Attach crossed the start's news): channels are open
        self._end_orphan(up.generation, up.previous_end)
        self._kernel, self._cell.memory_mb = up, up.memory_mb
        if up.inherited is not None:
            self._cell.inherit(up.inherited, up.generation)
        self._open_channels()
        execution = self._cell.execution
        if up.arrival is Arrival.RUNNING:
            self._events.recovered(execution.msg_id if execution else None)
            self._cell.reconnected("the kernel's output stream")
        elif up.arrival is Arrival.INHERITED:
            cell_id, job_id = (execution.cell_id, execution.job_id) if execution else (None, None)
            self._events.reattached(up.kernel_name, up.pid, cell_id, job_id)
        if up.arrival is not Arrival.STARTED:
            self._set_activity(KernelState.BUSY if execution else KernelState.IDLE)

    def _on_kernel_down(self, down: KernelDown) -> None:
        self._attached = True
        self._end_orphan(None, down.previous_end)
        self._asked_start = down.state is KernelState.STARTING
        self._dispatch()

    def _end_orphan(self, generation: int | None, previous: KernelEnd | None) -> None:
        """A cell sent to a kernel that is gone (its news reached a session that failed before
        it could act on it) ends as that kernel did."""
        execution = self._cell.execution
        if execution is None or execution.kernel in (0, generation):
            return
        same = previous is not None and previous.generation == execution.kernel
        self._cell.end(previous.cell if previous is not None and same else CellEnd.orphaned())

    def _on_kernel_ended(self, ended: KernelEnded) -> None:
        end = ended.end
        execution = self._cell.execution
        if execution is not None and execution.kernel in (0, end.generation):
            self._cell.end(end.cell)
        if self._kernel is not None and self._kernel.generation == end.generation:
            self._kernel = None
            self._close_channels()
        self._set_activity(KernelState.IDLE)
        if ended.fail:
            raise KernelDied(f"kernel of {self._name} ended: {end.cell.evalue}")

    def _on_start_failed(self, failed: StartFailed) -> None:
        self._asked_start, self._kernel = False, None
        self._close_channels()
        self._cell.end(CellEnd.start_failed(failed.reason))
        self._set_activity(KernelState.IDLE)

    def _set_activity(self, state: KernelState) -> None:
        if state is self._activity and state is KernelState.IDLE:
            return
        self._activity = state
        execution = self._cell.execution
        if execution is None or state is KernelState.IDLE:
            self._tell_process(Activity(state))
        else:
            begun = execution.execution_count is not None or execution.across_rebuild
            self._tell_process(
                Activity(state, execution.job_id, execution.cell_id, execution.to_writer, begun)
            )

    # ------------------------------------------------------------ executing

    def _on_assigned(self, assigned: Assigned) -> None:
        self._accepted = assigned.seq
        execute = assigned.execute
        if execute.resumed is not None:
            generation = self._kernel.generation if self._kernel is not None else 0
            self._cell.adopt(execute, generation)
            return
        self._cell.begin(execute)
        self._dispatch()

    def _dispatch(self) -> None:
        """Send the waiting cell, or get it a kernel (or channels) to be sent on."""
        execution = self._cell.execution
        if execution is None or execution.msg_id is not None or not self._attached:
            return  # nothing waits, or the process has yet to say what kernel there is
        if self._kernel is None:
            if not self._asked_start and execution.launch is not None:
                self._asked_start = True
                self._tell_process(StartKernel(execution.launch))
        elif self._channels is None:
            self._open_channels()  # closed after the gateway was lost: reconnect now
        elif self._readiness.ready:
            self._send_execute()
        # else: _became_ready() sends it once the channels answer

    def _send_execute(self) -> None:
        assert self._kernel is not None and self._channels is not None
        self._cell.send(self._channels, self._kernel.generation)
        self._set_activity(KernelState.BUSY)
        self._arm()

    # ------------------------------------------------------------ channels

    def _open_channels(self) -> None:
        assert self._kernel is not None
        self._close_channels()
        self._channels = self._kernel.open_channels(self.actor_ref, self._name)
        self._readiness = Readiness()
        self._send_probe()
        self._arm()

    def _close_channels(self) -> None:
        if self._channels is not None:
            self._channels.stop()
            self._channels = None

    def _send_probe(self) -> None:
        assert self._channels is not None
        msg_id = self._channels.send("shell", "kernel_info_request", {})
        self._readiness.probe_sent(msg_id, self._clock.monotonic())

    def _on_incoming(self, message: Incoming) -> None:
        msg = message.msg
        msg_type = msg["header"]["msg_type"]
        parent = (msg.get("parent_header") or {}).get("msg_id")
        if message.channel == "shell":
            if self._readiness.is_probe(parent):
                self._probe_answered()
            elif msg_type == "execute_reply":
                self._cell.replied(parent, msg["content"])
            return
        if message.channel != "iopub":
            return
        if self._readiness.iopub_delivered(parent, getattr(self._cell.execution, "msg_id", None)):
            self._became_ready()
        self._cell.iopub(msg_type, parent, msg["content"])
        if msg_type == "execute_input" and self._activity is KernelState.BUSY:
            self._set_activity(KernelState.BUSY)  # the process hears the cell has begun

    def _probe_answered(self) -> None:
        if self._readiness.answered():
            self._became_ready()
        execution = self._cell.execution
        if execution is not None and execution.across_rebuild:
            execution.probe_answered_at = self._clock.monotonic()

    def _became_ready(self) -> None:
        kernel = self._kernel
        assert kernel is not None
        self._tell_process(ChannelsReady(kernel.generation))
        if kernel.arrival is Arrival.STARTED:
            startup = self._clock.monotonic() - kernel.began
            self._events.ready(kernel.kernel_name, kernel.pid, startup, kernel.remote)
            if kernel.restart_reason:
                self._events.restarted(kernel.restart_reason, kernel.pid)
            self._set_activity(KernelState.IDLE)
            # Ready once: channels opened again later (a lost gateway) reach a running kernel.
            self._kernel = replace(kernel, arrival=Arrival.RUNNING)
        self._dispatch()

    # ------------------------------------------------------------ watching

    def _arm(self) -> None:
        if self._ticker is None:
            self._ticker = self._clock.tell_every(TICK_SEC, self.actor_ref, _Tick())

    def _on_tick(self, _: _Tick) -> None:
        now = self._clock.monotonic()
        if self._channels is not None and self._readiness.probe_due(now):
            # Until iopub shows something our subscription may not be live yet, and output
            # published meanwhile would be lost: keep asking (each reply is published too).
            self._send_probe()
        execution = self._cell.execution
        if execution is not None and execution.msg_id is not None:
            interval = execution.progress_interval or self._progress_interval
            for found in due(execution, now, interval):
                self._act(found, now)
        sending = self._cell.execution is not None and self._cell.execution.msg_id is not None
        if not sending and (self._channels is None or self._readiness.ready):
            cancel(self._ticker)  # nothing to watch until the next cell
            self._ticker = None

    def _act(self, found: Due, now: float) -> None:
        execution = self._cell.execution
        assert execution is not None
        if found is Due.INTERRUPT:
            cell_id = execution.cell_id if execution.to_writer else None
            self._tell_process(InterruptKernel(execution.job_id, cell_id, execution.timeout or 0))
        elif found is Due.RESTART:
            # It ignored the interrupt (a C extension, a frozen process): restart the kernel, as
            # it was, with the running cell's session's environment.
            self._cell.end(CellEnd.timed_out(execution.timeout or 0))
            if execution.launch is not None:
                self._kernel, self._asked_start = None, True  # nothing more goes to this one
                self._close_channels()
                reason = "the cell did not stop after its timeout"
                self._tell_process(RestartKernel(execution.launch, reason))
        elif found is Due.RECORD and self._kernel is not None:
            self._tell_process(RecordInFlight(self._kernel.generation, execution.record(now)))
        elif found in (Due.OUTPUT_EVENT, Due.HEARTBEAT_EVENT):
            self._cell.progress_event(output=found is Due.OUTPUT_EVENT)
        elif found is Due.OVER_AFTER_REBUILD:
            self._cell.over_after_rebuild()
        elif found is Due.PROGRESS_TO_JOB:
            self._cell.progress_to_job()
        elif found is Due.IDLE_LOST:
            self._cell.idle_lost()
        elif found is Due.REPLY_LOST:
            self._cell.end(CellEnd.unanswered())

    def _cell_ended(self, execution: Execution) -> None:
        """Whatever ended it: the kernel's record forgets it, and the kernel is idle."""
        if execution.recorded and self._kernel is not None:
            self._tell_process(RecordInFlight(self._kernel.generation, None))
        self._set_activity(KernelState.IDLE)

    def _on_heartbeat(self, beat: Heartbeat) -> None:
        kernel = self._kernel
        if kernel is None or (kernel.arrival is Arrival.STARTED and not self._readiness.ready):
            return  # a slow start is not a freeze: the start has its own timeout
        if beat.beating:
            self._set_activity(KernelState.BUSY if self._cell.execution else KernelState.IDLE)
            return
        self._set_activity(KernelState.UNRESPONSIVE)
        self._events.unresponsive(kernel.pid, beat.silent_sec)
        self._cell.mark_unresponsive()

    # ------------------------------------------------------------ channel failures

    def _on_channels_failed(self, failure: ChannelsFailed) -> None:
        self._events.desync(failure.channel, failure.error)
        raise ChannelsBroken(failure.error)

    _handlers: ClassVar[dict[type, Callable[[KernelSession, Any], None]]] = {
        Incoming: _on_incoming,
        _Tick: _on_tick,
        Assigned: _on_assigned,
        Heartbeat: _on_heartbeat,
        ChannelsFailed: _on_channels_failed,
        KernelUp: _on_kernel_up,
        KernelDown: _on_kernel_down,
        KernelEnded: _on_kernel_ended,
        StartFailed: _on_start_failed,
        Resume: _on_resume,
        ProcessUp: _on_restarted_peer,
        QueueUp: _on_restarted_peer,
        ChannelsResumed: RemoteChannels._on_channels_resumed,
        GatewayLost: RemoteChannels._on_gateway_lost,
        RemoteKernelDied: RemoteChannels._on_remote_kernel_died,
    }
