"""Kernels an earlier server (a daemon that was killed) left running: take them over or clean up.

A kernel outlives the daemon that started it (it is launched independent of its parent). Its
record in the state dir names its connection file and the cell it was running. A new daemon
takes over those that still answer their heartbeat — the notebook's KernelProcess adopts the
kernel, and a job of its own carries on the cell that was running — and stops the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nb_mcp.actors import notebook as nb
from nb_mcp.actors.attached_backend import AttachedBackend, heartbeat_answers
from nb_mcp.actors.job import JobSpec
from nb_mcp.actors.kernel_process import Inheritance
from nb_mcp.actors.kernel_protocol import Resumed
from nb_mcp.actors.launch import KernelLaunch
from nb_mcp.actors.log import emit
from nb_mcp.supervisor import statedir
from nb_mcp.supervisor.notebook_tree import TakenOver


def left_running(state_dir: Path) -> Iterator[statedir.KernelRecord]:
    """Records of kernels whose server is gone (a live server's kernels are not ours)."""
    for record in statedir.kernel_records(state_dir):
        if not record.owner_alive():
            yield record


def attach(record: statedir.KernelRecord) -> TakenOver | None:
    """The kernel, to be adopted, and its in-flight cell's job, if the kernel still answers;
    else None (the kernel is stopped and its files removed)."""
    try:
        backend = AttachedBackend(record)
    except (OSError, ValueError, KeyError) as error:
        statedir.remove(record.path)
        _left_behind(record, f"its record or connection file is unusable ({error!r})")
        return None
    if not backend.is_alive():
        backend.stop(grace=0.0)
        _left_behind(record, "it is no longer running")
        return None
    if not heartbeat_answers(backend.connection_info()):
        backend.stop(grace=1.0)
        _left_behind(record, "it did not answer its heartbeat, so it was stopped")
        return None
    backend.adopt()
    resumed = _resumed(record)
    inheritance = Inheritance(backend, backend.choice, record.started_at, resumed)
    if resumed is None:
        return TakenOver(inheritance)
    job = JobSpec(
        job_id=resumed.job_id,
        notebook=Path(record.notebook or "/"),
        kind="resumed",
        cell_ids=(resumed.cell_id,),
        launch=KernelLaunch(choice=backend.choice),
        timeout=None,
        resumed=resumed,
    )
    return TakenOver(inheritance, job)


def _resumed(record: statedir.KernelRecord) -> Resumed | None:
    return resumed_of(record.in_flight)


def resumed_of(in_flight: Any) -> Resumed | None:
    """The cell a kernel's record says was running (None if none, or unreadable)."""
    if not isinstance(in_flight, dict) or not in_flight:
        return None
    try:
        return Resumed(
            job_id=str(in_flight["job_id"]),
            cell_id=str(in_flight["cell_id"]),
            msg_id=str(in_flight["msg_id"]),
            started_at=float(in_flight.get("started_at") or 0.0),
            note=f"⚠ nb's daemon was replaced at {nb.clock()}; output from the cell between "
            "the two daemons may be missing",
        )
    except (KeyError, TypeError, ValueError):
        return None  # a record we cannot read the cell from: the kernel is still taken over


def _left_behind(record: statedir.KernelRecord, why: str) -> None:
    notebook: Any = record.notebook or "/"
    emit(
        "kernel.stopped",
        f"a kernel an earlier server left for {Path(notebook).name} was not taken over: {why}",
        level="warning",
        notebook=str(notebook),
        reason=f"left by a server that stopped; {why}",
        kernel_pid=record.pid,
    )
