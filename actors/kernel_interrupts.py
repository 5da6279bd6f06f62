"""The kernel's interrupts, a side of KernelProcess (actors/kernel_process.py, which owns the
state used here): a cell past its timeout, a cancelled job's cell once it is the one on the
kernel, and the answer of an interrupt a gateway gives later (a REST call's Future).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from nb_mcp.actors.kernel_messages import InterruptKernel
from nb_mcp.actors.kernel_protocol import KernelState


class KernelInterrupts:
    _backend: Any
    _book: Any
    _events: Any
    _cancelling: str | None

    def _on_timeout_interrupt(self, timed_out: InterruptKernel) -> None:
        if self._backend is not None:
            self._interrupt(
                f"cell {timed_out.cell_id or 'scratch'} passed its {timed_out.timeout:g}s "
                "timeout; interrupted the kernel",
                "timeout",
                job_id=timed_out.job_id,
                cell_id=timed_out.cell_id,
            )

    def _on_activity_for_cancel(self) -> None:
        """Interrupt a cancelled job's cell once it is the one on the kernel; forget the
        cancel when another job's cell is (the cancelled job ended between its cells)."""
        job_id, activity = self._cancelling, self._book.activity
        if job_id is None or activity.state is KernelState.IDLE:
            return
        if activity.job_id == job_id and not activity.executing:
            return  # sent, not begun: wait for its execute_input (the next Activity)
        self._cancelling = None
        if activity.job_id == job_id and self._backend is not None:
            self._interrupt(
                f"job {job_id} was cancelled; interrupted its cell",
                "cancel",
                job_id=job_id,
                cell_id=activity.cell_id if activity.to_writer else None,
            )

    def _interrupt(self, message: str, reason: str, **where: str | None) -> None:
        backend = self._backend
        assert backend is not None
        outcome = backend.interrupt()  # never waits: a remote one answers in a Future
        self._events.interrupted(message, reason, backend.pid, **where)
        if isinstance(outcome, Future):
            outcome.add_done_callback(self._interrupt_answered)

    def _interrupt_answered(self, outcome: Future[None]) -> None:
        # Runs in whichever thread the request ended in: it only emits.
        error = outcome.exception()
        if error is not None:
            self._events.interrupt_failed(error)
