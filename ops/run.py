"""`nb run NB`: run a whole notebook headless through the same tree, with a progress line.

The notebook's outputs are written into the file as the cells run, exactly as over MCP. The
job is recorded in the state dir and its events go to the state dir's event log (unless
NB_MCP_LOG_PATH says otherwise), so `nb status` lists it and `nb watch --job ID` follows it.

Exit status: 0 if every cell ran, 1 if a cell failed (it and the skipped cells are marked in
the file), 2 if the notebook could not be run at all. Ctrl-C: the first interrupts the running
cell (the rest are skipped), a second one, or a cell still running 5 s later, stops the job and
its kernel; then nb run ends by SIGINT, which a shell reports as 130 (SIGTERM: 143, SIGHUP: 129).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from nb_mcp.ops.stop_signals import StopSignals
from nb_mcp.supervisor import session as sessions
from nb_mcp.supervisor.config import Config, daemon_log_path
from nb_mcp.supervisor.facade import Facade, KernelNotFound, NbError, Submitted
from nb_mcp.supervisor.paths import PathError, Scope, notebook_path
from nb_mcp.supervisor.results import CellState, JobSnapshot, JobState, format_duration

_REFRESH_SEC = 0.25
# A cell that ignores the interrupt this long (a C extension that never checks for signals)
# is stopped with its kernel: one Ctrl-C must be enough to get the terminal back.
ESCALATE_AFTER_SEC = 5.0


def run(
    path: str,
    timeout: float | None,
    kernel_name: str | None,
    config: Config,
    signals: StopSignals,
    out: TextIO = sys.stderr,
) -> int:
    try:
        resolved = notebook_path(path, Path.cwd())
    except PathError as error:
        out.write(f"nb run: {error}\n")
        return 2
    if not resolved.exists():
        out.write(f"nb run: no notebook at {resolved}\n")
        return 2
    # Where the daemon logs and where `nb watch` and `nb status` look: not the cwd.
    config = replace(config, log_path=daemon_log_path(os.environ, Path.cwd(), config.state_dir))
    facade = Facade(config, mode="run")
    facade.start()
    reason = "nb run finished"
    # The notebook named on the command line is always allowed, wherever it is.
    here = sessions.of_process(config, Path.cwd(), origin="run")
    scope = replace(here, roots=(*config.roots, resolved.parent))
    sessions.opened(scope)
    try:
        try:
            submitted = facade.submit(
                str(resolved), "exec_all", timeout=timeout, kernel_name=kernel_name, scope=scope
            )
        except KernelNotFound as error:
            asked = "--kernel" if kernel_name else "the notebook's metadata"
            out.write(
                f"nb run: {error}, which {asked} asks for; run it with an installed one:\n"
                f"  nb run {shlex.quote(path)} --kernel NAME\n"
            )
            return 2
        except NbError as error:
            out.write(f"nb run: {error}\n")
            return 2
        facade.remember_job(submitted.job_id)
        _announce(out, submitted, config.log_path)
        progress = _Progress(out, resolved.name, _indexes(facade, resolved, scope))
        if _follow(facade, submitted, scope, signals, progress):
            return progress.finish(submitted.future.result())
        reason = "nb run was stopped (Ctrl-C)" if signals.presses else "nb run got a signal"
    finally:
        # The handler only counts, so more Ctrl-C presses cannot cut this short.
        sessions.closed(scope)
        facade.stop(reason)
    # Stopping the tree ended the job: its cells are marked, its kernel is gone.
    with contextlib.suppress(TimeoutError):
        progress.finish(submitted.future.result(timeout=5))
    return 1


def _follow(
    facade: Facade,
    submitted: Submitted,
    scope: Scope,
    signals: StopSignals,
    progress: _Progress,
) -> bool:
    """Show progress until the job ends (True), or until it must be stopped (False)."""
    future = submitted.future
    interrupted_at: float | None = None
    while not future.done():
        if signals.terminated is not None or signals.presses >= 2:
            progress.say("stopping the job and its kernel")
            return False
        if signals.presses == 1 and interrupted_at is None:
            try:
                running = facade.job(submitted.job_id).running
            except NbError:
                running = None
            if running is None:  # nothing to interrupt yet (the kernel is starting)
                progress.say("stopping the job and its kernel")
                return False
            progress.say(
                f"interrupting cell {running.index} (Ctrl-C again to stop the job and its kernel)"
            )
            with contextlib.suppress(NbError):
                facade.interrupt(str(submitted.notebook), scope)
            interrupted_at = time.monotonic()
        if interrupted_at is not None and time.monotonic() - interrupted_at > ESCALATE_AFTER_SEC:
            progress.say(
                f"the cell ignored the interrupt for {ESCALATE_AFTER_SEC:g}s; "
                "stopping the job and its kernel"
            )
            return False
        with contextlib.suppress(NbError):
            progress.show(facade.job(submitted.job_id))
        with contextlib.suppress(TimeoutError):
            future.result(timeout=_REFRESH_SEC)
    return True


def _announce(out: TextIO, submitted: Submitted, log_path: Path) -> None:
    cells = len(submitted.cells)
    out.write(
        f"nb run: job {submitted.job_id} on {submitted.notebook.name}, "
        f"{cells} code cell{'s' if cells != 1 else ''}; events in {log_path}\n"
        f"  follow it: nb watch --job {submitted.job_id} "
        f"--path {shlex.quote(str(submitted.notebook))}\n"
    )
    out.flush()


def _indexes(facade: Facade, path: Path, scope: Scope) -> dict[str, int]:
    """Each cell's index when the job was submitted, for cells that never start."""
    try:
        return {cell.cell_id: cell.index for cell in facade.list_cells(str(path), scope).cells}
    except NbError:
        return {}


class _Progress:
    """One updating line on a terminal; one line per finished cell everywhere."""

    def __init__(self, out: TextIO, name: str, indexes: dict[str, int]) -> None:
        self._out = out
        self._name = name
        self._indexes = indexes
        self._tty = out.isatty()
        self._reported: set[str] = set()
        self._line_open = False

    def say(self, message: str) -> None:
        self._clear()
        self._out.write(f"nb run: {message}\n")
        self._out.flush()

    def show(self, snapshot: JobSnapshot) -> None:
        total = len(snapshot.cells)
        for cell in snapshot.cells:
            if (
                cell.state in (CellState.QUEUED, CellState.RUNNING)
                or cell.cell_id in self._reported
            ):
                continue
            self._reported.add(cell.cell_id)
            self._clear()
            icon = "✓" if cell.state is CellState.OK else "⊘" if cell.state.ran_nothing else "✗"
            took = f" {format_duration(cell.duration)}" if cell.duration is not None else ""
            index = cell.index if cell.index is not None else self._indexes.get(cell.cell_id)
            where = f"cell {index} {cell.cell_id}" if index is not None else f"cell {cell.cell_id}"
            what = ""
            if cell.ename:
                what = f": {cell.ename}" + (f": {cell.evalue}" if cell.evalue else "")
            elif cell.detail:
                what = f" ({cell.detail})"
            self._out.write(f"{icon} [{cell.position}/{total}] {where} {cell.state}{took}{what}\n")
        running = snapshot.running
        if running is not None and self._tty:
            elapsed = time.time() - (running.started_at or time.time())
            done = len(self._reported)
            bar = "█" * int(20 * done / max(total, 1))
            line = (
                f"\r{self._name} |{bar:<20}| {done}/{total} · cell {running.index} "
                f"{format_duration(elapsed)} · {running.tail[:50]}"
            )
            self._out.write(line[:160].ljust(100))
            self._line_open = True
        self._out.flush()

    def _clear(self) -> None:
        if self._line_open:
            self._out.write("\r" + " " * 120 + "\r")
            self._line_open = False

    def finish(self, snapshot: JobSnapshot) -> int:
        """The last cells' lines and the summary; the exit status the job's state calls for."""
        self.show(snapshot)
        self._clear()
        took = (snapshot.finished_at or time.time()) - snapshot.submitted_at
        self._out.write(
            f"{self._name}: {snapshot.state} in {format_duration(took)}"
            + (f" — {snapshot.reason}" if snapshot.reason else "")
            + f"\noutputs written to {snapshot.notebook}\n"
        )
        self._out.flush()
        return 0 if snapshot.state is JobState.OK else 1
