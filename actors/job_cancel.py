"""Cancelling a job (the `cancel_job` tool, MCP `tasks/cancel`): that job stops, no other.

- A queued job gives back its place in the notebook's queue, and its cells show again what
  they showed before it marked them Queued.
- A running job has its cell interrupted (KeyboardInterrupt: the kernel and its variables
  stay); the cell gets a Cancelled footer and the cells after it are skipped. The interrupt
  goes to the kernel's process actor with the job's id, which sends it only while that job's
  cell is on the kernel, so the next job's cell is never hit.
- A finished job is left as it ended.

A mixin of JobActor, so the sequencing module stays about sequencing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import pykka
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.execution import ABORTED, NO_REPLY
from nb_mcp.actors.kernel_protocol import CellDone, InterruptJob
from nb_mcp.actors.run_states import CellState, JobState

QUEUED, RUNNING, FINISHED = "queued", "running", "finished"
# An interrupt that reaches a kernel before it began the cell (sent a moment ago) is lost:
# until the cell ends, the job asks again this often.
INTERRUPT_AGAIN_SEC = 2.0
_INTERRUPTED = ("KeyboardInterrupt", ABORTED, NO_REPLY)


@dataclass(frozen=True)
class InterruptAgain:
    """Timer -> a cancelled job whose cell still runs: send the interrupt again."""


class CancellableJob:
    """What JobActor adds to be cancelled (it uses JobActor's state and helpers)."""

    _cancel_reason: str = ""
    _state: JobState
    _cells: list[Any]
    _spec: Any
    _refs: Any
    _clock: Any
    _marked_queued: bool
    _scratch_job: bool
    _writer_tell: Any
    _set: Any
    _emit_finished: Any
    _skip_rest: Any
    _finish: Any
    _outputs_of: Any
    actor_ref: Any

    def cancel(self, reason: str) -> str:
        """Cancel this job; say what it was doing: queued, running, or finished."""
        if self._state is JobState.QUEUED:
            self._cancel_reason = reason
            if self._marked_queued and not self._scratch_job:
                self._writer_tell("unmark_queued", self._spec.job_id, list(self._spec.cell_ids))
            for position in range(len(self._cells)):
                self._set(position, state=CellState.CANCELLED, detail="cancelled before it ran")
                self._emit_finished(position)
            self._finish(JobState.CANCELLED, reason)  # gives its turn back to the queue
            return QUEUED
        if self._state is not JobState.RUNNING:
            return FINISHED
        if not self._cancel_reason:
            self._cancel_reason = reason
            self._interrupt_own_cell()
            self._clock.tell_every(INTERRUPT_AGAIN_SEC, self.actor_ref, InterruptAgain())
        return RUNNING

    def _interrupt_own_cell(self) -> None:
        if self._state is not JobState.RUNNING:
            return
        process = self._refs.current("process")
        if process is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                process.tell(InterruptJob(self._spec.job_id))

    def _cancelled_cell_done(self, done: CellDone, position: int) -> bool:
        """The running cell of a cancelled job ended; True if the job ends here (else the
        cell was its last and finished ok before the interrupt: the job ends as usual)."""
        last = position + 1 == len(self._cells)
        if done.status is CellState.OK and last:
            return False
        # Interrupted: KeyboardInterrupt in the cell, or before it began (aborted, or the
        # kernel went idle without a reply).
        interrupted = done.status is CellState.ERROR and done.ename in _INTERRUPTED
        finished = self._clock.time()
        state = CellState.CANCELLED if interrupted else done.status
        self._set(
            position,
            state=state,
            duration=done.duration,
            ename=None if interrupted else done.ename,
            evalue=None if interrupted else done.evalue,
            detail=self._cancel_reason if interrupted else done.detail,
            execution_count=done.execution_count,
        )
        if not self._scratch_job:
            footer = (
                nb.marker(
                    f"⊘ Cancelled at {nb.clock(finished)} · ran "
                    f"{nb.format_duration(done.duration)} ({self._cancel_reason})"
                )
                if interrupted
                else nb.footer(done.status, finished, done.duration, done.ename)
            )
            self._writer_tell(
                "cell_finished",
                done.cell_id,
                footer,
                done.execution_count,
                self._spec.job_id,
                True,
                self._outputs_of(done.cell_id),
            )
        self._emit_finished(position)
        self._skip_rest("job cancelled")
        self._finish(JobState.CANCELLED, self._cancel_reason)
        return True
