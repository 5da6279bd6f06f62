"""A running job as the tools show it, with its kernel's state: a job whose turn came while its
kernel still starts (a gateway's kernel may take minutes: an image pull, a node to schedule)
says so in exec_status and in progress notifications, instead of looking stuck on its cell."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pykka
from nb_mcp.actors.job import JobSnapshot
from nb_mcp.actors.kernel_protocol import KernelState
from nb_mcp.actors.refs import NotebookRefs, NotRunning
from nb_mcp.actors.run_states import JobState

_ASK_SEC = 5.0


def noted(refs: NotebookRefs, snapshot: JobSnapshot) -> JobSnapshot:
    """`snapshot`, marked `kernel_starting` if it runs and its kernel has not started yet."""
    if snapshot.state is JobState.RUNNING:
        with contextlib.suppress(NotRunning, pykka.ActorDeadError, pykka.Timeout):
            if refs.kernel().info().get(timeout=_ASK_SEC).state is KernelState.STARTING:
                return replace(snapshot, kernel_starting=True)
    return snapshot
