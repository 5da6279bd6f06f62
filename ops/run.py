"""`nb run NB`: run a whole notebook headless through the same tree, with a progress line.

The notebook's outputs are written into the file as the cells run, exactly as over MCP. The
exit status is 0 if every cell ran, 1 if a cell failed (it and the skipped cells are marked in
the file), 2 if the notebook could not be run at all.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from nb_mcp.actors import notebook as nb
from nb_mcp.actors.job import JobSnapshot
from nb_mcp.supervisor import session as sessions
from nb_mcp.supervisor.config import Config
from nb_mcp.supervisor.facade import Facade, NbError

_REFRESH_SEC = 0.25


def run(
    path: str,
    timeout: float | None,
    kernel_name: str | None,
    config: Config,
    out: TextIO = sys.stderr,
) -> int:
    facade = Facade(config, mode="run")
    facade.start()
    # The notebook named on the command line is always allowed, wherever it is.
    here = sessions.of_process(config, Path.cwd(), origin="run")
    scope = replace(here, roots=(*config.roots, Path(path).expanduser().resolve().parent))
    sessions.opened(scope)
    try:
        try:
            submitted = facade.submit(
                path, "exec_all", timeout=timeout, kernel_name=kernel_name, scope=scope
            )
        except NbError as error:
            out.write(f"nb run: {error}\n")
            return 2
        progress = _Progress(out, Path(submitted.notebook).name)
        try:
            while not submitted.future.done():
                progress.show(facade.job(submitted.job_id))
                with contextlib.suppress(TimeoutError):
                    submitted.future.result(timeout=_REFRESH_SEC)
        except KeyboardInterrupt:
            out.write("\nnb run: interrupted; stopping the running cell\n")
            facade.interrupt(path, scope)
            submitted.future.result(timeout=30)
        snapshot = submitted.future.result()
        progress.show(snapshot)
        progress.summary(snapshot)
        return 0 if snapshot.state == "ok" else 1
    finally:
        sessions.closed(scope)
        facade.stop("nb run finished")


class _Progress:
    """One updating line on a terminal; one line per finished cell everywhere."""

    def __init__(self, out: TextIO, name: str) -> None:
        self._out = out
        self._name = name
        self._tty = out.isatty()
        self._reported: set[str] = set()
        self._line_open = False

    def show(self, snapshot: JobSnapshot) -> None:
        total = len(snapshot.cells)
        for cell in snapshot.cells:
            if cell.state in ("queued", "running") or cell.cell_id in self._reported:
                continue
            self._reported.add(cell.cell_id)
            self._clear()
            icon = {"ok": "✓", "skipped": "⊘", "lost": "⊘"}.get(cell.state, "✗")
            took = f" {nb.format_duration(cell.duration)}" if cell.duration is not None else ""
            what = (
                f": {cell.ename}: {cell.evalue}"
                if cell.ename
                else (f" ({cell.detail})" if cell.detail else "")
            )
            self._out.write(
                f"{icon} [{cell.position}/{total}] cell {cell.index} "
                f"{cell.cell_id} {cell.state}{took}{what}\n"
            )
        running = snapshot.running
        if running is not None and self._tty:
            elapsed = time.time() - (running.started_at or time.time())
            done = len(self._reported)
            bar = "█" * int(20 * done / max(total, 1))
            line = (
                f"\r{self._name} |{bar:<20}| {done}/{total} · cell {running.index} "
                f"{nb.format_duration(elapsed)} · {running.tail[:50]}"
            )
            self._out.write(line[:160].ljust(100))
            self._line_open = True
        self._out.flush()

    def _clear(self) -> None:
        if self._line_open:
            self._out.write("\r" + " " * 120 + "\r")
            self._line_open = False

    def summary(self, snapshot: JobSnapshot) -> None:
        self._clear()
        took = (snapshot.finished_at or time.time()) - snapshot.submitted_at
        self._out.write(
            f"{self._name}: {snapshot.state} in {nb.format_duration(took)}"
            + (f" — {snapshot.reason}" if snapshot.reason else "")
            + f"\noutputs written to {snapshot.notebook}\n"
        )
        self._out.flush()
