"""KernelActor: one per notebook. Owns the kernel, its channels, the job queue and deadlines.

Its restart state (`KernelSlot`, kept in the child spec) holds what must outlive an
incarnation: the kernel process, the FIFO of jobs, and the execution in flight. So:
- a read failure on the channels (iopub desync) fails the actor; the restart builds new
  channels on the same kernel, variables untouched, and resumes routing the same msg_id;
- a dead kernel (process gone) is found by the tick within 0.1 s: the running cell gets an
  `NbMcpKernelDied` error, its job ends, and the actor fails so the supervisor counts it; the
  next execution starts a fresh kernel.

Jobs take turns: a job `enqueue`s, is told `Turn` when the kernel is its, sends one cell at a
time with `execute`, and `release`s the kernel when it is done.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.backend import NO_LIMITS, KernelBackend, KernelStartError, Limits, LocalBackend
from nb_mcp.actors.channels import ChannelPump, ChannelsFailed, Heartbeat, Incoming
from nb_mcp.actors.execution import OUTPUT_TYPES, Execution, KernelSlot
from nb_mcp.actors.kernel_protocol import (
    CellDone,
    CellProgress,
    KernelInfo,
    ScratchMessage,
    Turn,
    Waiting,
)
from nb_mcp.actors.launch import KernelLaunch
from nb_mcp.actors.log import emit
from nb_mcp.actors.refs import NotebookRefs, NotRunning
from nb_mcp.actors.timers import Ticker
from nb_mcp.actors.writer import CellMessage
from nb_mcp.supervisor.tree import SupervisedActor, Supervision

_TICK = 0.1
_PROBE_EVERY = 0.5
_INTERRUPT_GRACE = 5.0
_PROGRESS_TO_JOB = 0.5


class KernelDied(Exception):
    """The kernel process died; the KernelActor fails so its supervisor counts the restart."""


class ChannelsBroken(Exception):
    """The kernel's channels could not be read; the restart rebuilds them."""


class _Tick:
    pass


@dataclass(frozen=True)
class _Started:
    backend: KernelBackend | None
    error: str | None


# ---------------------------------------------------------------- the actor


class KernelActor(SupervisedActor):
    def __init__(
        self,
        *,
        supervision: Supervision,
        refs: NotebookRefs,
        state_dir: Path,
        start_timeout: float,
        progress_interval: float,
        transport: str = "ipc",
        limits: Limits = NO_LIMITS,
    ) -> None:
        super().__init__(supervision=supervision)
        self._transport = transport
        self._limits = limits
        self._slot: KernelSlot = supervision.state
        self._refs = refs
        self._state_dir = state_dir
        self._start_timeout = start_timeout
        self._progress_interval = progress_interval
        self._pump: ChannelPump | None = None
        self._ticker: Ticker | None = None
        # Ready: a kernel_info_reply came back AND iopub has delivered something, so our
        # subscription is live and output published from now on reaches us.
        self._ready = False
        self._probes: set[str] = set()
        self._probe_sent = 0.0
        self._probe_replied = False
        self._saw_iopub = False
        self._start_began = 0.0
        self._restart_reason: tuple[str, int | None] = ("", None)

    @property
    def _notebook(self) -> str:
        return str(self._slot.notebook)

    # ------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        self._refs.register("kernel", self.actor_ref)
        self._ticker = Ticker(
            _TICK, self.actor_ref, _Tick(), name=f"tick-{self._slot.notebook.name}"
        )
        slot = self._slot
        if slot.backend is not None:
            if slot.backend.is_alive():
                # A restart after a channel failure: same kernel, new channels.
                self._connect()
                self._recovered()
            else:
                slot.backend, slot.state = None, "dead"
        if slot.turn is None:
            self._grant_next()

    def teardown(self, reason: BaseException | None) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        if self._pump is not None:
            self._pump.stop()
        self._refs.unregister("kernel", self.actor_ref)
        if reason is None:
            # Stopped, not failed: the server or the notebook is going away. A kernel gets a
            # second to shut down cleanly, then its process group is killed.
            self._stop_kernel("server stopped", grace=1.0)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Incoming):
            return self._on_incoming(message)
        if isinstance(message, _Tick):
            return self._on_tick()
        if isinstance(message, ChannelsFailed):
            return self._on_channels_failed(message)
        if isinstance(message, Heartbeat):
            return self._on_heartbeat(message)
        if isinstance(message, _Started):
            return self._on_started(message)
        return super().on_receive(message)

    # ------------------------------------------------------------ jobs

    def enqueue(self, job_id: str, job: pykka.ActorRef, launch: KernelLaunch) -> None:
        self._slot.queue.append((job_id, job, launch))
        if self._slot.turn is None:
            self._grant_next()
        else:
            job.tell(Waiting(ahead=len(self._slot.queue)))

    def release(self, job_id: str) -> None:
        slot = self._slot
        if slot.turn is not None and slot.turn[0] == job_id:
            slot.turn = None
            self._grant_next()
        else:
            slot.queue = deque(entry for entry in slot.queue if entry[0] != job_id)

    def execute(
        self,
        job_id: str,
        job: pykka.ActorRef,
        cell_id: str,
        code: str,
        timeout: float | None,
        to_writer: bool,
        launch: KernelLaunch,
        progress_interval: float | None = None,
    ) -> None:
        slot = self._slot
        slot.execution = execution = Execution(job_id, job, cell_id, code, to_writer, timeout)
        execution.launch, execution.progress_interval = launch, progress_interval  # its session's
        try:
            if slot.backend is not None:
                if self._ready:
                    self._send_execute()
                # else: channels are being (re)built; _check_ready() sends it once they answer
            elif slot.state != "starting":
                self._start(launch)
        except Exception as error:  # the job must hear back, whatever happened
            self._end_execution("error", "NbMcpInternalError", f"{type(error).__name__}: {error}")
            raise

    def _grant_next(self) -> None:
        slot = self._slot
        if slot.turn is not None or not slot.queue:
            return
        job_id, job, _ = slot.queue.popleft()
        slot.turn = (job_id, job)
        try:
            job.tell(Turn())
        except pykka.ActorDeadError:
            slot.turn = None
            self._grant_next()
            return
        for ahead, (_, waiting, _) in enumerate(slot.queue, start=1):
            with contextlib.suppress(pykka.ActorDeadError):
                waiting.tell(Waiting(ahead=ahead))

    # ------------------------------------------------------------ requests from tools

    def info(self) -> KernelInfo:
        return self._slot.info()

    def interrupt(self) -> str:
        slot = self._slot
        if slot.backend is None or not slot.backend.is_alive():
            return "no kernel is running for this notebook; nothing to interrupt"
        slot.backend.interrupt()
        emit(
            "kernel.interrupted",
            f"interrupted the kernel of {slot.notebook.name}",
            notebook=self._notebook,
            reason="user",
            kernel_pid=slot.backend.pid,
            job_id=slot.execution.job_id if slot.execution else None,
        )
        if slot.execution is None:
            return "sent an interrupt; the kernel was idle"
        return f"sent an interrupt to the running cell {slot.execution.cell_id}"

    def restart_kernel(self, launch: KernelLaunch) -> str:
        """Restart with the calling session's choice and environment (variables are lost)."""
        slot = self._slot
        old_pid = slot.backend.pid if slot.backend is not None else None
        self._end_execution(
            "error",
            "NbMcpKernelRestarted",
            "the kernel was restarted by restart_kernel while this cell ran",
        )
        self._stop_kernel("restart_kernel", grace=0.0, emit_stopped=False)
        self._start(launch, reason="restart_kernel", old_pid=old_pid)
        return f"restarting the kernel in {launch.choice.describe()} (variables are gone)"

    def shutdown_kernel(self) -> str:
        slot = self._slot
        if slot.backend is None:
            return "no kernel was running"
        self._end_execution(
            "error",
            "NbMcpKernelStopped",
            "the kernel was shut down by shutdown_kernel while this cell ran",
        )
        self._stop_kernel("shutdown_kernel", grace=2.0)
        return "the kernel is shut down; the next execution starts a new one"

    # ------------------------------------------------------------ starting

    def _start(self, launch: KernelLaunch, reason: str = "", old_pid: int | None = None) -> None:
        slot = self._slot
        choice = launch.choice
        slot.state, slot.kernel_name = "starting", launch.label
        slot.choice, slot.session_id = choice, launch.session_id
        self._start_timeout = launch.start_timeout  # the starting session's
        self._ready = False
        self._start_began = time.monotonic()
        self._restart_reason = (reason, old_pid)
        emit(
            "kernel.starting",
            f"starting a kernel for {slot.notebook.name} in {choice.describe()}: {choice.rule}",
            notebook=self._notebook,
            kernel_name=launch.label,
            **launch.described(),
        )
        backend = LocalBackend(
            launch,
            slot.notebook.parent,
            self._state_dir,
            slot.notebook,
            transport=self._transport,
            limits=self._limits,
        )
        ref = self.actor_ref

        def start() -> None:
            # Seconds of process start-up must not block this actor's mailbox.
            try:
                backend.start()
                message = _Started(backend, None)
            except KernelStartError as error:
                message = _Started(None, str(error))
            except Exception as error:
                message = _Started(None, f"{type(error).__name__}: {error}")
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                if message.backend is not None:
                    message.backend.stop(grace=0.0)

        threading.Thread(target=start, name=f"start-{slot.notebook.name}", daemon=True).start()

    def _on_started(self, message: _Started) -> None:
        slot = self._slot
        if message.backend is None:
            self._start_failed(message.error or "unknown error")
            return
        if slot.backend is not None and slot.backend is not message.backend:
            message.backend.stop(grace=0.0)  # a kernel is already here: never leak one
            return
        slot.backend = message.backend
        slot.started_at = time.time()
        self._connect()

    def _connect(self) -> None:
        slot = self._slot
        assert slot.backend is not None
        if self._pump is not None:
            self._pump.stop()
        self._pump = ChannelPump(
            slot.backend.connection_info(), self.actor_ref, name=slot.notebook.name
        )
        self._pump.start()
        self._ready, self._saw_iopub, self._probe_replied = False, False, False
        self._probes.clear()
        self._send_probe()

    def _send_probe(self) -> None:
        assert self._pump is not None
        self._probes.add(self._pump.send("shell", "kernel_info_request", {}))
        self._probe_sent = time.monotonic()

    def _check_ready(self) -> None:
        if self._ready or not (self._probe_replied and self._saw_iopub):
            return
        self._ready = True
        execution = self._slot.execution
        if self._slot.state == "starting":
            self._became_ready()
        elif execution is not None and execution.msg_id is None:
            self._send_execute()

    def _became_ready(self) -> None:
        slot = self._slot
        startup = time.monotonic() - self._start_began
        slot.state = "idle"
        reason, _ = self._restart_reason
        pid = slot.backend.pid if slot.backend else None
        emit(
            "kernel.ready",
            f"{slot.kernel_name} kernel ready for {slot.notebook.name} (pid {pid}, {startup:.2f}s)",
            notebook=self._notebook,
            kernel_name=slot.kernel_name or "",
            kernel_pid=pid,
            startup_sec=round(startup, 3),
        )
        if reason:
            emit(
                "kernel.restarted",
                f"restarted the kernel of {slot.notebook.name} ({reason})",
                notebook=self._notebook,
                reason=reason,
                kernel_pid=pid,
            )
        if slot.execution is not None and slot.execution.msg_id is None:
            self._send_execute()

    def _start_failed(self, reason: str) -> None:
        slot = self._slot
        emit(
            "kernel.start_failed",
            f"the {slot.kernel_name} kernel for {slot.notebook.name} could not start: {reason}",
            level="error",
            notebook=self._notebook,
            kernel_name=slot.kernel_name or "",
            reason=reason,
        )
        if slot.backend is not None:
            slot.backend.stop(grace=0.0)
        slot.backend, slot.state = None, "none"
        if self._pump is not None:
            self._pump.stop()
            self._pump = None
        self._ready = False
        self._end_execution(
            "error", "NbMcpKernelStartFailed", f"the kernel could not start: {reason}"
        )

    # ------------------------------------------------------------ executing

    def _send_execute(self) -> None:
        slot = self._slot
        execution = slot.execution
        assert execution is not None and self._pump is not None
        execution.msg_id = self._pump.send(
            "shell",
            "execute_request",
            {
                "code": execution.code,
                "silent": False,
                "store_history": execution.to_writer,
                "user_expressions": {},
                # No stdin: input() raises at once instead of hanging an agent's tool call.
                "allow_stdin": False,
                "stop_on_error": True,
            },
        )
        execution.sent(execution.msg_id, time.monotonic())
        slot.recent_cells[execution.msg_id] = execution.cell_id
        while len(slot.recent_cells) > 32:
            slot.recent_cells.popitem(last=False)
        slot.state = "busy"

    def _on_incoming(self, message: Incoming) -> None:
        msg = message.msg
        msg_type = msg["header"]["msg_type"]
        parent = (msg.get("parent_header") or {}).get("msg_id")
        if message.channel == "shell":
            if parent in self._probes:
                self._probe_answered()
            elif msg_type == "execute_reply":
                self._replied(parent, msg["content"])
            return
        if message.channel != "iopub":
            return
        if not self._saw_iopub:
            self._saw_iopub = True
            self._check_ready()
        execution = self._slot.execution
        ours = execution is not None and parent is not None and parent == execution.msg_id
        if ours:
            execution.last_iopub = time.monotonic()
        if msg_type == "status":
            if ours and msg["content"].get("execution_state") == "idle":
                self._finish()
            return
        if msg_type not in OUTPUT_TYPES:
            return
        content = msg["content"]
        if ours:
            assert execution is not None
            self._route(execution, msg_type, content)
        elif msg_type == "update_display_data":
            self._to_writer("-", msg_type, content)
        elif parent in self._slot.recent_cells:
            # Output from a thread of a cell that already finished: it belongs to that cell.
            self._to_writer(self._slot.recent_cells[parent], msg_type, content)

    def _replied(self, parent: str | None, content: dict[str, Any]) -> None:
        """The shell says the cell is done. Shell is reliable where iopub may drop messages,
        so this bounds the wait for the idle that normally ends the cell."""
        execution = self._slot.execution
        if execution is not None and parent == execution.msg_id:
            execution.replied(content, time.monotonic())

    def _route(self, execution: Execution, msg_type: str, content: dict[str, Any]) -> None:
        visible = execution.saw(msg_type, content, time.monotonic())
        if execution.to_writer:
            self._to_writer(execution.cell_id, msg_type, content)
        else:
            self._tell_job(execution, ScratchMessage(msg_type, content))
            if msg_type == "update_display_data":
                self._to_writer("-", msg_type, content)
        if visible:
            self._progress_to_job(execution)

    def _to_writer(self, cell_id: str, msg_type: str, content: dict[str, Any]) -> None:
        try:
            # A plain tell: a proxy call would build a future for each of thousands of outputs.
            self._refs.tell("writer", CellMessage(cell_id, msg_type, content))
        except Exception as error:  # the writer is restarting: say so, keep the kernel going
            emit(
                "writer.output_dropped",
                f"output for cell {cell_id} not delivered: {error}",
                level="warning",
                notebook=self._notebook,
                cell_id=cell_id,
                reason=str(error),
            )

    def _progress_to_job(self, execution: Execution) -> None:
        now = time.monotonic()
        if now - execution.last_progress_to_job < _PROGRESS_TO_JOB:
            return
        execution.last_progress_to_job = now
        age = now - execution.last_output
        self._tell_job(
            execution,
            CellProgress(execution.cell_id, time.time() - age, execution.tail, execution.outputs),
        )

    @staticmethod
    def _tell_job(execution: Execution, message: Any) -> None:
        # The job may have stopped already (server stop, a give-up): the kernel carries on.
        if execution.job is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                execution.job.tell(message)

    def _finish(self, detail: str = "") -> None:
        slot = self._slot
        execution = slot.execution
        assert execution is not None
        if execution.ename == "MemoryError" and self._limits.memory_mb:
            detail = (
                f"the kernel's memory limit ({self._limits.memory_mb} MB, "
                "NB_MCP_KERNEL_MEMORY_MB) was reached"
            )
        self._deliver(execution, execution.status, detail=detail)
        slot.state = "idle" if slot.backend is not None else slot.state

    def _deliver(
        self,
        execution: Execution,
        status: str,
        ename: str | None = None,
        evalue: str | None = None,
        detail: str = "",
    ) -> None:
        slot = self._slot
        slot.execution = None
        if slot.backend is not None and execution.recorded:
            slot.backend.record_execution(None)
        duration = time.monotonic() - execution.started_mono if execution.started_mono else 0.0
        self._progress_to_job(execution)
        done = CellDone(
            cell_id=execution.cell_id,
            status=status,
            execution_count=execution.execution_count,
            duration=duration,
            ename=ename or execution.ename,
            evalue=evalue if evalue is not None else execution.evalue,
            detail=detail,
        )
        if execution.job is None:
            self._finish_resumed(execution, done)
            return
        self._tell_job(execution, done)

    def _finish_resumed(self, execution: Execution, done: CellDone) -> None:
        """End a cell resumed from an earlier daemon: no job is left to do it."""
        footer = nb.footer(done.status, time.time(), done.duration, done.ename)
        with contextlib.suppress(NotRunning):
            self._refs.writer().cell_finished(
                done.cell_id, footer, done.execution_count, execution.job_id
            )
        emit(
            "cell.finished",
            f"resumed cell {done.cell_id} {done.status}",
            level="info" if done.status == "ok" else "warning",
            job_id=execution.job_id,
            notebook=self._notebook,
            cell_id=done.cell_id,
            status=done.status,
            duration_sec=round(done.duration, 3),
            ename=done.ename,
        )
        self._slot.turn = None
        self._grant_next()

    def _end_execution(self, status: str, ename: str, evalue: str) -> None:
        """End the cell in flight (if any) with an error nb made itself."""
        execution = self._slot.execution
        if execution is None:
            return
        error = {
            "output_type": "error",
            "ename": ename,
            "evalue": evalue,
            "traceback": [f"{ename}: {evalue}"],
        }
        if execution.to_writer:
            self._to_writer(execution.cell_id, "error", error)
        else:
            self._tell_job(execution, ScratchMessage("error", error))
        self._deliver(execution, status, ename, evalue)

    # ------------------------------------------------------------ watching: tick, heartbeat

    def _on_tick(self) -> None:
        slot = self._slot
        now = time.monotonic()
        if slot.state == "starting":
            self._tick_starting(now)
            return
        if slot.backend is not None and not slot.backend.is_alive():
            self._died()
        if not self._ready and self._pump is not None and now - self._probe_sent > _PROBE_EVERY:
            self._send_probe()
        execution = slot.execution
        if execution is None or execution.msg_id is None:
            return
        self._check_deadline(execution, now)
        self._record_long_cell(execution, now)
        self._report_progress(execution, now)
        self._check_recovery(execution, now)
        if slot.execution is execution:
            self._check_lost_idle(execution, now)

    def _tick_starting(self, now: float) -> None:
        slot = self._slot
        if slot.backend is None:
            if now - self._start_began > self._start_timeout + 30:
                self._start_failed("the start-up thread did not answer")
            return
        if not slot.backend.is_alive():
            self._start_failed(slot.backend.startup_exit())
        elif now - self._start_began > self._start_timeout:
            self._start_failed(
                f"no answer within {self._start_timeout:.0f}s (NB_MCP_KERNEL_START_TIMEOUT_SEC)"
            )
        elif self._pump is not None and now - self._probe_sent > _PROBE_EVERY:
            # Until iopub shows something our subscription may not be live yet, and output
            # published meanwhile would be lost: keep asking (each reply is published too).
            self._send_probe()

    def _probe_answered(self) -> None:
        self._probe_replied = True
        self._check_ready()
        execution = self._slot.execution
        if execution is not None and execution.across_rebuild:
            execution.probe_answered_at = time.monotonic()

    def _check_deadline(self, execution: Execution, now: float) -> None:
        slot = self._slot
        if execution.deadline is None or now < execution.deadline:
            return
        if execution.timed_out_at is None:
            execution.timed_out_at = now
            if slot.backend is not None:
                slot.backend.interrupt()
            emit(
                "kernel.interrupted",
                f"cell {execution.cell_id} passed its "
                f"{execution.timeout:g}s timeout; interrupted the kernel",
                notebook=self._notebook,
                reason="timeout",
                job_id=execution.job_id,
                cell_id=execution.cell_id if execution.to_writer else None,
                kernel_pid=slot.backend.pid if slot.backend else None,
            )
        elif now - execution.timed_out_at > _INTERRUPT_GRACE:
            # It ignored the interrupt (a C extension, a frozen process): restart the kernel.
            self._end_execution(
                "timeout",
                "NbMcpTimeout",
                f"the cell ran past its {execution.timeout:g}s timeout and did "
                "not stop when interrupted; the kernel was restarted",
            )
            self._stop_kernel("timeout", grace=0.0, emit_stopped=False)
            if execution.launch is not None:  # as it was, with the running cell's session's env
                again = execution.launch.again(slot.choice)
                self._start(again, reason="the cell did not stop after its timeout")

    def _report_progress(self, execution: Execution, now: float) -> None:
        interval = execution.progress_interval or self._progress_interval
        due = execution.progress_due(now, interval)
        if due is None:
            return
        running = round(now - execution.started_mono, 3)
        if due == "output":
            emit(
                "cell.output",
                execution.tail[:200] or "(output)",
                job_id=execution.job_id,
                notebook=self._notebook,
                cell_id=execution.cell_id,
                tail=execution.tail[:500],
                outputs=execution.outputs,
                running_sec=running,
            )
        else:
            silent = round(now - execution.last_output, 3)
            emit(
                "cell.heartbeat",
                f"cell still running, silent for {silent:.0f}s",
                job_id=execution.job_id,
                notebook=self._notebook,
                cell_id=execution.cell_id,
                running_sec=running,
                silent_sec=silent,
            )

    def _record_long_cell(self, execution: Execution, now: float) -> None:
        # Only a cell still running after a second is worth a state-dir write: that is what a
        # daemon taking over a killed one's kernel needs, and it keeps short cells cheap.
        backend = self._slot.backend
        if backend is not None and execution.worth_recording(now):
            backend.record_execution(execution.record(now))

    def _check_lost_idle(self, execution: Execution, now: float) -> None:
        if not execution.idle_lost(now):
            return  # no reply yet, or iopub is still delivering: behind, not lost
        note = (
            "the kernel's output stream dropped messages under load (its idle never came); "
            "some output may be missing"
        )
        if execution.to_writer:
            self._to_writer(
                execution.cell_id,
                "stream",
                {"name": "stderr", "text": nb.marker(f"⚠ {note[0].upper()}{note[1:]}")["text"]},
            )
        self._finish(detail=note)

    def _check_recovery(self, execution: Execution, now: float) -> None:
        # After channels were rebuilt mid-cell, the idle that ends it may have been lost.
        if execution.over_after_rebuild(now):
            self._finish(
                detail="output between the channel failure and the reconnect may be missing"
            )

    def _on_heartbeat(self, beat: Heartbeat) -> None:
        slot = self._slot
        if slot.state == "starting":
            return  # a slow start is not a freeze: the start has its own timeout
        if not beat.beating:
            slot.unresponsive_since = time.monotonic() - beat.silent_sec
            slot.state = "unresponsive"
            emit(
                "kernel.unresponsive",
                f"the kernel of {slot.notebook.name} has not answered its "
                f"heartbeat for {beat.silent_sec:.0f}s (frozen or overloaded); interrupt or "
                "restart_kernel recover it",
                level="warning",
                notebook=self._notebook,
                kernel_pid=slot.backend.pid if slot.backend else None,
                silent_sec=round(beat.silent_sec, 3),
            )
            if slot.execution is not None and slot.execution.to_writer:
                self._to_writer(
                    slot.execution.cell_id,
                    "stream",
                    {
                        "name": "stderr",
                        "text": nb.marker(
                            f"⚠ The kernel stopped answering at {nb.clock()} (frozen or overloaded)"
                        )["text"],
                    },
                )
        else:
            slot.unresponsive_since = None
            slot.state = "busy" if slot.execution is not None else "idle"

    # ------------------------------------------------------------ failures

    def _died(self) -> None:
        slot = self._slot
        backend = slot.backend
        assert backend is not None
        code = backend.exit_code()
        limit = self._limits.describe_signal(-code) if code is not None and code < 0 else ""
        if limit:
            signal_note = limit
        elif code is not None and code < 0:
            signal_note = f"killed by {_signal_name(-code)}"
            if code == -signal.SIGKILL:
                signal_note += ", as the out-of-memory killer does"
        else:
            signal_note = f"exit code {code}"
        emit(
            "kernel.died",
            f"the kernel of {slot.notebook.name} died ({signal_note})",
            level="error",
            notebook=self._notebook,
            kernel_pid=backend.pid,
            exit_code=code,
            reason=signal_note,
            job_id=slot.execution.job_id if slot.execution else None,
        )
        self._end_execution(
            "died",
            "NbMcpKernelDied",
            f"the kernel process died while this cell ran ({signal_note}). Its variables are "
            "gone: the next execution starts a fresh kernel, so re-run the cells this one needs.",
        )
        # The job whose cell died is over; its release may reach only this dying incarnation.
        slot.turn = None
        backend.stop(grace=0.0)
        slot.backend, slot.state, self._ready = None, "dead", False
        raise KernelDied(f"kernel of {slot.notebook.name} died ({signal_note})")

    def _on_channels_failed(self, failure: ChannelsFailed) -> None:
        emit(
            "iopub.desync",
            f"reading the kernel's {failure.channel} channel failed: "
            f"{failure.error}; rebuilding the channels",
            level="error",
            notebook=self._notebook,
            error=f"{failure.channel}: {failure.error}",
        )
        raise ChannelsBroken(failure.error)

    def _recovered(self) -> None:
        slot = self._slot
        execution = slot.execution
        if slot.recovery_note:
            self._taken_over()
            return
        emit(
            "iopub.recovered",
            f"rebuilt the kernel channels of {slot.notebook.name}; reading resumed",
            notebook=self._notebook,
            resumed_msg_id=execution.msg_id if execution else None,
        )
        slot.state = "busy" if execution is not None else "idle"
        if execution is None:
            return
        if execution.to_writer:
            self._to_writer(
                execution.cell_id,
                "stream",
                {
                    "name": "stderr",
                    "text": nb.marker(
                        f"⚠ Lost the kernel's output stream and reconnected at {nb.clock()}; "
                        "output in between may be missing"
                    )["text"],
                },
            )
        # The probe _connect() sent is answered once the kernel has finished this cell.
        execution.across_rebuild = execution.msg_id is not None

    def _taken_over(self) -> None:
        """The kernel outlived the daemon that started it; this one carries on with it."""
        slot = self._slot
        note, slot.recovery_note = slot.recovery_note, ""
        execution = slot.execution
        slot.state = "busy" if execution is not None else "idle"
        emit(
            "kernel.reattached",
            f"took over the running {slot.kernel_name} kernel of {slot.notebook.name} (pid "
            f"{slot.backend.pid if slot.backend else '?'}) from a daemon that stopped",
            notebook=self._notebook,
            kernel_pid=slot.backend.pid if slot.backend else None,
            cell_id=execution.cell_id if execution else None,
            job_id=execution.job_id if execution else None,
        )
        if execution is None:
            return
        with contextlib.suppress(NotRunning):
            self._refs.writer().resume_cell(execution.cell_id, nb.marker(note))
        execution.across_rebuild = execution.msg_id is not None

    def _stop_kernel(self, reason: str, grace: float, emit_stopped: bool = True) -> None:
        slot = self._slot
        backend = slot.backend
        if self._pump is not None:
            self._pump.stop()
            self._pump = None
        self._ready = False
        if backend is None:
            return
        pid = backend.pid
        backend.stop(grace=grace)
        slot.backend, slot.state = None, "none"
        if emit_stopped:
            emit(
                "kernel.stopped",
                f"stopped the kernel of {slot.notebook.name} ({reason})",
                notebook=self._notebook,
                reason=reason,
                kernel_pid=pid,
            )


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
