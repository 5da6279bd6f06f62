"""Cancelling one job by its id, for the facade: ask its JobActor, say what it was doing.

The logic of what a cancel does lives with the job (actors/job_cancel.py); this finds the
job in its notebook's subtree and turns the answer into a line for the agent.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pykka
from nb_mcp.actors.job_data import JobSnapshot

_ASK_TIMEOUT = 60.0


def cancel(notebook: Any, future: Future[JobSnapshot], job_id: str, reason: str) -> str:
    """Cancel the job on this notebook (the facade's handle); say what happened."""
    reason = reason or "cancelled by cancel_job"
    if future.done():
        return _already(future.result())
    try:
        ref = notebook.supervisor_proxy.which_child(f"job:{job_id}").get(timeout=_ASK_TIMEOUT)
        was = None if ref is None else ref.proxy().cancel(reason).get(timeout=_ASK_TIMEOUT)
    except (pykka.ActorDeadError, pykka.Timeout):
        was = None
    if was is None or was == "finished":
        if future.done():
            return _already(future.result())
        return f"job {job_id} is ending already; nothing to cancel"
    if was == "queued":
        return (
            f"cancelled job {job_id}: it was queued and never ran; its cells show what they "
            "showed before"
        )
    return (
        f"cancelling job {job_id}: its running cell is interrupted (the kernel and its "
        "variables stay) and its later cells are skipped"
    )


def _already(snapshot: JobSnapshot) -> str:
    return f"job {snapshot.job_id} had already ended ({snapshot.state}); nothing to cancel"
