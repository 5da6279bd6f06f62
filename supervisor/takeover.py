"""Kernels an earlier server (a daemon that was killed) left running: take them over or clean up.

A kernel outlives the daemon that started it (it is launched independent of its parent). Its
record in the state dir names its connection file and the cell it was running. A new daemon
takes over those that still answer their heartbeat, resuming the cell in flight, and stops the
rest.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nb_mcp.actors import notebook as nb
from nb_mcp.actors.backend import AttachedBackend, heartbeat_answers
from nb_mcp.actors.execution import Execution, KernelSlot
from nb_mcp.actors.log import emit
from nb_mcp.supervisor import statedir


def left_running(state_dir: Path) -> Iterator[dict[str, Any]]:
    """Records of kernels whose server is gone (a live server's kernels are not ours)."""
    for record in statedir.read_records(state_dir / "kernels"):
        if not statedir.same_process_alive(record["server_pid"], record.get("server_start_ticks")):
            yield record


def attach(record: dict[str, Any], state_dir: Path) -> KernelSlot | None:
    """A restart state for a kernel that still answers, its in-flight cell resumed; else None
    (the kernel is stopped and its files removed)."""
    try:
        backend = AttachedBackend(record, state_dir)
    except (OSError, ValueError, KeyError) as error:
        statedir.remove(Path(record["record_path"]))
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
    slot = KernelSlot(
        notebook=Path(record["notebook"]),
        backend=backend,
        kernel_name=record["kernel_name"],
        choice=backend.choice,
        state="idle",
        started_at=record.get("started_at"),
        reattached=True,
        recovery_note=f"⚠ nb's daemon was replaced at {nb.clock()}; output from the cell "
        "between the two daemons may be missing",
    )
    in_flight = record.get("in_flight")
    if in_flight:
        ran_for = max(0.0, time.time() - in_flight.get("started_at", time.time()))
        slot.execution = Execution(
            job_id=in_flight["job_id"],
            job=None,
            cell_id=in_flight["cell_id"],
            code="",
            to_writer=True,
            timeout=None,
            msg_id=in_flight["msg_id"],
            started_mono=time.monotonic() - ran_for,
        )
        slot.turn = (in_flight["job_id"], None)
    return slot


def _left_behind(record: dict[str, Any], why: str) -> None:
    emit(
        "kernel.stopped",
        f"a kernel an earlier server left for {Path(record.get('notebook', '?')).name} was "
        f"not taken over: {why}",
        level="warning",
        notebook=str(record.get("notebook", "/")),
        reason=f"left by a server that stopped; {why}",
        kernel_pid=record.get("pid"),
    )
