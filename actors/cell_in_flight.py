"""The cell a kernel runs for a job: its messages routed by msg_id, its outputs, its end.

Owned by the KernelSession (one at a time). Outputs of a file cell go to the writer as they
come (`CellMessage`: output, not lifecycle: only the job tells the writer a cell started or
finished); a scratch run's go to its job. The job hears progress (throttled) and, at the end,
`CellDone`. When the session is restarted its `Handover` carries the execution to the next
session, which resumes routing the same msg_id.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pykka
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.channels import Channels
from nb_mcp.actors.execution import OUTPUT_TYPES, Execution
from nb_mcp.actors.kernel_ends import CellEnd
from nb_mcp.actors.kernel_messages import Handover, Unclaimed
from nb_mcp.actors.kernel_protocol import (
    CellDone,
    CellProgress,
    Execute,
    Resumed,
    ScratchMessage,
)
from nb_mcp.actors.kernel_watch import progress_to_job_due
from nb_mcp.actors.log import emit
from nb_mcp.actors.refs import NotebookRefs
from nb_mcp.actors.run_states import CellState
from nb_mcp.actors.writer import CellMessage
from nb_mcp.supervisor.clock import Clock

_RECENT = 32  # msg_ids of cells that finished, whose late output (a thread) still lands


def note(text: str) -> dict[str, Any]:
    """The content of a stream message that shows nb's note (a marker) in a cell."""
    return {"name": "stderr", "text": nb.marker(text)["text"]}


class InFlight:
    def __init__(
        self, refs: NotebookRefs, clock: Clock, on_end: Callable[[Execution], None]
    ) -> None:
        self._refs = refs
        self._clock = clock
        self._on_end = on_end  # whatever ended the cell, the session hears of it
        self._notebook = str(refs.path)
        self.execution: Execution | None = None
        self.recent_cells: OrderedDict[str, str] = OrderedDict()
        self.unclaimed: dict[str, Unclaimed] = {}  # taken-over cells that ended before their job
        self.memory_mb = 0  # the kernel's memory limit, to say why a MemoryError happened

    # ------------------------------------------------------------ taking over

    def handover(self) -> Handover:
        return Handover(self.execution, self.recent_cells, self.unclaimed)

    def take(self, handover: Handover) -> None:
        self.recent_cells.update(handover.recent_cells)
        self.unclaimed.update(handover.unclaimed)
        parked = handover.execution
        if parked is None:
            return
        if self.execution is None:
            self.execution = parked
        elif parked.msg_id is not None:
            self._remember(parked.msg_id, parked.cell_id)  # a newer request displaced it

    def begin(self, execute: Execute) -> Execution:
        """A job's cell to send; one the job that sent it stopped waiting for is displaced."""
        displaced = self.execution
        if displaced is not None and displaced.msg_id is not None:
            self._remember(displaced.msg_id, displaced.cell_id)
        self.execution = Execution.of(execute)
        return self.execution

    def adopt(self, execute: Execute, generation: int) -> None:
        """A job claims a cell an earlier daemon sent: route it, and tell the job its end."""
        resumed = execute.resumed
        assert resumed is not None
        execution = self.execution
        if execution is not None and execution.msg_id == resumed.msg_id:
            execution.job = execute.job
            self._release(execution.cell_id, execution.held)
            execution.held = None
            return
        unclaimed = self.unclaimed.pop(resumed.msg_id, None)
        if unclaimed is not None:
            self._release(execute.cell_id, unclaimed.outputs)
            self._tell(execute.job, unclaimed.done)
            return
        execution = self.begin(execute)
        now, wall = self._clock.monotonic(), self._clock.time()
        execution.resumed(resumed.msg_id, now, wall, resumed.started_at, generation)

    def inherit(self, resumed: Resumed, generation: int) -> None:
        """The cell a taken-over kernel was running, before its job has claimed it."""
        if self.execution is not None and self.execution.msg_id == resumed.msg_id:
            self.execution.kernel = generation
            return
        execution = Execution(resumed.job_id, None, resumed.cell_id, "", True, None)
        execution.held = []  # until its job has told the writer the cell runs again
        now, wall = self._clock.monotonic(), self._clock.time()
        execution.resumed(resumed.msg_id, now, wall, resumed.started_at, generation)
        self.execution = execution

    def send(self, channels: Channels, generation: int) -> None:
        """Send the waiting cell to the kernel of `generation` on `channels`."""
        execution = self.execution
        assert execution is not None
        msg_id = channels.send(
            "shell",
            "execute_request",
            {
                "code": execution.code,
                "silent": False,
                "store_history": execution.to_writer,
                "user_expressions": {},
                # No stdin: input() raises at once instead of hanging an agent's tool call.
                "allow_stdin": False,
                "stop_on_error": True,
            },
        )
        execution.sent(msg_id, self._clock.monotonic(), self._clock.time(), generation)
        self._remember(msg_id, execution.cell_id)

    def _remember(self, msg_id: str, cell_id: str) -> None:
        self.recent_cells[msg_id] = cell_id
        while len(self.recent_cells) > _RECENT:
            self.recent_cells.popitem(last=False)

    # ------------------------------------------------------------ routing

    def iopub(self, msg_type: str, parent: str | None, content: dict[str, Any]) -> None:
        """Route one iopub message (the idle of the cell in flight ends it, once the shell's
        reply is in too)."""
        execution = self.execution
        ours = execution is not None and parent is not None and parent == execution.msg_id
        if ours:
            assert execution is not None
            execution.last_iopub = self._clock.monotonic()
            if msg_type == "status" and content.get("execution_state") == "idle":
                if execution.replied_at is None and not execution.across_rebuild:
                    # ipykernel answers on the shell before it goes idle: the reply is on
                    # its way, or not coming (Execution.reply_lost, checked at each tick).
                    execution.idle_at = self._clock.monotonic()
                else:
                    self.finish()
            elif msg_type in OUTPUT_TYPES:
                self._route(execution, msg_type, content)
            return
        if msg_type not in OUTPUT_TYPES:
            return
        if msg_type == "update_display_data":
            self.to_writer("-", msg_type, content)
        elif parent in self.recent_cells:
            # Output from a thread of a cell that already finished: it belongs to that cell.
            self.to_writer(self.recent_cells[parent], msg_type, content)

    def replied(self, parent: str | None, content: dict[str, Any]) -> None:
        """The shell says the cell is done. Shell is reliable where iopub may drop messages,
        so this bounds the wait for the idle that normally ends the cell."""
        execution = self.execution
        if execution is not None and parent == execution.msg_id:
            execution.replied(content, self._clock.monotonic())
            if execution.idle_at is not None:
                self.finish()  # its idle came first

    def _route(self, execution: Execution, msg_type: str, content: dict[str, Any]) -> None:
        visible = execution.saw(msg_type, content, self._clock.monotonic())
        if execution.to_writer:
            self._output(execution, msg_type, content)
        else:
            self._tell(execution.job, ScratchMessage(msg_type, content))
            if msg_type == "update_display_data":
                self.to_writer("-", msg_type, content)
        if visible and progress_to_job_due(execution, self._clock.monotonic()):
            self._progress_to_job(execution)

    def to_writer(self, cell_id: str, msg_type: str, content: dict[str, Any]) -> None:
        try:
            # A plain tell: a proxy call would build a future for each of thousands of outputs.
            self._refs.tell("writer", CellMessage(cell_id, msg_type, content))
        except Exception as error:  # the writer is restarting: say so, keep the kernel going
            emit(
                "writer.output_dropped",
                f"output for cell {cell_id} not delivered: {error}",
                level="warning",
                notebook=self._notebook,
                cell_id=cell_id,
                reason=str(error),
            )

    def mark(self, text: str) -> None:
        """nb's note in the running cell (a file cell; a scratch run has nowhere to show it)."""
        execution = self.execution
        if execution is not None and execution.to_writer:
            self._output(execution, "stream", note(text))

    def _output(self, execution: Execution, msg_type: str, content: dict[str, Any]) -> None:
        if execution.held is not None:
            execution.held.append((msg_type, content))
        else:
            self.to_writer(execution.cell_id, msg_type, content)

    def _release(self, cell_id: str, held: list[tuple[str, dict[str, Any]]] | None) -> None:
        for msg_type, content in held or ():
            self.to_writer(cell_id, msg_type, content)

    def mark_unresponsive(self) -> None:
        at = nb.clock(self._clock.time())
        self.mark(f"⚠ The kernel stopped answering at {at} (frozen or overloaded)")

    def reconnected(self, what: str, maybe_lost: tuple[str, ...] = ()) -> None:
        """The channels were rebuilt under the cell in flight: output in between may be
        missing, and its end may come without the idle (the new probe's answer bounds it)."""
        execution = self.execution
        if execution is None:
            return
        if execution.msg_id in maybe_lost:
            self.end(CellEnd.request_lost())
            return
        self.mark(
            f"⚠ Lost {what} and reconnected at {nb.clock(self._clock.time())}; output in "
            "between may be missing"
        )
        execution.across_rebuild = execution.msg_id is not None

    # ------------------------------------------------------------ progress

    def progress_to_job(self) -> None:
        """Tell the job the output the throttle held back (statusMessage, exec_status)."""
        if self.execution is not None:
            self.execution.last_progress_to_job = self._clock.monotonic()
            self._progress_to_job(self.execution)

    def _progress_to_job(self, execution: Execution) -> None:
        execution.progress_pending = False
        age = self._clock.monotonic() - execution.last_output
        progress = CellProgress(
            execution.cell_id, self._clock.time() - age, execution.tail, execution.outputs
        )
        self._tell(execution.job, progress)

    def progress_event(self, output: bool) -> None:
        """A cell.output event (it printed) or a cell.heartbeat (it has been silent)."""
        execution = self.execution
        assert execution is not None
        now = self._clock.monotonic()
        running = round(now - execution.started_mono, 3)
        fields = {"job_id": execution.job_id, "notebook": self._notebook}
        if output:
            emit(
                "cell.output",
                execution.tail[:200] or "(output)",
                **fields,
                cell_id=execution.cell_id,
                tail=execution.tail[:500],
                outputs=execution.outputs,
                running_sec=running,
            )
            return
        silent = round(now - execution.last_output, 3)
        emit(
            "cell.heartbeat",
            f"cell still running, silent for {silent:.0f}s",
            **fields,
            cell_id=execution.cell_id,
            running_sec=running,
            silent_sec=silent,
        )

    # ------------------------------------------------------------ the end

    def finish(self, detail: str = "") -> None:
        """The cell ended by itself (ok, or its own error, or timed out); tell its job."""
        execution = self.execution
        assert execution is not None
        if execution.ename == "MemoryError" and self.memory_mb:
            detail = (
                f"the kernel's memory limit ({self.memory_mb} MB, "
                "NB_MCP_KERNEL_MEMORY_MB) was reached"
            )
        self._deliver(execution, execution.status, detail=detail)

    def end(self, end: CellEnd) -> None:
        """End the cell in flight (if any) with an error nb made itself."""
        execution = self.execution
        if execution is None:
            return
        status, ename, evalue = end.status, end.ename, end.evalue
        error = {
            "output_type": "error",
            "ename": ename,
            "evalue": evalue,
            "traceback": [f"{ename}: {evalue}"],
        }
        if execution.to_writer:
            self._output(execution, "error", error)
        else:
            self._tell(execution.job, ScratchMessage("error", error))
        self._deliver(execution, status, ename, evalue)

    def over_after_rebuild(self) -> None:
        """Channels were rebuilt mid-cell, and the cell ended meanwhile: its idle was lost."""
        self.finish(detail="output between the channel failure and the reconnect may be missing")

    def idle_lost(self) -> None:
        """The shell said done and the idle never came: iopub dropped messages under load."""
        text = (
            "the kernel's output stream dropped messages under load (its idle never came); "
            "some output may be missing"
        )
        self.mark(f"⚠ {text[0].upper()}{text[1:]}")
        self.finish(detail=text)

    def _deliver(
        self,
        execution: Execution,
        status: CellState,
        ename: str | None = None,
        evalue: str | None = None,
        detail: str = "",
    ) -> None:
        self.execution = None
        now = self._clock.monotonic()
        duration = now - execution.started_mono if execution.started_mono else 0.0
        self._progress_to_job(execution)
        done = CellDone(
            cell_id=execution.cell_id,
            status=status,
            execution_count=execution.execution_count,
            duration=duration,
            ename=ename or execution.ename,
            evalue=evalue if evalue is not None else execution.evalue,
            detail=detail,
        )
        if execution.job is None and execution.msg_id is not None:
            self.unclaimed[execution.msg_id] = Unclaimed(done, execution.held or [])
        self._tell(execution.job, done)
        self._on_end(execution)

    @staticmethod
    def _tell(job: pykka.ActorRef[Any] | None, message: Any) -> None:
        # The job may have stopped already (server stop, a give-up): the kernel carries on.
        if job is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                job.tell(message)
