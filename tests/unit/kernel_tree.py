"""A notebook's real subtree (writer, TurnQueue, KernelProcess, KernelSession, jobs) on a
ManualClock, over scripted kernels: what the kernel actors' tests drive.

Nothing here sleeps: time moves when a test says (`clock.advance`), and a test waits on what it
expects — an event handed to the log's subscribers, a job's future, a scripted kernel's request —
each with a deadline that only a failure reaches.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import nbformat
import pykka
from nb_mcp.actors.environment import KernelChoice
from nb_mcp.actors.job import JobActor, JobBoard, JobSnapshot, JobSpec
from nb_mcp.actors.launch import KernelLaunch
from nb_mcp.actors.log import LogActor
from nb_mcp.actors.refs import NotebookRefs
from nb_mcp.supervisor.clock import Barrier, ManualClock
from nb_mcp.supervisor.config import Config
from nb_mcp.supervisor.notebook_tree import TakenOver, notebook_spec
from nb_mcp.supervisor.tree import ChildSpec, Restart, start_root

from tests.helpers import load
from tests.unit.kernel_double import ScriptedKernels

LAUNCH = KernelLaunch(choice=KernelChoice(kernelspec="python3", rule="a test's"), start_timeout=2.0)


def hang(pump: Any, msg_id: str, _code: str) -> None:
    """A kernel's answer to a cell: it begins, prints a line, and keeps running."""
    pump.start_running(msg_id, "step 1\n")


def running(
    tree: Callable[..., Tree],
    *sources: str,
    on_execute: Callable[[Any, str, str], None] = hang,
    **kwargs: Any,
) -> tuple[Any, ...]:
    """A tree (from the `tree` fixture) whose first job's first cell was sent to a kernel
    that answers it with `on_execute` (by default: begins it and keeps it running):
    (tree, the job's future, the kernel, its pump, the cell's msg_id). Kernels started later
    run their cells to the end at once."""
    t = tree(*sources, **kwargs)
    t.kernels.prepare = lambda kernel: setattr(kernel, "on_execute", on_execute)
    done = t.run()
    kernel = t.kernels.kernel(1)
    pump, msg_id, _ = kernel.wait_for_run()
    t.settle()
    t.kernels.prepare = lambda kernel: None
    return t, done, kernel, pump, msg_id


class Events:
    """The events the log writes, as its subscriber sees them."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self._changed = threading.Condition()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._changed:
            self.seen.append(event)
            self._changed.notify_all()

    def named(self, name: str, **fields: Any) -> list[dict[str, Any]]:
        with self._changed:
            return [
                e
                for e in self.seen
                if e["event"] == name and all(e.get(k) == v for k, v in fields.items())
            ]

    def wait(self, name: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        with self._changed:
            if not self._changed.wait_for(lambda: self.named(name, **fields), timeout):
                raise AssertionError(f"no {name} event with {fields}; saw {self.names()}")
            return self.named(name, **fields)[0]

    def count(self, name: str, at_least: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.named(name)) >= at_least, timeout):
                raise AssertionError(f"fewer than {at_least} {name} events; saw {self.names()}")
            return self.named(name)

    def names(self) -> list[str]:
        return [e["event"] for e in self.seen]


class Tree:
    def __init__(
        self,
        folder: Path,
        *sources: str,
        taken_over: Callable[[list[str]], TakenOver] | None = None,
        **env: str,
    ) -> None:
        self.path = folder / "n.ipynb"
        document = nbformat.v4.new_notebook()
        document.cells = [nbformat.v4.new_code_cell(source) for source in sources]
        nbformat.write(document, self.path)
        self.cell_ids = [cell.id for cell in document.cells]
        self.clock = ManualClock()
        self.kernels = ScriptedKernels()
        self.events = Events()
        config = Config.from_env(
            {**os.environ, "NB_MCP_STATE_DIR": str(folder / "state"), **env}, folder
        )
        self.root = start_root(
            "root", children=[ChildSpec("log", LogActor, {"path": folder / "events.log"})]
        )
        self._log = self.root.proxy().which_child("log").get()
        self._log.proxy().subscribe(self.events).get()
        self.refs = NotebookRefs(self.path)
        kernel = taken_over(self.cell_ids) if taken_over is not None else None
        spec = notebook_spec(
            self.path, self.refs, config, kernel, clock=self.clock, backends=self.kernels
        )
        self.subtree = self.root.proxy().start_child(spec).get()
        self.job_ids: list[str] = []  # of the jobs run() started, in order

    def run(
        self,
        *positions: int,
        timeout: float | None = None,
        code: str | None = None,
        board: JobBoard | None = None,
    ) -> Future[JobSnapshot]:
        """Start a job on these cells (all, if none is named; scratch code if `code`)."""
        chosen = positions or tuple(range(len(self.cell_ids)))
        job_id = f"j-{uuid.uuid4().hex[:8]}"
        done: Future[JobSnapshot] = Future()
        spec = JobSpec(
            job_id=job_id,
            notebook=self.path,
            kind="run_scratch" if code is not None else "exec_range",
            cell_ids=() if code is not None else tuple(self.cell_ids[i] for i in chosen),
            launch=LAUNCH,
            timeout=timeout,
            code=code,
            submitted_at=self.clock.time(),
        )
        child = ChildSpec(
            f"job:{job_id}",
            JobActor,
            {"spec": spec, "refs": self.refs, "done": done, "clock": self.clock, "board": board},
            restart=Restart.TEMPORARY,
        )
        self.subtree.proxy().start_child(child).get(timeout=5)
        self.job_ids.append(job_id)
        return done

    def cancel(self, number: int, reason: str) -> str:
        """Cancel the `number`-th job run() started, as the cancel_job tool does; what it was
        doing (queued, running, finished)."""
        job = self.subtree.proxy().which_child(f"job:{self.job_ids[number - 1]}").get(timeout=5)
        assert job is not None, "the job has ended already"
        return job.proxy().cancel(reason).get(timeout=5)

    def settle(self) -> None:
        """Wait until the queue, the session, the process and then the log have handled all
        they were told so far (what one tells the next as it handles a message is then
        handled too, and its events are in the log)."""
        for role in ("turns", "session", "process"):
            ref = self.refs.current(role)
            if ref is not None:
                ref.ask(Barrier(), timeout=5)
        self._log.ask(Barrier(), timeout=5)

    def kernel_info(self) -> Any:
        return self.refs.kernel().info().get(timeout=5)

    def cell_text(self, position: int) -> str:
        """What the file shows in a cell: every text output, markers included."""
        self.refs.writer().flush().get(timeout=5)
        cell = load(self.path)["cells"][position]
        return "".join("".join(o.get("text", "")) for o in cell["outputs"]) + "".join(
            f"{o['ename']}: {o['evalue']}" for o in cell["outputs"] if o["output_type"] == "error"
        )

    def close(self) -> None:
        self.root.stop(block=True, timeout=20)
        pykka.ActorRegistry.stop_all()
