"""One notebook's subtree: its writer, its kernel's three actors, and (added per job) its jobs.

```
NotebookSupervisor (one_for_one, 5 restarts in 60 s)
├── WriterActor     "writer"   permanent: owns the document
├── TurnQueue       "turns"    permanent: jobs take turns on the kernel through it (FIFO)
├── KernelProcess   "process"  permanent: owns the kernel process; answers status and the tools
├── KernelSession   "kernel"   permanent: the channels, the cell in flight, deadlines; restarted
│                              on a channel failure (same kernel) or a kernel death
└── JobActor …                 temporary: one per job
```

The queue and the process never restart because of the kernel: a session that fails hands
what it was doing to the queue, and the next one resumes it on the kernel the process kept.
Only the session's failures count in practice, so "five in a minute" is five kernel deaths or
channel failures, as the events name it (`supervisor.child_restarted`, child "kernel").
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from nb_mcp.actors.backend import Limits, LocalBackends
from nb_mcp.actors.job import JobActor, JobBoard, JobSnapshot, JobSpec
from nb_mcp.actors.kernel_process import BackendFactory, Inheritance, KernelProcess
from nb_mcp.actors.kernel_session import KernelSession
from nb_mcp.actors.log import emit
from nb_mcp.actors.refs import NotebookRefs
from nb_mcp.actors.session_backends import SessionBackends
from nb_mcp.actors.turns import TurnQueue
from nb_mcp.actors.writer import WriterActor
from nb_mcp.supervisor.clock import Clock, real_clock
from nb_mcp.supervisor.config import Config
from nb_mcp.supervisor.tree import ChildSpec, Restart, Supervisor

# Kernel deaths and channel failures count here: past five in a minute the notebook's subtree
# gives up (a clear event and marker) instead of looping, and the rest of the server goes on.
MAX_RESTARTS = 5
PERIOD_SEC = 60.0


@dataclass(frozen=True)
class TakenOver:
    """A kernel an earlier daemon left running, and the job that carries on its running cell
    (with the board and future exec_status and `status` read it from, as any job's)."""

    inheritance: Inheritance
    resumed_job: JobSpec | None = None
    board: JobBoard = field(default_factory=JobBoard)
    done: Future[JobSnapshot] = field(default_factory=Future)


def notebook_spec(
    path: Path,
    refs: NotebookRefs,
    config: Config,
    kernel: TakenOver | None = None,
    *,
    clock: Clock | None = None,
    backends: BackendFactory | None = None,
) -> ChildSpec:
    """The subtree's spec; `kernel` carries a kernel taken over from an earlier daemon.
    `clock` and `backends` are the seams tests replace (time, and where kernels run)."""
    clock = clock or real_clock()
    if backends is None:
        limits = Limits(config.kernel_memory_mb, config.kernel_cpu_sec)
        local = LocalBackends(path, config.state_dir, config.kernel_transport, limits, clock)
        backends = SessionBackends(local)  # or the gateway the launch's session names
    name = f"notebook:{path}"
    children = [
        ChildSpec(
            id="writer",
            actor_class=WriterActor,
            kwargs={
                "path": path,
                "flush_interval": config.flush_interval_sec,
                "refs": refs,
                "clock": clock,
            },
            shutdown_timeout=30.0,
        ),
        ChildSpec(id="turns", actor_class=TurnQueue, kwargs={"refs": refs}),
        ChildSpec(
            id="process",
            actor_class=KernelProcess,
            kwargs={
                "refs": refs,
                "backends": backends,
                "clock": clock,
                "inherited": kernel.inheritance if kernel else None,
            },
            shutdown_timeout=15.0,
        ),
        ChildSpec(
            id="kernel",
            actor_class=KernelSession,
            kwargs={
                "refs": refs,
                "clock": clock,
                "progress_interval": config.progress_interval_sec,
            },
        ),
    ]
    if kernel is not None and kernel.resumed_job is not None:
        job = kernel.resumed_job
        kernel.board.put(JobSnapshot.queued(job))
        children.append(
            ChildSpec(
                id=f"job:{job.job_id}",
                actor_class=JobActor,
                restart=Restart.TEMPORARY,
                kwargs={
                    "spec": job,
                    "refs": refs,
                    "done": kernel.done,
                    "board": kernel.board,
                    "clock": clock,
                },
                shutdown_timeout=20.0,
            )
        )
    return ChildSpec(
        id=name,
        actor_class=Supervisor,
        restart=Restart.TEMPORARY,
        kwargs={
            "name": name,
            "max_restarts": MAX_RESTARTS,
            "period": PERIOD_SEC,
            "emit": emit,
            "children": children,
        },
        shutdown_timeout=60.0,
    )
