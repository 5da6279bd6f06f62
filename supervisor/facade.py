"""The one door into the tree: plain methods and dataclasses for `mcp_front` and `ops`.

Nothing outside `supervisor/` talks to an actor. The front calls these methods from worker
threads; each turns into asks on the right notebook's actors and returns plain data, so the
front could later sit behind a socket without the tree noticing.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pykka

from actors import notebook as nb
from actors.log import LogActor, emit
from actors.writer import EditResult, WriterActor
from supervisor import statedir, views
from supervisor.config import Config
from supervisor.paths import PathError, notebook_path
from supervisor.tree import ChildSpec, Restart, Supervisor, start_root

T = TypeVar("T")
VERSION = "0.1.0"
_ASK_TIMEOUT = 60.0


class NbError(Exception):
    """A request nb refuses or cannot carry out; the message is written for the agent."""


@dataclass(frozen=True)
class Listing:
    path: Path
    cells: list[views.CellSummary]
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CellRead:
    path: Path
    cell: views.CellView
    total: int
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Edited:
    path: Path
    op: str
    index: int
    cell_id: str | None
    total: int
    written: bool
    write_error: str | None
    created: bool = False
    detail: str = ""
    notices: list[str] = field(default_factory=list)


class _Notebook:
    """The facade's handle on one notebook's subtree."""

    def __init__(self, path: Path, supervisor: pykka.ActorRef) -> None:
        self.path = path
        self.supervisor = supervisor

    def child(self, child_id: str) -> pykka.ActorRef:
        ref = self.supervisor.proxy().which_child(child_id).get(timeout=_ASK_TIMEOUT)
        if ref is None:
            raise NbError(f"{self.path.name}: its {child_id} is not running (see the event log)")
        return ref


class Facade:
    def __init__(self, config: Config, *, mode: str, cwd: Path | None = None) -> None:
        self.config = config
        self.mode = mode
        self.cwd = cwd or Path.cwd()
        self._root: pykka.ActorRef | None = None
        self._notebooks: dict[Path, _Notebook] = {}
        self._lock = threading.Lock()
        self._started_at = time.monotonic()
        self._stopped = False
        self._record: statedir.ServerRecord | None = None

    # ------------------------------------------------------------ start and stop

    def start(self) -> None:
        statedir.ensure(self.config.state_dir)
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
        self._record = statedir.ServerRecord(
            pid=os.getpid(),
            start_ticks=statedir.process_start_ticks(os.getpid()),
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

    def stop(self, reason: str) -> None:
        """Stop every notebook (writes flushed, kernels stopped), then the log, last line first."""
        with self._lock:
            if self._stopped or self._root is None:
                return
            self._stopped = True
            notebooks = list(self._notebooks.values())
        root = self._root.proxy()
        for notebook in reversed(notebooks):
            try:
                root.terminate_child(f"notebook:{notebook.path}").get(timeout=_ASK_TIMEOUT)
            except Exception as error:  # keep stopping the others
                self._report_unhandled(error, f"stopping {notebook.path}")
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

    # ------------------------------------------------------------ edit and read tools

    def list_cells(self, path: str) -> Listing:
        notebook, writer, _ = self._open(path)
        cells = self._ask(writer.query(views.summaries))
        return Listing(notebook.path, cells, self._notices(writer))

    def read_cell(self, path: str, index: int | None, cell_id: str | None) -> CellRead:
        notebook, writer, _ = self._open(path)

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
    ) -> Edited:
        if index is not None and after_cell_id is not None:
            raise NbError("give either index or after_cell_id, not both")
        cell = self._guard(lambda: nb.make_cell(cell_type, source))
        op = nb.InsertCell(cell=cell, index=index, after_id=after_cell_id)
        return self._edit(path, op, create=True)

    def set_cell(
        self,
        path: str,
        index: int | None,
        cell_id: str | None,
        source: str | None,
        cell_type: str | None,
    ) -> Edited:
        if source is None and cell_type is None:
            raise NbError("nothing to change: give source, cell_type, or both")
        op = nb.SetCell(index=index, cell_id=cell_id, source=source, cell_type=cell_type)
        return self._edit(path, op)

    def delete_cell(self, path: str, index: int | None, cell_id: str | None) -> Edited:
        return self._edit(path, nb.DeleteCell(index=index, cell_id=cell_id))

    def move_cell(self, path: str, index: int | None, cell_id: str | None, to: int) -> Edited:
        return self._edit(path, nb.MoveCell(index=index, cell_id=cell_id, to=to))

    def clear_outputs(
        self,
        path: str,
        index: int | None = None,
        cell_id: str | None = None,
        all_cells: bool = False,
    ) -> Edited:
        if all_cells and (index is not None or cell_id is not None):
            raise NbError("give all=true or a cell (index or cell_id), not both")
        if not all_cells and index is None and cell_id is None:
            raise NbError("give a cell (index or cell_id), or all=true to clear every cell")
        op = nb.ClearOutputs(index=index, cell_id=cell_id, every_cell=all_cells)
        return self._edit(path, op)

    # ------------------------------------------------------------ plumbing

    def _edit(self, path: str, op: nb.Op, create: bool = False) -> Edited:
        notebook, writer, created = self._open(path, create=create)
        result: EditResult = self._ask(writer.edit(op, create))
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

    def _open(self, path: str, create: bool = False) -> tuple[_Notebook, Any, bool]:
        try:
            resolved = notebook_path(path, self.cwd)
        except PathError as error:
            raise NbError(str(error)) from None
        if not create and not resolved.exists():
            raise NbError(
                f"no notebook at {resolved} (read tools never create files; "
                "insert_cell creates a notebook)"
            )
        notebook = self._subtree(resolved)
        writer = notebook.child("writer").proxy()
        opened = self._ask(writer.open(create))
        return notebook, writer, opened.created

    def _subtree(self, path: Path) -> _Notebook:
        with self._lock:
            if self._stopped or self._root is None:
                raise NbError("nb is shutting down")
            existing = self._notebooks.get(path)
            if existing is not None and existing.supervisor.is_alive():
                return existing
            name = f"notebook:{path}"
            spec = ChildSpec(
                id=name,
                actor_class=Supervisor,
                restart=Restart.TEMPORARY,
                kwargs={
                    "name": name,
                    "max_restarts": 5,
                    "period": 60.0,
                    "emit": emit,
                    "children": [
                        ChildSpec(
                            id="writer",
                            actor_class=WriterActor,
                            kwargs={"path": path, "flush_interval": self.config.flush_interval_sec},
                            shutdown_timeout=30.0,
                        )
                    ],
                },
                shutdown_timeout=60.0,
            )
            try:
                ref = self._root.proxy().start_child(spec).get(timeout=_ASK_TIMEOUT)
            except Exception as error:
                raise NbError(f"could not open {path}: {error}") from error
            notebook = _Notebook(path, ref)
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
