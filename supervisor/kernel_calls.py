"""The facade's kernel side: which kernel a notebook gets (and remembering it), the kernel
tools (interrupt, restart, shutdown, list_kernels), and the kernels that run now."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka
from nb_mcp.actors.kernel_protocol import KernelInfo
from nb_mcp.actors.refs import NotebookRefs, NotRunning
from nb_mcp.supervisor import kernels
from nb_mcp.supervisor.opened import OpenNotebooks, ask
from nb_mcp.supervisor.paths import PathError, Scope, notebook_path, within
from nb_mcp.supervisor.results import KernelNotFound, KernelStatus, NbError


class KernelCalls:
    def __init__(self, notebooks: OpenNotebooks) -> None:
        self._notebooks = notebooks

    def decide(
        self,
        path: Path,
        scope: Scope | None,
        requested: str | None,
        metadata: kernels.KernelMetadata,
        refs: NotebookRefs | None = None,
    ) -> kernels.Decision:
        """The session's launch for this notebook (with `refs`, its running kernel considered,
        as its KernelProcess last put it up: no ask); a refusal is an NbError."""
        current: KernelInfo | None = refs.kernel_info() if refs else None
        try:
            return kernels.decide(
                self._notebooks.session(scope), path, requested, metadata, current
            )
        except kernels.KernelspecMissing as error:
            raise KernelNotFound(str(error)) from None
        except kernels.KernelRefused as error:
            raise NbError(str(error)) from None

    def remember(self, writer: Any, decision: kernels.Decision, wait: bool = True) -> None:
        """Write the choice into the notebook's metadata, if it is new (a failed write is
        retried by the writer like any edit, and reported in the next reply). Without `wait`
        it is a tell: what the writer is told next (a job's cells) comes after it anyway."""
        if decision.remember:
            edited = writer.edit(kernels.remembering(decision.launch.choice))
            if wait:
                ask(edited)

    def precheck(self, path: str, requested: str | None, scope: Scope | None) -> None:
        """Refuse a kernel the notebook could not get, before anything changes."""
        try:
            resolved = notebook_path(path, self._notebooks.session(scope).cwd)
        except PathError as error:
            raise NbError(str(error)) from None
        if not resolved.exists():
            self.decide(resolved, scope, requested, kernels.KernelMetadata())
            return
        notebook, writer, _ = self._notebooks.open(path, scope)
        metadata = ask(writer.query(kernels.read_metadata))
        self.decide(notebook.path, scope, requested, metadata, notebook.refs)

    def interrupt(self, path: str, scope: Scope | None = None) -> str:
        return self._call(path, scope, lambda kernel: kernel.interrupt())

    def restart_kernel(
        self, path: str, kernel_name: str | None = None, scope: Scope | None = None
    ) -> str:
        """Restart with this session's choice and environment (and remember the choice)."""
        notebook, writer, _ = self._notebooks.open(path, scope)
        metadata = ask(writer.query(kernels.read_metadata))
        decision = self.decide(notebook.path, scope, kernel_name, metadata)
        reply = self._call(path, scope, lambda k: k.restart_kernel(decision.launch))
        self.remember(writer, decision)
        return reply

    def shutdown_kernel(self, path: str, scope: Scope | None = None) -> str:
        return self._call(path, scope, lambda kernel: kernel.shutdown_kernel())

    def list_kernels(self, path: str | None, scope: Scope | None = None) -> kernels.KernelListing:
        """The kernelspecs, what a notebook (or a new one here) would run in, what runs."""
        session = self._notebooks.session(scope)
        notebook: Path | None = None
        metadata = kernels.KernelMetadata()
        if path is not None:
            try:
                notebook = notebook_path(path, session.cwd, session.roots)
            except PathError as error:
                raise NbError(str(error)) from None
            if notebook.exists():
                _, writer, _ = self._notebooks.open(path, scope)
                metadata = ask(writer.query(kernels.read_metadata))
        here = self.running(session.roots)
        return kernels.listing(session, notebook, metadata, [(k.notebook, k.info) for k in here])

    def running(self, roots: tuple[Path, ...] | None = None) -> list[KernelStatus]:
        """The kernels of open notebooks (under `roots`, if given)."""
        shown = (lambda _: True) if roots is None else (lambda path: within(path, roots))
        found = []
        for notebook in self._notebooks.live(shown):
            try:
                info = notebook.refs.kernel().info().get(timeout=5)
            except (NotRunning, pykka.ActorDeadError, pykka.Timeout):
                continue
            found.append(KernelStatus(notebook.path, info))
        return found

    def _call(
        self, path: str, scope: Scope | None, call: Callable[[Any], pykka.Future[str]]
    ) -> str:
        notebook, _, _ = self._notebooks.open(path, scope)
        try:
            kernel = notebook.refs.kernel()
        except NotRunning as error:
            raise NbError(str(error)) from None
        return ask(call(kernel))
