"""MCP tasks as the daemon keeps them: an unguessable id per task, mapped to its job.

One registry per daemon (the facade holds it), shared by every session of every front, so a
task created through one front is polled through another (a client that reconnected), and
the in-process and HTTP fronts use the same one. The id is a bearer secret
(`secrets.token_urlsafe`): it is never logged and never in an event, which name the job.

A task is `working` while its job runs, however long (no TTL then). When the job ends, its
result is rendered once, in a thread of its own (no front may be connected then), and kept
for the task's TTL even if the notebook changes later; then the task is forgotten. Knowing
nothing of MCP, the registry takes the rendering as a function from the front that made it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb_mcp.actors.job_data import JobSnapshot
from nb_mcp.actors.log import emit, emit_unhandled
from nb_mcp.actors.run_states import JobState

WORKING, COMPLETED, FAILED, CANCELLED = "working", "completed", "failed", "cancelled"
Render = Callable[[JobSnapshot], dict[str, Any]]


@dataclass
class Task:
    task_id: str = field(repr=False)  # a bearer secret: not in a repr, a log, an event
    job_id: str
    notebook: Path
    tool: str
    created_at: float  # wall clock
    ttl_sec: float  # kept this long after the job ended
    done: Future[JobSnapshot] = field(repr=False)
    outcome: str = WORKING  # set last, once what it names is there
    ended_at: float | None = None
    result: dict[str, Any] | None = field(default=None, repr=False)  # completed: the reply
    failure: str = ""  # failed: why nb could not give the result
    final: JobSnapshot | None = field(default=None, repr=False)
    cancel_reason: str = ""

    def expired(self, now: float) -> bool:
        return self.ended_at is not None and now >= self.ended_at + self.ttl_sec

    def ttl_ms(self) -> int | None:
        """From creation, as the extension counts it; None (unlimited) while working."""
        if self.ended_at is None:
            return None
        return max(0, round((self.ended_at + self.ttl_sec - self.created_at) * 1000))


class TaskRegistry:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()

    def create(
        self,
        job_id: str,
        notebook: Path,
        done: Future[JobSnapshot],
        render: Render,
        ttl_sec: float,
        tool: str,
    ) -> Task:
        """A new task for the job, known (to `get`) before this returns."""
        task = Task(
            task_id=secrets.token_urlsafe(32),
            job_id=job_id,
            notebook=notebook,
            tool=tool,
            created_at=self._clock(),
            ttl_sec=ttl_sec,
            done=done,
        )
        with self._lock:
            self._purge()
            self._tasks[task.task_id] = task
        emit(
            "task.created",
            f"{tool} answered with an MCP task for job {job_id}",
            job_id=job_id,
            notebook=str(notebook),
            tool=tool,
        )

        def ended(_: Future[JobSnapshot]) -> None:
            # The job's actor thread resolves the future: rendering asks the writer, so it
            # runs in a thread of its own.
            thread = threading.Thread(
                target=self._finish, args=(task, render), name="task-result", daemon=True
            )
            thread.start()

        done.add_done_callback(ended)
        return task

    def get(self, task_id: str) -> Task | None:
        """The task, if it is known and has not expired."""
        with self._lock:
            self._purge()
            return self._tasks.get(task_id)

    def cancel_requested(self, task: Task, reason: str) -> None:
        task.cancel_reason = task.cancel_reason or reason

    def _finish(self, task: Task, render: Render) -> None:
        snapshot = task.done.result()
        task.final = snapshot
        if snapshot.state is JobState.CANCELLED:
            task.ended_at = self._clock()
            task.outcome = CANCELLED
            emit(
                "task.cancelled",
                f"the MCP task of job {task.job_id} is cancelled",
                job_id=task.job_id,
                notebook=str(task.notebook),
            )
            return
        try:
            task.result = render(snapshot)
            outcome = COMPLETED
        except Exception as error:
            task.failure = f"nb could not render the job's result: {type(error).__name__}: {error}"
            outcome = FAILED
            emit_unhandled(
                error,
                "task result",
                f"unexpected {type(error).__name__} rendering the result of job {task.job_id}",
            )
        task.ended_at = self._clock()
        task.outcome = outcome
        emit(
            "task.finished",
            f"the MCP task of job {task.job_id} is {outcome}",
            level="info" if outcome == COMPLETED else "warning",
            job_id=task.job_id,
            notebook=str(task.notebook),
            status=outcome,
        )

    def _purge(self) -> None:
        now = self._clock()
        for task_id in [key for key, task in self._tasks.items() if task.expired(now)]:
            del self._tasks[task_id]
