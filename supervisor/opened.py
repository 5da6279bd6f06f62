"""The notebooks the facade has open: one subtree each, started once, and never under a lock.

Opening a notebook is an ask to the root supervisor (it starts the notebook's subtree). The
facade-wide lock only guards the table of open notebooks: the ask itself runs outside it, and
callers for the same path wait on the one opening's future, so a notebook that is slow to open
never holds up a call on another notebook (another session's, typically).

Also here: the asks every part of the facade makes, with their errors turned into NbError.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pykka
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.refs import NotebookRefs, NotRunning
from nb_mcp.supervisor import gateway_takeover
from nb_mcp.supervisor.config import Config
from nb_mcp.supervisor.notebook_tree import TakenOver, notebook_spec
from nb_mcp.supervisor.paths import PathError, Scope, notebook_path
from nb_mcp.supervisor.results import NbError
from nb_mcp.supervisor.session import Session
from nb_mcp.supervisor.tree import ChildSpec

T = TypeVar("T")
ASK_TIMEOUT = 60.0

SubtreeSpec = Callable[[Path, NotebookRefs, Config, "TakenOver | None"], ChildSpec]


class NotebookHandle:
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


class OpenNotebooks:
    def __init__(
        self, config: Config, default_scope: Session, spec: SubtreeSpec | None = None
    ) -> None:
        self.config = config
        self.default_scope = default_scope
        self._spec = spec or notebook_spec  # the seam tests replace (a subtree slow to start)
        self._root: Any = None
        self._open: dict[Path, NotebookHandle] = {}
        self._opening: dict[Path, Future[NotebookHandle]] = {}
        self._lock = threading.Lock()
        self._stopped = False
        # Told of each job that carries on a cell an earlier daemon was running (the facade's
        # jobs make it known to exec_status and status like a submitted one).
        self.on_resumed: Callable[[NotebookHandle, TakenOver], None] | None = None

    def attach(self, root_proxy: Any) -> None:
        self._root = root_proxy

    def session(self, scope: Scope | None) -> Session:
        """The session a call belongs to: its own, or the default one with its scope's paths."""
        if isinstance(scope, Session):
            return scope
        if scope is None:
            return self.default_scope
        return replace(self.default_scope, cwd=scope.cwd, roots=scope.roots)

    def subtree(
        self,
        path: Path,
        kernel: TakenOver | None = None,
        inherit: Callable[[], TakenOver | None] | None = None,
    ) -> NotebookHandle:
        """The notebook's running subtree, started if need be (`kernel`: one taken over;
        `inherit`: asked for one only if this call is the one that starts the subtree)."""
        with self._lock:
            if self._stopped or self._root is None:
                raise NbError("nb is shutting down")
            existing = self._open.get(path)
            if existing is not None and existing.supervisor.is_alive():
                return existing
            opening = self._opening.get(path)
            if opening is None:
                opening = self._opening[path] = Future()
                mine = True
            else:
                mine = False
        if not mine:
            return opening.result()  # the opener's ask is bounded: this ends
        inherited = None
        try:
            if kernel is None and inherit is not None:
                kernel = inherited = inherit()
            refs = NotebookRefs(path)
            spec = self._spec(path, refs, self.config, kernel)
            ref = self._root.start_child(spec).get(timeout=ASK_TIMEOUT)
        except Exception as error:
            if inherited is not None:  # recorded as ours now: never leave it without a driver
                inherited.inheritance.backend.stop(grace=0.0)
            failure = NbError(f"could not open {path}: {error}")
            with self._lock:
                del self._opening[path]
            opening.set_exception(failure)
            raise failure from error
        handle = NotebookHandle(path, ref, refs)
        with self._lock:
            del self._opening[path]
            # Opened while nb stopped: the root's own stop stops this subtree with the rest.
            self._open[path] = handle
        if kernel is not None and kernel.resumed_job is not None and self.on_resumed is not None:
            self.on_resumed(handle, kernel)
        opening.set_result(handle)
        return handle

    def open(
        self, path: str, scope: Scope | None, create: bool = False, load: bool = True
    ) -> tuple[NotebookHandle, Any, bool]:
        """The notebook's handle, its writer, and whether opening it created the file."""
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
        notebook = self.subtree(resolved, inherit=lambda: self._left_running(resolved, scope))
        writer = notebook.writer()
        if create and not resolved.exists():
            return notebook, writer, True  # the edit creates it, if the edit is valid
        if not load:
            return notebook, writer, False
        opened = ask(writer.open(create))
        return notebook, writer, opened.created

    def _left_running(self, path: Path, scope: Scope) -> TakenOver | None:
        """A remote kernel an earlier daemon left running a cell of this notebook, which this
        session's gateway settings can reach (local kernels are taken over at start-up)."""
        if not isinstance(scope, Session):
            return None
        return gateway_takeover.running_cell_left(path, scope.env, scope.id, self.config.state_dir)

    def get(self, path: Path) -> NotebookHandle | None:
        with self._lock:
            return self._open.get(path)

    def live(self, shown: Callable[[Path], bool]) -> list[NotebookHandle]:
        with self._lock:
            notebooks = [n for n in self._open.values() if shown(n.path)]
        return [n for n in notebooks if n.supervisor.is_alive()]

    def close(self) -> list[NotebookHandle] | None:
        """Refuse every open from now on; the open notebooks, or None if already closed."""
        with self._lock:
            if self._stopped or self._root is None:
                return None
            self._stopped = True
            return list(self._open.values())


def ask(future: pykka.Future[T]) -> T:
    try:
        return future.get(timeout=ASK_TIMEOUT)
    except (nb.NotebookError, PathError) as error:
        raise NbError(str(error)) from None
    except pykka.Timeout:
        raise NbError(f"nb did not answer within {ASK_TIMEOUT:.0f}s (see the event log)") from None
    except pykka.ActorDeadError:
        raise NbError("the notebook's actor stopped while answering; try again") from None


def guard(make: Callable[[], T]) -> T:
    try:
        return make()
    except nb.NotebookError as error:
        raise NbError(str(error)) from None


def notices(writer: Any) -> list[str]:
    try:
        return writer.take_notices().get(timeout=ASK_TIMEOUT)
    except Exception:
        return []
