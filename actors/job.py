"""JobActor: runs one job's cells in order on the notebook's kernel, then stops.

Cells are held by id, never by index: a person inserting a cell above during the job does not
shift what runs or where outputs land. The source is read when the cell starts, so an edit made
while the job waits is what runs. A cell that errors, times out or loses its kernel ends the
job; the cells after it are marked skipped and keep their previous outputs.

Jobs are temporary: nothing restarts one, so user code never runs twice. If the actor stops
before it finished (the server shuts down, or a bug), teardown still marks its cells, releases
the kernel and resolves the job's future, so no tool call waits forever.

A job talks to the kernel only through the notebook's TurnQueue, with tells (kernel_protocol.py):
it never waits for a kernel actor, not even one being restarted. A job is also the only one that
tells the writer a cell started or finished: a cell a daemon taken over was running gets a job
of its own (`resumed`), which claims the running request and ends the cell like any other.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

import pykka
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.job_cancel import CancellableJob, InterruptAgain
from nb_mcp.actors.job_data import SCRATCH, CellRun, JobBoard, JobSnapshot, JobSpec, RunOutputs
from nb_mcp.actors.job_ends import cell_finished, failure_reason, job_finished
from nb_mcp.actors.kernel_protocol import (
    CellDone,
    CellProgress,
    Enqueue,
    Execute,
    Release,
    Resumed,
    ScratchMessage,
    Turn,
    Waiting,
)
from nb_mcp.actors.log import emit
from nb_mcp.actors.outputs import OutputBuilder
from nb_mcp.actors.refs import NotebookRefs, NotRunning
from nb_mcp.actors.run_states import CellState, JobState
from nb_mcp.supervisor.clock import Clock, real_clock
from nb_mcp.supervisor.tree import SupervisedActor, Supervision

__all__ = ["SCRATCH", "CellRun", "JobActor", "JobBoard", "JobSnapshot", "JobSpec"]


class JobActor(CancellableJob, SupervisedActor):
    def __init__(
        self,
        *,
        supervision: Supervision,
        spec: JobSpec,
        refs: NotebookRefs,
        done: Future[JobSnapshot],
        clock: Clock | None = None,
        board: JobBoard | None = None,
    ) -> None:
        super().__init__(supervision=supervision)
        self._spec = spec
        self._refs = refs
        self._done = done
        self._clock = clock or real_clock()
        self._cells = list(JobSnapshot.queued(spec).cells)
        self._state = JobState.QUEUED
        self._ahead = 0
        self._started_at: float | None = None
        self._current: int | None = None
        self._reason = ""
        self._marked_queued = False
        self._scratch: list[dict[str, Any]] = []
        # Each finished cell's own outputs, handed over by the writer as the cell ends: the
        # reply shows this run's, however many cells the job has, whatever ran since.
        self._outputs: dict[str, Future[RunOutputs]] = {}
        self._turns: pykka.ActorRef[Any] | None = None
        self._scratch_builder = OutputBuilder(lambda key: self._scratch if key == SCRATCH else None)
        self._board = board
        self._post()

    @property
    def _scratch_job(self) -> bool:
        return self._spec.code is not None

    # ------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        # The queue lives as long as the notebook: a lookup that never waits, and a tell.
        self._turns = self._refs.current("turns")
        if self._turns is None:
            raise NotRunning(f"the kernel queue of {self._spec.notebook.name} is not running")
        self._turns.tell(Enqueue(self._spec.job_id, self.actor_ref))

    def teardown(self, reason: BaseException | None) -> None:
        if self._done.done():
            return
        if self.stopping_reason:
            why = self.stopping_reason
        else:
            why = "the nb server stopped" if reason is None else f"nb failed: {reason!r}"
        running = self._current
        if running is not None and self._cells[running].state is CellState.RUNNING:
            self._writer_tell(
                "cell_finished",
                self._cells[running].cell_id,
                nb.marker(f"⊘ Stopped at {nb.clock()}: {why}"),
                None,
                self._spec.job_id,
                True,
                self._outputs_of(self._cells[running].cell_id),
            )
            self._set(running, state=CellState.ERROR, detail=why)
            self._emit_finished(running)
        self._skip_rest(why)
        stopped = reason is None and not self.stopping_reason
        self._finish(JobState.STOPPED if stopped else JobState.ERROR, why)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Turn):
            self._on_turn()
            return self._post()
        if isinstance(message, Waiting):
            self._on_waiting(message)
            return self._post()
        if isinstance(message, CellDone):
            self._on_cell_done(message)
            return self._post()
        if isinstance(message, CellProgress):
            self._on_progress(message)
            return self._post()
        if isinstance(message, InterruptAgain):
            return self._interrupt_own_cell()
        if isinstance(message, ScratchMessage):
            self._scratch_builder.apply(SCRATCH, message.msg_type, message.content)
            return None
        return super().on_receive(message)

    def snapshot(self) -> JobSnapshot:
        spec = self._spec
        return JobSnapshot(
            job_id=spec.job_id,
            notebook=spec.notebook,
            kind=spec.kind,
            state=self._state,
            submitted_at=spec.submitted_at,
            cells=tuple(self._cells),
            started_at=self._started_at,
            finished_at=self._clock.time() if self._state.ended else None,
            ahead=self._ahead,
            reason=self._reason,
            scratch_outputs=tuple(self._scratch),
            outputs=dict(self._outputs),
        )

    # ------------------------------------------------------------ the sequence

    def _on_waiting(self, message: Waiting) -> None:
        self._ahead = message.ahead
        if not self._marked_queued and not self._scratch_job:
            self._marked_queued = True
            self._writer_tell(
                "mark_queued", self._spec.job_id, list(self._spec.cell_ids), self._clock.time()
            )

    def _on_turn(self) -> None:
        waited = self._marked_queued  # a queued job reads its first cell afresh
        self._state, self._ahead, self._started_at = JobState.RUNNING, 0, self._clock.time()
        if self._spec.resumed is not None:
            self._resume(self._spec.resumed)
            return
        self._run_next(0, None if waited else self._spec.first)

    def _resume(self, resumed: Resumed) -> None:
        """Carry on with the cell an earlier daemon's job was running: it is live again in the
        file (its saved outputs kept, `note` saying what may be missing), and its end comes
        from the kernel like any cell's."""
        self._current = 0
        self._set(0, state=CellState.RUNNING, started_at=resumed.started_at)
        self._writer_tell("resume_cell", resumed.cell_id, nb.marker(resumed.note))
        self._execute(resumed.cell_id, "", resumed)

    def _run_next(self, position: int, prefetched: tuple[str, int, str] | None = None) -> None:
        while position < len(self._cells):
            if self._start_cell(position, prefetched):
                return
            prefetched = None
            position += 1
        failed = any(
            cell.state is not CellState.OK and not cell.state.ran_nothing for cell in self._cells
        )
        self._finish(JobState.ERROR if failed else JobState.OK)

    def _start_cell(self, position: int, prefetched: tuple[str, int, str] | None = None) -> bool:
        """Start the cell at `position`; False if it cannot run (deleted, not code)."""
        spec = self._spec
        run = self._cells[position]
        self._current = position
        if self._scratch_job:
            source, index = spec.code or "", None
        else:
            found = prefetched if prefetched is not None else self._cell_source(run.cell_id)
            if found is None:
                self._set(
                    position, state=CellState.LOST, detail="the cell was deleted before it ran"
                )
                self._emit_finished(position)
                return False
            source, index, cell_type = found
            if cell_type != "code":
                self._set(
                    position,
                    state=CellState.SKIPPED,
                    index=index,
                    detail=f"the cell is {cell_type} now, not code",
                )
                self._emit_finished(position)
                return False
        started = self._clock.time()
        self._set(position, state=CellState.RUNNING, index=index, started_at=started)
        if not self._scratch_job:
            # The cells after the first wait for it: the same write marks them Queued.
            queued = [] if self._marked_queued else list(spec.cell_ids[position + 1 :])
            self._marked_queued = True
            self._writer_tell(
                "cell_started",
                run.cell_id,
                run.position,
                len(self._cells),
                started,
                queued,
                spec.job_id,
            )
        emit(
            "cell.started",
            f"cell {run.position}/{len(self._cells)} started"
            + (f" ([{index}] {run.cell_id})" if index is not None else " (scratch)"),
            job_id=spec.job_id,
            notebook=str(spec.notebook),
            cell_id=run.cell_id,
            cell_index=index,
            position=run.position,
            of=len(self._cells),
        )
        self._execute(run.cell_id, source)
        return True

    def _execute(self, cell_id: str, source: str, resumed: Resumed | None = None) -> None:
        spec = self._spec
        assert self._turns is not None  # set in setup, or the job never started
        execute = Execute(
            job_id=spec.job_id,
            job=self.actor_ref,
            cell_id=cell_id,
            code=source,
            timeout=spec.timeout,
            to_writer=not self._scratch_job,
            launch=spec.launch,
            progress_interval=spec.progress_interval,
            resumed=resumed,
        )
        self._turns.tell(execute)

    def _cell_source(self, cell_id: str) -> tuple[str, int, str] | None:
        def read(doc: Any) -> tuple[str, int, str] | None:
            index = nb.index_of(doc, cell_id)
            if index is None:
                return None
            cell = doc.cells[index]
            return cell["source"], index, cell["cell_type"]

        # A notebook deleted on disk meanwhile: the job runs on from nb's copy.
        return self._refs.writer().query(read, deleted_ok=True).get(timeout=60)

    def _on_progress(self, progress: CellProgress) -> None:
        if self._current is not None and self._cells[self._current].cell_id == progress.cell_id:
            self._set(self._current, last_output_at=progress.last_output_at, tail=progress.tail)

    def _on_cell_done(self, done: CellDone) -> None:
        position = self._current
        if position is None or self._cells[position].cell_id != done.cell_id:
            return
        if self._cancel_reason and self._cancelled_cell_done(done, position):
            return
        finished = self._clock.time()
        self._set(
            position,
            state=done.status,
            duration=done.duration,
            ename=done.ename,
            evalue=done.evalue,
            detail=done.detail,
            execution_count=done.execution_count,
        )
        upcoming = None
        if (
            done.status is CellState.OK
            and not self._scratch_job
            and position + 1 < len(self._cells)
        ):
            # Read the next cell's source before telling the writer this one finished: asked
            # after, the question would wait behind the write that finish causes.
            upcoming = self._cell_source(self._cells[position + 1].cell_id)
        if not self._scratch_job:
            self._writer_tell(
                "cell_finished",
                done.cell_id,
                nb.footer(done.status, finished, done.duration, done.ename),
                done.execution_count,
                self._spec.job_id,
                done.status is not CellState.OK or position + 1 == len(self._cells),
                self._outputs_of(done.cell_id),
            )
        self._emit_finished(position)
        if done.status is CellState.OK:
            self._run_next(position + 1, upcoming)
            return
        self._skip_rest(
            "earlier cell errored"
            if done.status is CellState.ERROR
            else {
                CellState.TIMEOUT: "earlier cell timed out",
                CellState.DIED: "the kernel died in an earlier cell",
            }.get(done.status, "earlier cell failed")
        )
        self._finish(JobState.ERROR, failure_reason(self._cells[position]))

    def _skip_rest(self, why: str) -> None:
        rest = [
            i
            for i, cell in enumerate(self._cells)
            if cell.state in (CellState.QUEUED, CellState.RUNNING)
        ]
        if not rest:
            return
        if not self._scratch_job:
            self._writer_tell("mark_skipped", [self._cells[i].cell_id for i in rest], why)
        for i in rest:
            self._set(i, state=CellState.SKIPPED, detail=why)
            self._emit_finished(i)

    def _finish(self, state: JobState, reason: str = "") -> None:
        spec = self._spec
        self._state, self._reason = state, reason
        snapshot = self.snapshot()
        took = (snapshot.finished_at or self._clock.time()) - spec.submitted_at
        job_finished(snapshot, took)
        if self._turns is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                self._turns.tell(Release(spec.job_id))
        if self._board is not None:
            self._board.put(snapshot)  # the last word before the future says it
        if not self._done.done():
            self._done.set_result(snapshot)
        if not self.actor_stopped.is_set():  # finishing from teardown: already stopping
            self.stop()

    # ------------------------------------------------------------ small helpers

    def _post(self) -> None:
        """Put the job's state up on its board (once it finished, its final snapshot stays)."""
        if self._board is not None and not self._done.done():
            self._board.put(self.snapshot())

    def _set(self, position: int, **changes: Any) -> None:
        self._cells[position] = replace(self._cells[position], **changes)

    def _emit_finished(self, position: int) -> None:
        cell_finished(self._cells[position], self._spec, len(self._cells))

    def _outputs_of(self, cell_id: str) -> Future[RunOutputs]:
        """Where the writer puts this run's outputs of the cell as it ends it."""
        self._outputs[cell_id] = Future()
        return self._outputs[cell_id]

    def _writer_tell(self, method: str, *args: Any) -> None:
        with contextlib.suppress(NotRunning):
            getattr(self._refs.writer(), method)(*args)
