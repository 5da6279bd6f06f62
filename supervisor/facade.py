"""The one door into the tree: plain methods and dataclasses for `mcp_front` and `ops`.

Nothing outside `supervisor/` talks to an actor. The front calls these methods from worker
threads; each turns into asks on the right notebook's actors and returns plain data, so the
front could later sit behind a socket without the tree noticing.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import pykka
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.job import JobActor, JobSnapshot, JobSpec
from nb_mcp.actors.kernel_protocol import KernelInfo
from nb_mcp.actors.log import LogActor, emit
from nb_mcp.actors.refs import NotebookRefs, NotRunning
from nb_mcp.actors.writer import CellOutputs, EditResult
from nb_mcp.supervisor import job_kernel, kernels, statedir, takeover, views
from nb_mcp.supervisor import session as sessions
from nb_mcp.supervisor.config import Config
from nb_mcp.supervisor.notebook_tree import TakenOver, notebook_spec
from nb_mcp.supervisor.paths import PathError, Scope, notebook_path, within
from nb_mcp.supervisor.results import (
    CellRead,
    Edited,
    KernelStatus,
    Listing,
    ServerStatus,
    Submitted,
)
from nb_mcp.supervisor.session import Session
from nb_mcp.supervisor.tree import ChildSpec, Restart, start_root

T = TypeVar("T")
VERSION = version("nb-mcp")  # one source: pyproject.toml
_ASK_TIMEOUT = 60.0


class NbError(Exception):
    """A request nb refuses or cannot carry out; the message is written for the agent."""


class KernelNotFound(NbError):
    """No kernelspec has the name asked for; the message lists the installed ones."""


class _Notebook:
    """The facade's handle on one notebook's subtree."""

    def __init__(self, path: Path, supervisor: pykka.ActorRef, refs: NotebookRefs) -> None:
        self.path = path
        self.supervisor = supervisor
        self.supervisor_proxy = supervisor.proxy()  # built once: proxies are costly to build
        self.refs = refs

    def writer(self) -> Any:
        try:
            return self.refs.writer()
        except NotRunning as error:
            raise NbError(f"{error} (see the event log)") from None


class Facade:
    def __init__(self, config: Config, *, mode: str, cwd: Path | None = None) -> None:
        self.config = config
        self.mode = mode
        self.cwd = cwd or Path.cwd()
        # Calls that name no session: this process's own (the in-process modes' one client).
        self.default_scope: Session = sessions.of_process(config, self.cwd)
        self._root: pykka.ActorRef | None = None
        self._root_proxy: Any = None
        self._notebooks: dict[Path, _Notebook] = {}
        self._lock = threading.Lock()
        self._started_at = time.monotonic()
        self._stopped = False
        self._record: statedir.ServerRecord | None = None
        self._jobs: OrderedDict[str, tuple[_Notebook, Future[JobSnapshot]]] = OrderedDict()

    # ------------------------------------------------------------ start and stop

    def start(self) -> None:
        statedir.ensure(self.config.state_dir)
        statedir.prune_job_records(self.config.state_dir)
        self._root = start_root(
            "root",
            max_restarts=10,
            period=60.0,
            children=[
                ChildSpec(
                    id="log",
                    actor_class=LogActor,
                    kwargs={
                        "path": self.config.log_path,
                        "level": self.config.log_level,
                        "max_bytes": self.config.log_max_bytes,
                        "backups": self.config.log_backups,
                    },
                )
            ],
            emit=emit,
            on_give_up=lambda error: self._report_unhandled(error, "root supervisor"),
        )
        self._root_proxy = self._root.proxy()
        self._record = statedir.ServerRecord(
            pid=os.getpid(),
            start_time=statedir.process_started(os.getpid()),
            started_at=time.time(),
            cwd=str(self.cwd),
            log_path=str(self.config.log_path),
            version=VERSION,
            mode=self.mode,
        )
        self._record.save(self.config.state_dir)
        emit(
            "server.started",
            f"nb {VERSION} started ({self.mode}) in {self.cwd}",
            sync=True,
            mode=self.mode,
            version=VERSION,
            cwd=str(self.cwd),
            log_path=str(self.config.log_path),
            state_dir=str(self.config.state_dir),
        )
        if self.config.kernel_transport == "tcp":
            emit(
                "config.warning",
                "kernels use TCP on loopback (NB_MCP_KERNEL_TRANSPORT=tcp): any local user can "
                "connect to their ports and read outputs or run code",
                level="warning",
                setting="NB_MCP_KERNEL_TRANSPORT=tcp",
                warning="kernels reachable by other local users",
            )

    def stop(self, reason: str) -> None:
        """Stop every notebook (writes flushed, kernels stopped), then the log, last line first."""
        with self._lock:
            if self._stopped or self._root is None:
                return
            self._stopped = True
            notebooks = list(self._notebooks.values())
        # Notebooks are independent: stop them side by side. An MCP client gives a server about
        # two seconds after closing stdin before it kills it, and a kernel may take a second.
        with ThreadPoolExecutor(max_workers=max(1, min(32, len(notebooks)))) as pool:
            for notebook, outcome in zip(
                notebooks, pool.map(self._stop_notebook, notebooks), strict=True
            ):
                if outcome is not None:
                    self._report_unhandled(outcome, f"stopping {notebook.path}")
        emit(
            "server.stopped",
            f"nb stopped ({reason})",
            sync=True,
            reason=reason,
            uptime_sec=round(time.monotonic() - self._started_at, 3),
        )
        self._root.stop(block=True, timeout=_ASK_TIMEOUT)
        if self._record is not None:
            statedir.remove(self._record.path(self.config.state_dir))

    @staticmethod
    def _stop_notebook(notebook: _Notebook) -> BaseException | None:
        try:
            notebook.supervisor.stop(block=True, timeout=_ASK_TIMEOUT)
        except Exception as error:  # report it, keep stopping the others
            return error
        return None

    # ------------------------------------------------------------ edit and read tools

    def list_cells(self, path: str, scope: Scope | None = None) -> Listing:
        notebook, writer, _ = self._open(path, scope=scope)
        cells = self._ask(writer.query(views.summaries))
        return Listing(notebook.path, cells, self._notices(writer))

    def read_cell(
        self, path: str, index: int | None, cell_id: str | None, scope: Scope | None = None
    ) -> CellRead:
        notebook, writer, _ = self._open(path, scope=scope)

        def read(doc: Any) -> tuple[views.CellView, int]:
            return views.view(doc, nb.locate(doc, index, cell_id)), len(doc.cells)

        cell, total = self._ask(writer.query(read))
        return CellRead(notebook.path, cell, total, self._notices(writer))

    def insert_cell(
        self,
        path: str,
        cell_type: str,
        source: str,
        index: int | None = None,
        after_cell_id: str | None = None,
        scope: Scope | None = None,
    ) -> Edited:
        if index is not None and after_cell_id is not None:
            raise NbError("give either index or after_cell_id, not both")
        cell = self._guard(lambda: nb.make_cell(cell_type, source))
        op = nb.InsertCell(cell=cell, index=index, after_id=after_cell_id)
        edited = self._edit(path, op, create=True, scope=scope)
        if edited.created:  # it says at once which kernel it gets: so do JupyterLab and VS Code
            with contextlib.suppress(NbError):
                decision = self._decide(edited.path, scope, None, kernels.KernelMetadata())
                self._remember(self._subtree(edited.path).writer(), decision)
        return edited

    def set_cell(
        self,
        path: str,
        index: int | None,
        cell_id: str | None,
        source: str | None,
        cell_type: str | None,
        scope: Scope | None = None,
    ) -> Edited:
        if source is None and cell_type is None:
            raise NbError("nothing to change: give source, cell_type, or both")
        op = nb.SetCell(index=index, cell_id=cell_id, source=source, cell_type=cell_type)
        return self._edit(path, op, scope=scope)

    def delete_cell(
        self, path: str, index: int | None, cell_id: str | None, scope: Scope | None = None
    ) -> Edited:
        return self._edit(path, nb.DeleteCell(index=index, cell_id=cell_id), scope=scope)

    def move_cell(
        self, path: str, index: int | None, cell_id: str | None, to: int, scope: Scope | None = None
    ) -> Edited:
        return self._edit(path, nb.MoveCell(index=index, cell_id=cell_id, to=to), scope=scope)

    def clear_outputs(
        self,
        path: str,
        index: int | None = None,
        cell_id: str | None = None,
        all_cells: bool = False,
        scope: Scope | None = None,
    ) -> Edited:
        if all_cells and (index is not None or cell_id is not None):
            raise NbError("give all=true or a cell (index or cell_id), not both")
        if not all_cells and index is None and cell_id is None:
            raise NbError("give a cell (index or cell_id), or all=true to clear every cell")
        op = nb.ClearOutputs(index=index, cell_id=cell_id, every_cell=all_cells)
        return self._edit(path, op, scope=scope)

    # ------------------------------------------------------------ execution

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
        session = self._session(scope)
        deadline = session.settings.default_timeout_sec if timeout is None else timeout
        notices: list[str] = []
        if kind == "insert_and_exec":
            self._precheck_kernel(path, kernel_name, scope)  # refuse before inserting anything
            edited = self.insert_cell(path, "code", source or "", index, after_cell_id, scope)
            if not edited.written:
                notices.append(f"the new cell could not be written yet: {edited.write_error}")
            notices.extend(edited.notices)
            index, cell_id = None, edited.cell_id
        # The planning query opens the notebook itself: no separate open on this hot path.
        notebook, writer, _ = self._open(path, scope=scope, load=False)

        def plan(doc: Any) -> tuple[list[str], Any, tuple[str, int, str] | None]:
            cells = [] if kind == "run_scratch" else _select(doc, kind, index, cell_id, start, end)
            first = None
            if cells:
                position = nb.index_of(doc, cells[0])
                cell = doc.cells[position]
                first = (cell["source"], position, cell["cell_type"])
            return cells, kernels.read_metadata(doc), first

        selected, metadata, first = self._ask(writer.query(plan))
        cell_ids = tuple(selected)
        decision = self._decide(notebook.path, session, kernel_name, metadata, notebook.refs)
        self._remember(writer, decision)
        if decision.notice:
            notices.append(decision.notice)
        job_id = f"j-{uuid.uuid4().hex[:8]}"
        future: Future[JobSnapshot] = Future()
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
        with self._lock:
            self._jobs[job_id] = (notebook, future)
            while len(self._jobs) > 500:
                self._jobs.popitem(last=False)
        child = ChildSpec(
            id=f"job:{job_id}",
            actor_class=JobActor,
            restart=Restart.TEMPORARY,
            kwargs={"spec": spec, "refs": notebook.refs, "done": future},
            shutdown_timeout=20.0,
        )
        try:
            notebook.supervisor_proxy.start_child(child).get(timeout=_ASK_TIMEOUT)
        except Exception as error:
            with self._lock:
                self._jobs.pop(job_id, None)  # its future would never resolve: busy() forever
            raise NbError(f"could not start the job: {error}") from error
        return Submitted(job_id, notebook.path, kind, cell_ids, future, notices)

    def _precheck_kernel(self, path: str, requested: str | None, scope: Scope | None) -> None:
        try:
            resolved = notebook_path(path, self._session(scope).cwd)
        except PathError as error:
            raise NbError(str(error)) from None
        if not resolved.exists():
            self._decide(resolved, scope, requested, kernels.KernelMetadata())
            return
        notebook, writer, _ = self._open(path, scope=scope)
        metadata = self._ask(writer.query(kernels.read_metadata))
        self._decide(notebook.path, scope, requested, metadata, notebook.refs)

    def remember_job(self, job_id: str) -> None:
        """Record where the job's events go, for `nb watch` in another process."""
        notebook, _ = self._job_entry(job_id)
        statedir.record_job(self.config.state_dir, job_id, self.config.log_path, notebook.path)

    def job(self, job_id: str) -> JobSnapshot:
        """The job's state now: live from its actor, or its final snapshot."""
        notebook, future = self._job_entry(job_id)
        if future.done():
            return future.result()
        try:
            ref = notebook.supervisor_proxy.which_child(f"job:{job_id}").get(timeout=_ASK_TIMEOUT)
            if ref is not None:
                snapshot = ref.proxy().snapshot().get(timeout=_ASK_TIMEOUT)
                return job_kernel.noted(notebook.refs, snapshot)
        except (pykka.ActorDeadError, pykka.Timeout):
            pass
        if future.done():
            return future.result()
        raise NbError(f"job {job_id} is not running and has no result (see the event log)")

    def job_future(self, job_id: str, scope: Scope | None = None) -> Future[JobSnapshot]:
        """The job's future; with `scope`, only a job on a notebook under its roots (any
        other is as unknown as a job that never was)."""
        return self._job_entry(job_id, scope)[1]

    def job_outputs(self, snapshot: JobSnapshot) -> tuple[list[CellOutputs], list[str]]:
        """A finished file job's outputs (its own run's) and the notebook's notices."""
        notebook, _ = self._job_entry(snapshot.job_id)
        ids = [cell.cell_id for cell in snapshot.cells]
        try:
            writer = notebook.refs.writer()
            return writer.reply_for(ids, snapshot.job_id).get(timeout=_ASK_TIMEOUT)
        except (NotRunning, pykka.ActorDeadError):
            # Its subtree stopped (nb gave up on it): a new one reads the file again.
            folder = notebook.path.parent
            _, writer, _ = self._open(str(notebook.path), scope=Scope(folder, (folder,)))
            return self._ask(writer.reply_for(ids, snapshot.job_id))

    def notices_for(self, path: Path) -> list[str]:
        notebook = self._notebooks.get(path)
        if notebook is None:
            return []
        try:
            return self._notices(notebook.refs.writer())
        except NotRunning:
            return []

    def status(self, roots: tuple[Path, ...] | None = None) -> ServerStatus:
        """Kernels and jobs; with `roots`, only those of notebooks under them (a session's
        view), else all (the user's own `nb status`)."""
        running = []
        jobs: list[JobSnapshot] = []
        shown = (lambda _: True) if roots is None else (lambda path: within(path, roots))
        with self._lock:
            notebooks = [n for n in self._notebooks.values() if shown(n.path)]
            notebooks = [n for n in notebooks if n.supervisor.is_alive()]
            entries = [(job_id, e) for job_id, e in self._jobs.items() if shown(e[0].path)]
        for notebook in notebooks:
            try:
                info = notebook.refs.kernel().info().get(timeout=5)
            except (NotRunning, pykka.ActorDeadError, pykka.Timeout):
                continue
            running.append(KernelStatus(notebook.path, info))
        for job_id, (_, future) in reversed(entries):
            if future.done():
                jobs.append(future.result())
            else:
                try:
                    jobs.append(self.job(job_id))
                except NbError:
                    continue
        jobs.sort(key=lambda job: (job.done, -job.submitted_at))
        return ServerStatus(
            version=VERSION,
            pid=os.getpid(),
            uptime_sec=time.monotonic() - self._started_at,
            log_path=self.config.log_path,
            state_dir=self.config.state_dir,
            kernels=running,
            jobs=jobs[:20],
        )

    def busy(self) -> bool:
        """Whether any job is unfinished or any kernel is running or starting a cell."""
        with self._lock:
            futures = [future for _, future in self._jobs.values()]
        if any(not future.done() for future in futures):
            return True
        return any(k.info.state in ("busy", "starting") for k in self.status().kernels)

    def take_over_kernels(self) -> list[Path]:
        """Carry on with the kernels an earlier server left running; clean up the dead ones.

        A kernel whose server is gone and that answers its heartbeat gets a notebook subtree of
        its own, its in-flight cell resumed (output from now on lands in it). The others are
        stopped and their records removed; their notebooks' stale markers are replaced.
        Returns the notebooks whose kernels were taken over.
        """
        taken: list[Path] = []
        stale: set[Path] = set()
        for record in takeover.left_running(self.config.state_dir):
            notebook = Path(record.notebook or "/")
            slot = takeover.attach(record)
            if slot is None:
                stale.add(notebook)
                continue
            try:
                self._subtree(notebook, slot)
                taken.append(notebook)
            except NbError as error:
                self._report_unhandled(error, f"taking over the kernel of {notebook}")
        for notebook in stale - set(taken):
            try:
                self._open(str(notebook), scope=Scope(notebook.parent, (notebook.parent,)))
            except NbError:
                continue  # moved or deleted meanwhile: nothing to mark
        return taken

    def interrupt(self, path: str, scope: Scope | None = None) -> str:
        return self._kernel_call(path, scope, lambda kernel: kernel.interrupt())

    def restart_kernel(
        self, path: str, kernel_name: str | None = None, scope: Scope | None = None
    ) -> str:
        """Restart with this session's choice and environment (and remember the choice)."""
        notebook, writer, _ = self._open(path, scope=scope)
        metadata = self._ask(writer.query(kernels.read_metadata))
        decision = self._decide(notebook.path, scope, kernel_name, metadata)
        reply = self._kernel_call(path, scope, lambda k: k.restart_kernel(decision.launch))
        self._remember(writer, decision)
        return reply

    def list_kernels(self, path: str | None, scope: Scope | None = None) -> kernels.KernelListing:
        """The kernelspecs, what a notebook (or a new one here) would run in, what runs."""
        session = self._session(scope)
        notebook: Path | None = None
        metadata = kernels.KernelMetadata()
        if path is not None:
            try:
                notebook = notebook_path(path, session.cwd, session.roots)
            except PathError as error:
                raise NbError(str(error)) from None
            if notebook.exists():
                _, writer, _ = self._open(path, scope=scope)
                metadata = self._ask(writer.query(kernels.read_metadata))
        here = self.status(session.roots).kernels
        return kernels.listing(session, notebook, metadata, [(k.notebook, k.info) for k in here])

    def shutdown_kernel(self, path: str, scope: Scope | None = None) -> str:
        return self._kernel_call(path, scope, lambda kernel: kernel.shutdown_kernel())

    def _kernel_call(
        self, path: str, scope: Scope | None, call: Callable[[Any], pykka.Future[str]]
    ) -> str:
        notebook, _, _ = self._open(path, scope=scope)
        try:
            kernel = notebook.refs.kernel()
        except NotRunning as error:
            raise NbError(str(error)) from None
        return self._ask(call(kernel))

    def _session(self, scope: Scope | None) -> Session:
        if isinstance(scope, Session):
            return scope
        if scope is None:
            return self.default_scope
        return replace(self.default_scope, cwd=scope.cwd, roots=scope.roots)

    def _decide(
        self,
        path: Path,
        scope: Scope | None,
        requested: str | None,
        metadata: kernels.KernelMetadata,
        refs: NotebookRefs | None = None,
    ) -> kernels.Decision:
        """The session's launch for this notebook (with `refs`, its running kernel considered);
        a refusal is an NbError."""
        current: KernelInfo | None = None
        with contextlib.suppress(NotRunning, pykka.ActorDeadError, pykka.Timeout):
            current = refs.kernel().info().get(timeout=_ASK_TIMEOUT) if refs else None
        try:
            return kernels.decide(self._session(scope), path, requested, metadata, current)
        except kernels.KernelspecMissing as error:
            raise KernelNotFound(str(error)) from None
        except kernels.KernelRefused as error:
            raise NbError(str(error)) from None

    def _remember(self, writer: Any, decision: kernels.Decision) -> None:
        """Write the choice into the notebook's metadata, if it is new (a failed write is
        retried by the writer like any edit, and reported in the next reply)."""
        if decision.remember:
            self._ask(writer.edit(kernels.remembering(decision.launch.choice)))

    def _job_entry(
        self, job_id: str, scope: Scope | None = None
    ) -> tuple[_Notebook, Future[JobSnapshot]]:
        with self._lock:
            entry = self._jobs.get(job_id)
        if entry is None or (scope is not None and not within(entry[0].path, scope.roots)):
            raise NbError(f"no job {job_id!r} in this server (status lists the jobs it knows)")
        return entry

    # ------------------------------------------------------------ plumbing

    def _edit(
        self, path: str, op: nb.Op, create: bool = False, scope: Scope | None = None
    ) -> Edited:
        notebook, writer, _ = self._open(path, create=create, scope=scope)
        result: EditResult = self._ask(writer.edit(op, create))
        created = result.created
        total = self._ask(writer.query(lambda doc: len(doc.cells)))
        return Edited(
            path=notebook.path,
            op=op.name,
            index=result.index,
            cell_id=result.cell_id,
            total=total,
            written=result.written,
            write_error=result.write_error,
            created=created,
            detail=result.detail,
            notices=self._notices(writer),
        )

    def _open(
        self, path: str, create: bool = False, scope: Scope | None = None, load: bool = True
    ) -> tuple[_Notebook, Any, bool]:
        try:
            scope = scope or self.default_scope
            resolved = notebook_path(path, scope.cwd, scope.roots)
        except PathError as error:
            raise NbError(str(error)) from None
        if not create and not resolved.exists():
            raise NbError(
                f"no notebook at {resolved} (read tools never create files; "
                "insert_cell creates a notebook)"
            )
        notebook = self._subtree(resolved)
        writer = notebook.writer()
        if create and not resolved.exists():
            return notebook, writer, True  # the edit creates it, if the edit is valid
        if not load:
            return notebook, writer, False
        opened = self._ask(writer.open(create))
        return notebook, writer, opened.created

    def _subtree(self, path: Path, kernel: TakenOver | None = None) -> _Notebook:
        with self._lock:
            if self._stopped or self._root is None:
                raise NbError("nb is shutting down")
            existing = self._notebooks.get(path)
            if existing is not None and existing.supervisor.is_alive():
                return existing
            refs = NotebookRefs(path)
            spec = notebook_spec(path, refs, self.config, kernel)
            try:
                ref = self._root_proxy.start_child(spec).get(timeout=_ASK_TIMEOUT)
            except Exception as error:
                raise NbError(f"could not open {path}: {error}") from error
            notebook = _Notebook(path, ref, refs)
            self._notebooks[path] = notebook
            return notebook

    def _ask(self, future: pykka.Future[T]) -> T:
        try:
            return future.get(timeout=_ASK_TIMEOUT)
        except (nb.NotebookError, PathError) as error:
            raise NbError(str(error)) from None
        except pykka.Timeout:
            raise NbError(
                f"nb did not answer within {_ASK_TIMEOUT:.0f}s (see the event log)"
            ) from None
        except pykka.ActorDeadError:
            raise NbError("the notebook's actor stopped while answering; try again") from None

    def _guard(self, make: Callable[[], T]) -> T:
        try:
            return make()
        except nb.NotebookError as error:
            raise NbError(str(error)) from None

    def _notices(self, writer: Any) -> list[str]:
        try:
            return writer.take_notices().get(timeout=_ASK_TIMEOUT)
        except Exception:
            return []

    def report_unhandled(self, error: BaseException, where: str) -> None:
        self._report_unhandled(error, where)

    def _report_unhandled(self, error: BaseException, where: str) -> None:
        emit(
            "error.unhandled",
            f"unexpected {type(error).__name__} in {where}: {error}",
            level="error",
            error=f"{type(error).__name__}: {error}",
            traceback="".join(traceback.format_exception(error)),
            where=where,
        )


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
