"""KernelProcess: one per notebook. Owns the kernel process and answers for it.

It is the actor that rarely fails (OTP's answer for a port): a kernel death or a channel failure
restarts the KernelSession, never this actor, so the kernel process — and, for a channel
failure, every variable in it — outlives them. It starts a kernel when a session asks (in a
thread: seconds of start-up never block its mailbox), watches it every 0.1 s (`is_alive`), and
says when it died, could not start, or was replaced; it interrupts and stops it, keeps its
record in the state dir, and answers the tools (`info`, `interrupt`, `restart_kernel`,
`shutdown_kernel`) from what the session and the queue tell it, without asking them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
from nb_mcp.actors.backend import KernelBackend, KernelStartError, remote_of
from nb_mcp.actors.kernel_ends import CellEnd, KernelEnd, death_note
from nb_mcp.actors.kernel_events import KernelEvents
from nb_mcp.actors.kernel_interrupts import KernelInterrupts
from nb_mcp.actors.kernel_messages import (
    Activity,
    Arrival,
    Attach,
    ChannelsReady,
    InterruptKernel,
    JobsNow,
    KernelDown,
    KernelEnded,
    KernelUp,
    ProcessUp,
    RecordInFlight,
    RemoteDeath,
    RestartKernel,
    StartFailed,
    StartKernel,
)
from nb_mcp.actors.kernel_protocol import InterruptJob, KernelInfo, KernelState, Resumed
from nb_mcp.actors.kernel_status import Inheritance, KernelBook, Life
from nb_mcp.actors.launch import KernelLaunch
from nb_mcp.actors.refs import NotebookRefs
from nb_mcp.supervisor.clock import Clock, Timer, cancel
from nb_mcp.supervisor.tree import SupervisedActor, Supervision

__all__ = ["BackendFactory", "Inheritance", "KernelProcess"]

TICK_SEC = 0.1  # a dead kernel is found within this (the design asks for 0.5 s)
_STOP_WAITS_FOR_START_SEC = 10.0  # stopping mid-start: how long to wait for what it starts
_THREAD_GRACE_SEC = 30.0  # past the start timeout, a start-up thread that never answered

BackendFactory = Callable[[KernelLaunch], KernelBackend]


@dataclass(frozen=True)
class _Tick:
    pass


@dataclass(frozen=True)
class _Started:
    attempt: int
    backend: KernelBackend
    error: str | None


class KernelProcess(KernelInterrupts, SupervisedActor):
    def __init__(
        self,
        *,
        supervision: Supervision,
        refs: NotebookRefs,
        backends: BackendFactory,
        clock: Clock,
        inherited: Inheritance | None = None,
    ) -> None:
        super().__init__(supervision=supervision)
        self._refs = refs
        self._events = KernelEvents(str(refs.path), refs.path.name)
        self._backends = backends
        self._clock = clock
        self._inherited = inherited
        self._ticker: Timer | None = None
        self._backend: KernelBackend | None = None
        self._book = KernelBook()
        self._session: pykka.ActorRef[Any] | None = None
        self._inheritance_told = True  # False until the first session has heard of it
        self._resumed: Resumed | None = None
        self._cancelling: str | None = None  # a cancelled job whose cell is not busy yet
        self._start_under_way: tuple[threading.Thread, KernelBackend] | None = None

    # ------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        self._refs.register("process", self.actor_ref)
        self._ticker = self._clock.tell_every(TICK_SEC, self.actor_ref, _Tick())
        inherited = self._inherited
        if inherited is not None and inherited.claim():
            book = self._book
            self._backend = inherited.backend
            book.choice, book.kernel_name = inherited.choice, inherited.backend.kernel_name
            book.life, book.generation = Life.RUNNING, 1
            book.started_at, book.reattached = inherited.started_at, True
            book.began = self._clock.monotonic()
            self._resumed, self._inheritance_told = inherited.in_flight, False
        self._publish()
        session = self._refs.current("session")
        if session is not None:  # we were restarted: the session attaches again
            with contextlib.suppress(pykka.ActorDeadError):
                session.tell(ProcessUp(self.actor_ref))

    def teardown(self, reason: BaseException | None) -> None:
        cancel(self._ticker)
        self._refs.unregister("process", self.actor_ref)
        self._refs.put_kernel_info(None)  # whatever it ran is stopped below
        self._stop_start_under_way()
        if reason is None:
            # Stopped: the server, or nb gave up on the notebook. A kernel gets a second to
            # shut down cleanly, then its process group is killed.
            self._stop_kernel(self.stopping_reason or "server stopped", grace=1.0)
            return
        # Failed (a bug of ours): the kernel is nobody's now, so it goes, and the cell with it.
        why = f"nb's kernel process actor failed ({type(reason).__name__}: {reason})"
        self._end(CellEnd.died(why), fail=True)
        self._stop_kernel(why, grace=0.0)

    def _handle_receive(self, message: Any) -> Any:
        # pykka's one dispatch, for tells and the tools' asks alike: after each, the kernel
        # as it is now goes up for the facade to read without an ask (refs.kernel_info).
        try:
            return super()._handle_receive(message)
        finally:
            if not self.actor_stopped.is_set():  # once stopped, teardown's None stands
                self._publish()

    def _publish(self) -> None:
        self._refs.put_kernel_info(self.info())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Tick):
            return self._on_tick()
        if isinstance(message, Activity):
            self._book.activity = message
            self._on_activity_for_cancel()
        elif isinstance(message, InterruptJob):
            self._cancelling = message.job_id
            self._on_activity_for_cancel()
        elif isinstance(message, JobsNow):
            self._book.jobs = message
        elif isinstance(message, RecordInFlight):
            if self._backend is not None and message.generation == self._book.generation:
                self._backend.record_execution(message.in_flight)
        elif isinstance(message, Attach):
            self._on_attach(message)
        elif isinstance(message, StartKernel):
            self._on_start_kernel(message)
        elif isinstance(message, _Started):
            self._on_started(message)
        elif isinstance(message, ChannelsReady):
            if message.generation == self._book.generation and self._book.life is Life.STARTING:
                self._book.life = Life.RUNNING
        elif isinstance(message, InterruptKernel):
            self._on_timeout_interrupt(message)
        elif isinstance(message, RestartKernel):
            self._replace(message.launch.again(self._book.choice), message.reason)
        elif isinstance(message, RemoteDeath):
            self._on_remote_death(message)
        else:
            return super().on_receive(message)
        return None

    # ------------------------------------------------------------ the tools' requests (asks)

    def info(self) -> KernelInfo:
        backend = self._backend
        if backend is None:
            return self._book.info(None)
        return self._book.info(backend.pid, remote_of(backend))

    def interrupt(self) -> str:
        backend = self._backend
        if backend is None or not backend.is_alive():
            return "no kernel is running for this notebook; nothing to interrupt"
        job_id = self._book.busy_job()
        self._interrupt(f"interrupted the kernel of {self._events.name}", "user", job_id=job_id)
        if job_id is None:
            return "sent an interrupt; the kernel was idle"
        return f"sent an interrupt to the running cell {self._book.activity.cell_id}"

    def restart_kernel(self, launch: KernelLaunch) -> str:
        """Restart with the calling session's choice and environment (variables are lost)."""
        self._end(CellEnd.restarted())
        self._replace(launch, "restart_kernel")
        return f"restarting the kernel in {launch.choice.describe()} (variables are gone)"

    def shutdown_kernel(self) -> str:
        if self._backend is None:
            return "no kernel was running"
        self._end(CellEnd.stopped())
        self._stop_kernel("shutdown_kernel", grace=2.0)
        return "the kernel is shut down; the next execution starts a new one"

    # ------------------------------------------------------------ the session

    def _on_attach(self, attach: Attach) -> None:
        self._session, book = attach.session, self._book
        if self._backend is None or book.life not in (Life.STARTING, Life.RUNNING):
            # STARTING without a backend: a start is under way, and KernelUp follows it.
            state = {Life.DEAD: KernelState.DEAD, Life.STARTING: KernelState.STARTING}
            self._tell_session(KernelDown(state.get(book.life, KernelState.NONE), book.last_end))
            return
        if not self._inheritance_told:
            self._kernel_up(Arrival.INHERITED)
        else:
            self._kernel_up(Arrival.RUNNING if book.life is Life.RUNNING else Arrival.STARTED)
        self._inheritance_told, self._resumed = True, None

    def _kernel_up(self, arrival: Arrival) -> None:
        backend, book = self._backend, self._book
        assert backend is not None
        up = KernelUp(
            generation=book.generation,
            arrival=arrival,
            open_channels=backend.open_channels,
            pid=backend.pid,
            kernel_name=book.kernel_name or backend.kernel_name,
            began=book.began,
            restart_reason=book.restart_reason,
            memory_mb=backend.limits.memory_mb,
            inherited=self._resumed if arrival is Arrival.INHERITED else None,
            previous_end=book.last_end,
            remote=remote_of(backend),
        )
        self._tell_session(up)

    def _tell_session(self, message: Any) -> None:
        if self._session is None:
            return
        try:
            self._session.tell(message)
        except pykka.ActorDeadError:
            self._session = None  # the next incarnation attaches and hears it then

    def _end(self, cell: CellEnd, fail: bool = False) -> None:
        """The kernel is going: its cell in flight ends so (`fail`: a death, counted)."""
        if self._backend is not None:
            end = KernelEnd(self._book.generation, cell)
            self._book.last_end = end
            self._tell_session(KernelEnded(end, fail))

    # ------------------------------------------------------------ starting

    def _on_start_kernel(self, start: StartKernel) -> None:
        life = self._book.life
        if self._backend is not None and life in (Life.STARTING, Life.RUNNING):
            self._kernel_up(Arrival.STARTED if life is Life.STARTING else Arrival.RUNNING)
        elif life is not Life.STARTING:  # (a start under way answers with KernelUp)
            self._start(start.launch)

    def _start(
        self, launch: KernelLaunch, reason: str = "", restarting: KernelBackend | None = None
    ) -> None:
        """Start a kernel for `launch` in a thread; with `restarting`, restart that one in
        place instead (a gateway's kernel: same id, variables gone), answered the same way."""
        self._book.starting(launch, self._clock.monotonic(), reason)
        self._events.starting(launch)
        if restarting is not None:
            backend = restarting
        else:
            try:
                backend = self._backends(launch)
            except KernelStartError as error:  # e.g. a gateway setting that cannot be used
                self._start_failed(str(error))
                return
            except Exception as error:  # a backend that cannot even be built: a start failure
                self._start_failed(f"{type(error).__name__}: {error}")
                return
        self._book.start_timeout = max(launch.start_timeout, backend.start_timeout)
        ref, attempt = self.actor_ref, self._book.attempt
        # Only a backend whose restarts_in_place said yes is restarted (it has `restart`).
        begin = backend.restart if restarting is not None else backend.start  # type: ignore[attr-defined]

        def start() -> None:
            # Seconds of process start-up (minutes for a remote image pull) must not block
            # this actor's mailbox.
            error = None
            try:
                begin()
            except KernelStartError as failure:
                error = str(failure)
            except Exception as failure:
                error = f"{type(failure).__name__}: {failure}"
            try:
                ref.tell(_Started(attempt, backend, error))
            except pykka.ActorDeadError:
                backend.stop(grace=0.0)  # nobody will: never leak a kernel

        thread = threading.Thread(target=start, name=f"start-{self._events.name}", daemon=True)
        self._start_under_way = (thread, backend)
        thread.start()

    def _stop_start_under_way(self) -> None:
        """Stopping mid-start (the server exits right after an exec): wait a little, then stop
        what it started, or that kernel outlives everyone (its _Started dies in our mailbox)."""
        if self._start_under_way is None:
            return
        thread, backend = self._start_under_way
        self._start_under_way = None
        thread.join(timeout=_STOP_WAITS_FOR_START_SEC)
        if backend is not self._backend:
            backend.stop(grace=0.0)

    def _on_started(self, started: _Started) -> None:
        if self._start_under_way is not None and self._start_under_way[1] is started.backend:
            self._start_under_way = None  # answered: whatever it started is handled below
        book = self._book
        if started.attempt != book.attempt or book.life is not Life.STARTING:
            started.backend.stop(grace=0.0)  # an answer to a start given up on: never leak
        elif started.error is not None:
            started.backend.stop(grace=0.0)
            self._start_failed(started.error)
        else:
            self._backend, book.generation = started.backend, book.generation + 1
            book.started_at = self._clock.time()
            if getattr(started.backend, "reattached", False):
                book.reattached = True
                self._events.reattached(book.kernel_name or "", None, None, None)
            self._kernel_up(Arrival.STARTED)

    def _start_failed(self, reason: str) -> None:
        self._events.start_failed(self._book.kernel_name, reason)
        if self._backend is not None:
            self._backend.stop(grace=0.0)
        self._backend = None
        self._book.gone(Life.NONE)
        self._tell_session(StartFailed(reason))

    def _replace(self, launch: KernelLaunch, reason: str) -> None:
        """Stop the kernel (no kernel.stopped: kernel.restarted follows) and start another;
        a gateway's kernel for the same gateway and kernelspec is restarted there instead
        (a new kernel could mean minutes of launch), and readied as a new one: its channels
        opened again and probed until iopub delivers."""
        backend = self._backend
        in_place = getattr(backend, "restarts_in_place", None)
        if backend is not None and in_place is not None and in_place(launch.env, launch.label):
            self._backend = None  # nothing goes to it until it answers as the new kernel
            self._start(launch, reason, restarting=backend)
            return
        self._stop_kernel(reason, grace=0.0, emit_stopped=False)
        self._start(launch, reason)

    # ------------------------------------------------------------ watching

    def _on_tick(self) -> None:
        backend, book, now = self._backend, self._book, self._clock.monotonic()
        if book.life is Life.STARTING:
            if backend is None:
                if now - book.began > book.start_timeout + _THREAD_GRACE_SEC:
                    self._start_failed("the start-up thread did not answer")
            elif not backend.is_alive():
                self._start_failed(backend.death_reason() or backend.startup_exit())
            elif now - book.began > book.start_timeout:
                names = "NB_MCP_KERNEL_START_TIMEOUT_SEC"
                if backend.start_timeout:  # a gateway's launch has its own bound
                    names += ", or the gateway's KERNEL_LAUNCH_TIMEOUT"
                timeout = f"{book.start_timeout:.0f}s ({names})"
                self._start_failed(f"no answer within {timeout}")
        elif book.life is Life.RUNNING and backend is not None and not backend.is_alive():
            self._died()

    def _on_remote_death(self, death: RemoteDeath) -> None:
        if self._book.life is Life.STARTING and self._backend is not None:
            self._start_failed(death.reason)
        elif self._book.life is Life.RUNNING:
            self._died(death.reason)

    def _died(self, reported: str | None = None) -> None:
        backend = self._backend
        assert backend is not None
        code = backend.exit_code()
        note = death_note(code, backend.limits, backend.death_reason() or reported)
        self._events.died(note, backend.pid, code, self._book.busy_job(), remote_of(backend))
        self._end(CellEnd.died(note), fail=True)
        backend.stop(grace=0.0)
        self._backend = None
        self._book.gone(Life.DEAD)

    # ------------------------------------------------------------ stopping

    def _stop_kernel(self, reason: str, grace: float, emit_stopped: bool = True) -> None:
        backend, self._backend = self._backend, None
        self._book.gone(Life.NONE)
        if backend is not None:
            pid = backend.pid
            backend.stop(grace=grace)
            if emit_stopped:
                self._events.stopped(reason, pid)
