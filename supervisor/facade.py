"""The one door into the tree: plain methods and dataclasses for `mcp_front` and `ops`.

Nothing outside `supervisor/` talks to an actor. The front calls these methods from worker
threads; each turns into asks on the right notebook's actors and returns plain data, so the
front could later sit behind a socket without the tree noticing. The work is done by the parts
below, one job each; this class only routes:

- lifecycle.py     the root and the log, the server record, takeover, stopping
- opened.py        the open notebooks (one subtree each), the asks and their errors
- editing.py       the read and edit tools
- jobs.py          submitting jobs, and their state (boards, futures)
- kernel_calls.py  the kernel choice and the kernel tools
- results.py       the plain data every answer is made of (fronts import it from there)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from nb_mcp.supervisor import job_cancel, kernels, task_registry
from nb_mcp.supervisor import session as sessions
from nb_mcp.supervisor.config import Config
from nb_mcp.supervisor.editing import Editing
from nb_mcp.supervisor.jobs import Jobs
from nb_mcp.supervisor.kernel_calls import KernelCalls
from nb_mcp.supervisor.lifecycle import VERSION, Lifecycle, version_mismatch
from nb_mcp.supervisor.opened import OpenNotebooks, notices
from nb_mcp.supervisor.paths import Scope
from nb_mcp.supervisor.results import (
    CellOutputs,
    CellRead,
    Edited,
    JobSnapshot,
    KernelNotFound,
    KernelState,
    KernelStatus,
    Listing,
    NbError,
    ServerStatus,
    Submitted,
)
from nb_mcp.supervisor.session import Session

__all__ = [
    "VERSION",
    "CellRead",
    "Edited",
    "Facade",
    "KernelNotFound",
    "KernelStatus",
    "Listing",
    "NbError",
    "ServerStatus",
    "Submitted",
    "version_mismatch",
]


class Facade:
    def __init__(self, config: Config, *, mode: str, cwd: Path | None = None) -> None:
        self.config = config
        self.mode = mode
        self.cwd = cwd or Path.cwd()
        # Calls that name no session: this process's own (the in-process modes' one client).
        self.default_scope: Session = sessions.of_process(config, self.cwd)
        self._notebooks = OpenNotebooks(config, self.default_scope)
        self._life = Lifecycle(config, mode, self.cwd, self._notebooks)
        self._kernels = KernelCalls(self._notebooks)
        self._editing = Editing(self._notebooks, self._kernels)
        self._jobs = Jobs(self._notebooks, self._kernels, self._editing)
        self.tasks = task_registry.TaskRegistry()  # MCP tasks: the daemon's, for all fronts

    # ------------------------------------------------------------ start and stop

    def start(self) -> None:
        self._life.start()

    def stop(self, reason: str) -> None:
        """Stop every notebook (writes flushed, kernels stopped), then the log, last line first."""
        self._life.stop(reason)

    def take_over_kernels(self) -> list[Path]:
        """Carry on with the kernels an earlier server left running; clean up the dead ones."""
        return self._life.take_over_kernels()

    def report_unhandled(self, error: BaseException, where: str) -> None:
        self._life.report_unhandled(error, where)

    # ------------------------------------------------------------ edit and read tools

    def list_cells(self, path: str, scope: Scope | None = None) -> Listing:
        return self._editing.list_cells(path, scope)

    def read_cell(
        self, path: str, index: int | None, cell_id: str | None, scope: Scope | None = None
    ) -> CellRead:
        return self._editing.read_cell(path, index, cell_id, scope)

    def insert_cell(
        self,
        path: str,
        cell_type: str,
        source: str,
        index: int | None = None,
        after_cell_id: str | None = None,
        scope: Scope | None = None,
    ) -> Edited:
        return self._editing.insert_cell(path, cell_type, source, index, after_cell_id, scope)

    def set_cell(
        self,
        path: str,
        index: int | None,
        cell_id: str | None,
        source: str | None,
        cell_type: str | None,
        scope: Scope | None = None,
    ) -> Edited:
        return self._editing.set_cell(path, index, cell_id, source, cell_type, scope)

    def delete_cell(
        self, path: str, index: int | None, cell_id: str | None, scope: Scope | None = None
    ) -> Edited:
        return self._editing.delete_cell(path, index, cell_id, scope)

    def move_cell(
        self, path: str, index: int | None, cell_id: str | None, to: int, scope: Scope | None = None
    ) -> Edited:
        return self._editing.move_cell(path, index, cell_id, to, scope)

    def clear_outputs(
        self,
        path: str,
        index: int | None = None,
        cell_id: str | None = None,
        all_cells: bool = False,
        scope: Scope | None = None,
    ) -> Edited:
        return self._editing.clear_outputs(path, index, cell_id, all_cells, scope)

    def notices_for(self, path: Path) -> list[str]:
        notebook = self._notebooks.get(path)
        if notebook is None:
            return []
        try:
            return notices(notebook.writer())
        except NbError:
            return []

    # ------------------------------------------------------------ jobs

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
        return self._jobs.submit(
            path,
            kind,
            index=index,
            cell_id=cell_id,
            start=start,
            end=end,
            source=source,
            after_cell_id=after_cell_id,
            code=code,
            timeout=timeout,
            kernel_name=kernel_name,
            scope=scope,
        )

    def job(self, job_id: str) -> JobSnapshot:
        """The job's state now: the latest its actor put up, or its final snapshot."""
        return self._jobs.job(job_id)

    def cancel_job(self, job_id: str, scope: Scope | None = None, why: str = "") -> str:
        entry = self._jobs.entry(job_id, scope)
        return job_cancel.cancel(entry.notebook, entry.future, job_id, why)

    def job_progress(self, snapshot: JobSnapshot) -> JobSnapshot:
        """`snapshot` as progress shows it: a running job whose kernel still starts says so."""
        return self._jobs.noted(snapshot)

    def job_future(self, job_id: str, scope: Scope | None = None) -> Future[JobSnapshot]:
        """The job's future; with `scope`, only a job on a notebook under its roots (any
        other is as unknown as a job that never was)."""
        return self._jobs.entry(job_id, scope).future

    def watch_job(
        self, job_id: str, watcher: Callable[[JobSnapshot], None], scope: Scope | None = None
    ) -> Callable[[], None]:
        """Tell `watcher` each change of the job, from the job's thread (it must only hand the
        snapshot on); returns the call that stops it."""
        return self._jobs.watch(job_id, watcher, scope)

    def remember_job(self, job_id: str) -> None:
        """Record where the job's events go, for `nb watch` in another process."""
        self._jobs.remember(job_id, self.config.state_dir, self.config.log_path)

    def job_outputs(self, snapshot: JobSnapshot) -> tuple[list[CellOutputs], list[str]]:
        """A finished file job's outputs (its own run's) and the notebook's notices."""
        return self._jobs.outputs(snapshot)

    def status(self, roots: tuple[Path, ...] | None = None) -> ServerStatus:
        """Kernels and jobs; with `roots`, only those of notebooks under them (a session's
        view), else all (the user's own `nb status`)."""
        return ServerStatus(
            version=VERSION,
            pid=os.getpid(),
            uptime_sec=time.monotonic() - self._life.started_at,
            log_path=self.config.log_path,
            state_dir=self.config.state_dir,
            kernels=self._kernels.running(roots),
            jobs=self._jobs.known(roots)[:20],
        )

    def busy(self) -> bool:
        """Whether any job is unfinished or any kernel is running or starting a cell."""
        if self._jobs.unfinished():
            return True
        busy = (KernelState.BUSY, KernelState.STARTING)
        return any(k.info.state in busy for k in self._kernels.running())

    # ------------------------------------------------------------ kernels

    def interrupt(self, path: str, scope: Scope | None = None) -> str:
        return self._kernels.interrupt(path, scope)

    def restart_kernel(
        self, path: str, kernel_name: str | None = None, scope: Scope | None = None
    ) -> str:
        """Restart with this session's choice and environment (and remember the choice)."""
        return self._kernels.restart_kernel(path, kernel_name, scope)

    def list_kernels(self, path: str | None, scope: Scope | None = None) -> kernels.KernelListing:
        """The kernelspecs, what a notebook (or a new one here) would run in, what runs."""
        return self._kernels.list_kernels(path, scope)

    def shutdown_kernel(self, path: str, scope: Scope | None = None) -> str:
        return self._kernels.shutdown_kernel(path, scope)
