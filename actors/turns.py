"""TurnQueue: one per notebook. Jobs take turns on the kernel through it, FIFO.

It is the stable door to the kernel for jobs: a kernel death or a channel failure restarts the
KernelSession, never the queue, so a job never waits for a restart (its Enqueue, Execute and
Release are tells to an actor that is there) and queued jobs survive a kernel death (they run on
a fresh kernel). It forwards each job's Execute to the current session, numbered; while the
session restarts it holds them, and what the dying session left (the execution in flight, whose
reading resumes on the same msg_id), for the next one.
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any

import pykka
from nb_mcp.actors.kernel_messages import (
    Assigned,
    Handover,
    JobsNow,
    QueueUp,
    Resume,
    SessionDown,
    SessionUp,
)
from nb_mcp.actors.kernel_protocol import Enqueue, Execute, Release, Turn, Waiting
from nb_mcp.actors.refs import NotebookRefs
from nb_mcp.supervisor.tree import Stopping, SupervisedActor, Supervision


class TurnQueue(SupervisedActor):
    def __init__(self, *, supervision: Supervision, refs: NotebookRefs) -> None:
        super().__init__(supervision=supervision)
        self._refs = refs
        self._waiting: deque[tuple[str, pykka.ActorRef[Any]]] = deque()
        self._turn: tuple[str, pykka.ActorRef[Any]] | None = None
        self._session: pykka.ActorRef[Any] | None = None
        self._seq = 0
        # Sent to the session, not known to be handled: a session that fails has left those
        # still in its mailbox unhandled, and says which was the last it handled.
        self._unconfirmed: deque[Assigned] = deque(maxlen=8)
        self._held: list[Assigned] = []  # for the next session
        self._handover: Handover | None = None

    def setup(self) -> None:
        self._refs.register("turns", self.actor_ref)
        session = self._refs.current("session")
        if session is not None:  # restarted after a bug of ours: the session re-announces
            with contextlib.suppress(pykka.ActorDeadError):
                session.tell(QueueUp(self.actor_ref))

    def teardown(self, reason: BaseException | None) -> None:
        self._refs.unregister("turns", self.actor_ref)
        if reason is not None:
            # Our books are gone with us: the jobs that relied on them end rather than hang.
            why = f"the notebook's job queue failed ({type(reason).__name__}: {reason})"
            for _, job in [*([self._turn] if self._turn else []), *self._waiting]:
                with contextlib.suppress(pykka.ActorDeadError):
                    job.tell(Stopping(why))
                    job.stop(block=False)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Execute):
            return self._on_execute(message)
        if isinstance(message, Enqueue):
            return self._on_enqueue(message)
        if isinstance(message, Release):
            return self._on_release(message)
        if isinstance(message, SessionUp):
            return self._on_session_up(message)
        if isinstance(message, SessionDown):
            return self._on_session_down(message)
        return super().on_receive(message)

    # ------------------------------------------------------------ jobs

    def _on_enqueue(self, message: Enqueue) -> None:
        self._waiting.append((message.job_id, message.job))
        if self._turn is None:
            self._grant_next()
        else:
            with contextlib.suppress(pykka.ActorDeadError):
                message.job.tell(Waiting(ahead=len(self._waiting)))
            self._publish()

    def _on_release(self, message: Release) -> None:
        if self._turn is not None and self._turn[0] == message.job_id:
            self._turn = None
            self._grant_next()
        else:
            self._waiting = deque(entry for entry in self._waiting if entry[0] != message.job_id)
            self._publish()

    def _grant_next(self) -> None:
        while self._turn is None and self._waiting:
            job_id, job = self._waiting.popleft()
            try:
                job.tell(Turn())
            except pykka.ActorDeadError:
                continue  # it stopped while it waited
            self._turn = (job_id, job)
        for ahead, (_, waiting) in enumerate(self._waiting, start=1):
            with contextlib.suppress(pykka.ActorDeadError):
                waiting.tell(Waiting(ahead=ahead))
        self._publish()

    def _publish(self) -> None:
        """Tell the kernel's process actor (which answers `status`) who runs and who waits."""
        process = self._refs.current("process")
        if process is not None:
            running = self._turn[0] if self._turn else None
            jobs = JobsNow(running, tuple(job_id for job_id, _ in self._waiting))
            with contextlib.suppress(pykka.ActorDeadError):
                process.tell(jobs)

    # ------------------------------------------------------------ the session

    def _on_execute(self, execute: Execute) -> None:
        self._seq += 1
        assigned = Assigned(self._seq, execute)
        if self._session is None:
            self._held.append(assigned)
            return
        try:
            self._session.tell(assigned)
            self._unconfirmed.append(assigned)
        except pykka.ActorDeadError:
            self._held.append(assigned)  # it is failing: its SessionDown is on its way

    def _on_session_up(self, message: SessionUp) -> None:
        self._session = message.session
        held, self._held = self._held, []
        handover, self._handover = self._handover, None
        try:
            for assigned in held:
                message.session.tell(assigned)
                self._unconfirmed.append(assigned)
            message.session.tell(Resume(handover))
        except pykka.ActorDeadError:
            # Failed already: what it got comes back through its SessionDown, the rest here.
            self._held = [a for a in held if a not in self._unconfirmed]
            self._handover = handover

    def _on_session_down(self, message: SessionDown) -> None:
        if message.session is not self._session and self._session is not None:
            return  # a stale one: the current session already announced itself
        self._session = None
        unhandled = [a for a in self._unconfirmed if a.seq > message.accepted]
        self._unconfirmed.clear()
        self._held = [*unhandled, *self._held]  # they never reached its code: never ran
        self._handover = message.handover
