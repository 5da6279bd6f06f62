"""The facade's jobs: submitting one, and what is known of each (its board and its future).

A job's state is read from its board (the JobActor puts its snapshot there at every change),
never asked of the actor: `job`, `status` and a waiting tool call cost no round trip into the
tree, and a tool call waiting on a job is told each change by the job itself.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pykka
from nb_mcp.actors import job_ends
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.job import JobActor, JobBoard, JobSnapshot, JobSpec
from nb_mcp.actors.log import emit
from nb_mcp.actors.refs import NotRunning
from nb_mcp.actors.run_states import CellState, JobState
from nb_mcp.actors.writer import CellOutputs
from nb_mcp.supervisor import job_kernel, kernels, statedir
from nb_mcp.supervisor.editing import Editing
from nb_mcp.supervisor.kernel_calls import KernelCalls
from nb_mcp.supervisor.notebook_tree import TakenOver
from nb_mcp.supervisor.opened import ASK_TIMEOUT, NotebookHandle, OpenNotebooks, ask
from nb_mcp.supervisor.paths import Scope, within
from nb_mcp.supervisor.results import OUTPUTS_KEPT, NbError, Submitted
from nb_mcp.supervisor.tree import ChildSpec, Restart, StartChild

_KEPT = 500  # jobs remembered for exec_status and status, oldest forgotten first


@dataclass(frozen=True)
class JobEntry:
    notebook: NotebookHandle
    future: Future[JobSnapshot]
    board: JobBoard


class Jobs:
    def __init__(
        self, notebooks: OpenNotebooks, kernel_calls: KernelCalls, editing: Editing
    ) -> None:
        self._notebooks = notebooks
        self._kernels = kernel_calls
        self._editing = editing
        self._entries: OrderedDict[str, JobEntry] = OrderedDict()
        self._finished: deque[str] = deque()  # ended jobs still holding outputs, oldest first
        self._lock = threading.Lock()
        notebooks.on_resumed = self._resumed

    def submit(
        self,
        path: str,
        kind: str,
        *,
        index: int | None = None,
        cell_id: str | None = None,
        start: int | None = None,
        end: int | None = None,
        source: str | None = None,
        after_cell_id: str | None = None,
        code: str | None = None,
        timeout: float | None = None,
        kernel_name: str | None = None,
        scope: Scope | None = None,
    ) -> Submitted:
        """Queue a job on the notebook's kernel; return at once with its id and future."""
        if timeout is not None and timeout < 0:
            raise NbError(f"timeout must be 0 (no limit) or a number of seconds, not {timeout}")
        session = self._notebooks.session(scope)
        deadline = session.settings.default_timeout_sec if timeout is None else timeout
        notices: list[str] = []
        if kind == "insert_and_exec":
            self._kernels.precheck(path, kernel_name, scope)  # refuse before inserting anything
            edited = self._editing.insert_cell(
                path, "code", source or "", index, after_cell_id, scope
            )
            if not edited.written:
                notices.append(f"the new cell could not be written yet: {edited.write_error}")
            notices.extend(edited.notices)
            index, cell_id = None, edited.cell_id
        # The planning query opens the notebook itself: no separate open on this hot path.
        notebook, writer, _ = self._notebooks.open(path, scope, load=False)

        def plan(doc: Any) -> tuple[list[str], Any, tuple[str, int, str] | None]:
            cells = [] if kind == "run_scratch" else _select(doc, kind, index, cell_id, start, end)
            first = None
            if cells:
                position = nb.index_of(doc, cells[0])
                cell = doc.cells[position]
                first = (cell["source"], position, cell["cell_type"])
            return cells, kernels.read_metadata(doc), first

        selected, metadata, first = ask(writer.query(plan))
        cell_ids = tuple(selected)
        decision = self._kernels.decide(
            notebook.path, session, kernel_name, metadata, notebook.refs
        )
        self._kernels.remember(writer, decision, wait=False)
        if decision.notice:
            notices.append(decision.notice)
        job_id = f"j-{uuid.uuid4().hex[:8]}"
        spec = JobSpec(
            job_id=job_id,
            notebook=notebook.path,
            kind=kind,
            cell_ids=cell_ids,
            launch=decision.launch,
            timeout=deadline or None,
            code=code,
            first=first,
            progress_interval=session.settings.progress_interval_sec,
        )
        emit(
            "job.submitted",
            f"job {job_id} on {notebook.path.name}: {kind}, "
            + (
                f"{len(cell_ids)} cell{'s' if len(cell_ids) != 1 else ''}"
                if cell_ids
                else "scratch code"
            ),
            job_id=job_id,
            notebook=str(notebook.path),
            kind=kind,
            cells=len(cell_ids),
            cell_ids=list(cell_ids),
            timeout_sec=float(deadline),
        )
        entry = JobEntry(notebook, Future(), JobBoard())
        entry.board.put(JobSnapshot.queued(spec))
        self._keep(job_id, entry)
        child = ChildSpec(
            id=f"job:{job_id}",
            actor_class=JobActor,
            restart=Restart.TEMPORARY,
            kwargs={
                "spec": spec,
                "refs": notebook.refs,
                "done": entry.future,
                "board": entry.board,
            },
            shutdown_timeout=20.0,
        )
        # A tell: the job's board and future say the rest, so nothing here waits for its start.
        try:
            notebook.supervisor.tell(
                StartChild(child, lambda error: _not_started(spec, entry, error))
            )
        except pykka.ActorDeadError as error:
            with self._lock:
                self._entries.pop(job_id, None)  # its future would never resolve: busy() forever
            raise NbError(f"could not start the job: {error}") from error
        return Submitted(job_id, notebook.path, kind, cell_ids, entry.future, notices)

    def _resumed(self, notebook: NotebookHandle, taken: TakenOver) -> None:
        """A job carrying on a cell an earlier daemon ran: known from now on like any job."""
        assert taken.resumed_job is not None
        self._keep(taken.resumed_job.job_id, JobEntry(notebook, taken.done, taken.board))

    def _keep(self, job_id: str, entry: JobEntry) -> None:
        with self._lock:
            self._entries[job_id] = entry
            while len(self._entries) > _KEPT:
                self._entries.popitem(last=False)
            released = self._release_old_outputs()
        for board, snapshot in released:
            board.put(snapshot)  # the board's copy held them too
        # Outside the lock: a job that has ended already runs this at once, here.
        entry.future.add_done_callback(lambda _: self._ended(job_id))

    def _ended(self, job_id: str) -> None:
        with self._lock:
            self._finished.append(job_id)

    def _release_old_outputs(self) -> list[tuple[JobBoard, JobSnapshot]]:
        """Let go of the outputs of the jobs that ended before the last OUTPUTS_KEPT (lock
        held): each entry gets a new future holding the slimmed snapshot, and the boards to
        put it on are returned (the old future and the board held the last references)."""
        released = []
        while len(self._finished) > OUTPUTS_KEPT:
            job_id = self._finished.popleft()
            entry = self._entries.get(job_id)
            if entry is None:
                continue  # forgotten already
            slim = replace(
                entry.future.result(), outputs={}, scratch_outputs=(), outputs_released=True
            )
            done: Future[JobSnapshot] = Future()
            done.set_result(slim)
            self._entries[job_id] = JobEntry(entry.notebook, done, entry.board)
            released.append((entry.board, slim))
        return released

    def entry(self, job_id: str, scope: Scope | None = None) -> JobEntry:
        """The job's entry; with `scope`, only a job on a notebook under its roots (any other
        is as unknown as a job that never was)."""
        with self._lock:
            entry = self._entries.get(job_id)
        if entry is None or (scope is not None and not within(entry.notebook.path, scope.roots)):
            raise NbError(f"no job {job_id!r} in this server (status lists the jobs it knows)")
        return entry

    def job(self, job_id: str) -> JobSnapshot:
        """The job's state now: the latest its actor put up, or its final snapshot."""
        entry = self.entry(job_id)
        if entry.future.done():
            return entry.future.result()
        latest = entry.board.latest()
        if latest is None:
            raise NbError(f"job {job_id} is not running and has no result (see the event log)")
        return job_kernel.noted(entry.notebook.refs, latest)

    def noted(self, snapshot: JobSnapshot) -> JobSnapshot:
        """`snapshot`, marked if it runs while its kernel still starts (an ask of the kernel
        actor, never of the job)."""
        try:
            entry = self.entry(snapshot.job_id)
        except NbError:
            return snapshot
        return job_kernel.noted(entry.notebook.refs, snapshot)

    def watch(
        self, job_id: str, watcher: Callable[[JobSnapshot], None], scope: Scope | None = None
    ) -> Callable[[], None]:
        """Tell `watcher` (in the job's thread) each change of the job; returns the unwatch."""
        return self.entry(job_id, scope).board.watch(watcher)

    def remember(self, job_id: str, state_dir: Path, log_path: Path) -> None:
        """Record where the job's events go, for `nb watch` in another process."""
        statedir.record_job(state_dir, job_id, log_path, self.entry(job_id).notebook.path)

    def outputs(self, snapshot: JobSnapshot) -> tuple[list[CellOutputs], list[str]]:
        """A finished file job's outputs (its own run's) and the notebook's notices."""
        notebook = self.entry(snapshot.job_id).notebook
        ids = [cell.cell_id for cell in snapshot.cells]
        try:
            writer = notebook.refs.writer()
            return writer.reply_for(ids, snapshot.outputs).get(timeout=ASK_TIMEOUT)
        except (NotRunning, pykka.ActorDeadError):
            # Its subtree stopped (nb gave up on it): a new one reads the file again.
            folder = notebook.path.parent
            _, writer, _ = self._notebooks.open(str(notebook.path), Scope(folder, (folder,)))
            return ask(writer.reply_for(ids, snapshot.outputs))

    def known(self, roots: tuple[Path, ...] | None = None) -> list[JobSnapshot]:
        """Every remembered job (under `roots`, if given), active first, then the most recent."""
        shown = (lambda _: True) if roots is None else (lambda path: within(path, roots))
        with self._lock:
            entries = [(job_id, e) for job_id, e in self._entries.items() if shown(e.notebook.path)]
        jobs: list[JobSnapshot] = []
        for job_id, _ in reversed(entries):
            try:
                jobs.append(self.job(job_id))
            except NbError:
                continue
        jobs.sort(key=lambda job: (job.done, -job.submitted_at))
        return jobs

    def unfinished(self) -> bool:
        with self._lock:
            futures = [entry.future for entry in self._entries.values()]
        return any(not future.done() for future in futures)


def _not_started(spec: JobSpec, entry: JobEntry, error: BaseException) -> None:
    """A job whose actor could not start ends in error, so no one waits for it forever."""
    reason = f"could not start the job: {error}"
    queued = JobSnapshot.queued(spec)
    cells = tuple(replace(cell, state=CellState.SKIPPED, detail=reason) for cell in queued.cells)
    now = time.time()
    ended = replace(queued, state=JobState.ERROR, cells=cells, finished_at=now, reason=reason)
    job_ends.job_finished(ended, now - spec.submitted_at)
    entry.board.put(ended)
    if not entry.future.done():
        entry.future.set_result(ended)


def _select(
    doc: Any, kind: str, index: int | None, cell_id: str | None, start: int | None, end: int | None
) -> list[str]:
    """The ids of the code cells a job runs; raise NotebookError if there are none."""
    if kind in ("exec_cell", "insert_and_exec"):
        position = nb.locate(doc, index, cell_id)
        cell = doc.cells[position]
        if cell["cell_type"] != "code":
            raise nb.NotebookError(
                f"cell {position} ({cell['id']}) is a {cell['cell_type']} cell; only code cells run"
            )
        return [cell["id"]]
    if kind == "exec_range":
        ids = nb.resolve_range(doc, start, end)
        if not ids:
            raise nb.NotebookError(f"no code cells between index {start} and {end}")
        return ids
    ids = [cell["id"] for cell in doc.cells if cell["cell_type"] == "code"]
    if not ids:
        raise nb.NotebookError("the notebook has no code cells to run")
    return ids
