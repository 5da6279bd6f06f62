"""The server's life: the root of the tree and its log, the server record in the state dir,
taking over the kernels an earlier server left running, and stopping everything in order."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import pykka
from nb_mcp.actors.log import LogActor, emit, emit_unhandled
from nb_mcp.supervisor import statedir, takeover
from nb_mcp.supervisor.config import Config
from nb_mcp.supervisor.opened import ASK_TIMEOUT, NotebookHandle, OpenNotebooks
from nb_mcp.supervisor.paths import Scope
from nb_mcp.supervisor.results import NbError
from nb_mcp.supervisor.tree import ChildSpec, start_root

VERSION = version("nb-mcp")  # one source: pyproject.toml


def version_mismatch(daemon_pid: object, daemon_version: object, front_version: object) -> str:
    """Why a front and a daemon of different versions do not work together, and the way out
    (both sides say it: the daemon when it refuses a front, a front a daemon welcomed)."""
    return (
        f"the nb daemon (pid {daemon_pid}) runs nb {daemon_version} and the front is nb "
        f"{front_version}; stop the daemon with `nb stop` (its running jobs are interrupted and "
        "marked) and the next `nb mcp` starts one of the right version"
    )


class Lifecycle:
    def __init__(self, config: Config, mode: str, cwd: Path, notebooks: OpenNotebooks) -> None:
        self._config = config
        self._mode = mode
        self._cwd = cwd
        self._notebooks = notebooks
        self._root: pykka.ActorRef | None = None
        self._record: statedir.ServerRecord | None = None
        self.started_at = time.monotonic()

    def start(self) -> None:
        config = self._config
        statedir.ensure(config.state_dir)
        statedir.prune_job_records(config.state_dir)
        self._root = start_root(
            "root",
            max_restarts=10,
            period=60.0,
            children=[
                ChildSpec(
                    id="log",
                    actor_class=LogActor,
                    kwargs={
                        "path": config.log_path,
                        "level": config.log_level,
                        "max_bytes": config.log_max_bytes,
                        "backups": config.log_backups,
                    },
                )
            ],
            emit=emit,
            on_give_up=lambda error: self.report_unhandled(error, "root supervisor"),
        )
        self._notebooks.attach(self._root.proxy())
        self._record = statedir.ServerRecord(
            pid=os.getpid(),
            start_time=statedir.process_started(os.getpid()),
            started_at=time.time(),
            cwd=str(self._cwd),
            log_path=str(config.log_path),
            version=VERSION,
            mode=self._mode,
        )
        self._record.save(config.state_dir)
        emit(
            "server.started",
            f"nb {VERSION} started ({self._mode}) in {self._cwd}",
            sync=True,
            mode=self._mode,
            version=VERSION,
            cwd=str(self._cwd),
            log_path=str(config.log_path),
            state_dir=str(config.state_dir),
        )
        if config.kernel_transport == "tcp":
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
        notebooks = self._notebooks.close()
        if notebooks is None or self._root is None:
            return
        # Notebooks are independent: stop them side by side. An MCP client gives a server about
        # two seconds after closing stdin before it kills it, and a kernel may take a second.
        with ThreadPoolExecutor(max_workers=max(1, min(32, len(notebooks)))) as pool:
            for notebook, outcome in zip(
                notebooks, pool.map(_stop_notebook, notebooks), strict=True
            ):
                if outcome is not None:
                    self.report_unhandled(outcome, f"stopping {notebook.path}")
        emit(
            "server.stopped",
            f"nb stopped ({reason})",
            sync=True,
            reason=reason,
            uptime_sec=round(time.monotonic() - self.started_at, 3),
        )
        self._root.stop(block=True, timeout=ASK_TIMEOUT)
        if self._record is not None:
            statedir.remove(self._record.path(self._config.state_dir))

    def take_over_kernels(self) -> list[Path]:
        """Carry on with the kernels an earlier server left running; clean up the dead ones.

        A kernel whose server is gone and that answers its heartbeat gets a notebook subtree of
        its own, its in-flight cell resumed (output from now on lands in it). The others are
        stopped and their records removed; their notebooks' stale markers are replaced.
        Returns the notebooks whose kernels were taken over.
        """
        taken: list[Path] = []
        stale: set[Path] = set()
        for record in takeover.left_running(self._config.state_dir):
            notebook = Path(record.notebook or "/")
            slot = takeover.attach(record)
            if slot is None:
                stale.add(notebook)
                continue
            try:
                self._notebooks.subtree(notebook, slot)
                taken.append(notebook)
            except NbError as error:
                self.report_unhandled(error, f"taking over the kernel of {notebook}")
        for notebook in stale - set(taken):
            try:
                self._notebooks.open(str(notebook), Scope(notebook.parent, (notebook.parent,)))
            except NbError:
                continue  # moved or deleted meanwhile: nothing to mark
        return taken

    def report_unhandled(self, error: BaseException, where: str) -> None:
        emit_unhandled(error, where)


def _stop_notebook(notebook: NotebookHandle) -> BaseException | None:
    try:
        notebook.supervisor.stop(block=True, timeout=ASK_TIMEOUT)
    except Exception as error:  # report it, keep stopping the others
        return error
    return None
