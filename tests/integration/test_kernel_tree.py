"""A notebook's subtree with a real writer and a real kernel, driven through its supervisor.

These tests reach below the MCP tools for what the tools cannot time: the order in which a
supervisor's mailbox sees a job's start and a kernel actor's failure.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import nbformat
import pykka
import pytest
from nb_mcp.actors.channels import ChannelsFailed
from nb_mcp.actors.environment import KernelChoice
from nb_mcp.actors.job import JobActor, JobSnapshot, JobSpec
from nb_mcp.actors.launch import KernelLaunch
from nb_mcp.actors.log import LogActor
from nb_mcp.actors.refs import NotebookRefs
from nb_mcp.supervisor.config import Config
from nb_mcp.supervisor.notebook_tree import notebook_spec
from nb_mcp.supervisor.tree import ChildSpec, Restart, SupervisedActor, Supervision, start_root

from tests.helpers import events_named, read_events, wait_for


class SlowStart(SupervisedActor):
    """A child whose setup holds its supervisor until the test lets it go (a slow start)."""

    def __init__(
        self, *, supervision: Supervision, entered: threading.Event, release: threading.Event
    ) -> None:
        super().__init__(supervision=supervision)
        self._entered = entered
        self._release = release

    def setup(self) -> None:
        self._entered.set()
        self._release.wait(30)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[pykka.ActorRef, Path, NotebookRefs]]:
    path = tmp_path / "work" / "n.ipynb"
    path.parent.mkdir()
    document = nbformat.v4.new_notebook()
    document.cells = [nbformat.v4.new_code_cell("print('answer', 6 * 7)")]
    nbformat.write(document, path)
    config = Config.from_env(
        {**os.environ, "NB_MCP_STATE_DIR": str(tmp_path / "state")}, path.parent
    )
    root = start_root(
        "root", children=[ChildSpec("log", LogActor, {"path": tmp_path / "events.log"})]
    )
    refs = NotebookRefs(path)
    subtree = root.proxy().start_child(notebook_spec(path, refs, config)).get()
    try:
        yield subtree, path, refs
    finally:
        root.stop(block=True, timeout=60)


def job_spec(path: Path, cell_id: str) -> JobSpec:
    return JobSpec(
        job_id="j-0000beef",
        notebook=path,
        kind="exec_cell",
        cell_ids=(cell_id,),
        launch=KernelLaunch(
            choice=KernelChoice(kernelspec="python3", rule="test"), env=dict(os.environ)
        ),
        timeout=None,
    )


def test_a_job_submitted_while_its_supervisor_is_busy_and_the_kernel_actor_fails_starts_at_once(
    tree, tmp_path
):
    subtree, path, refs = tree
    supervisor = subtree.proxy()
    spec = job_spec(path, nbformat.read(path, as_version=4).cells[0].id)
    done: Future[JobSnapshot] = Future()
    kernel = supervisor.which_child("kernel").get()

    # The supervisor is busy starting another child (a slow setup holds its mailbox) ...
    entered, release = threading.Event(), threading.Event()
    supervisor.start_child(
        ChildSpec(
            "slow",
            SlowStart,
            {"entered": entered, "release": release},
            restart=Restart.TEMPORARY,
        )
    )
    assert entered.wait(10)
    # ... when a job is submitted, and then the kernel actor fails (a broken iopub message):
    # the job's start is in the mailbox before the kernel's restart.
    started = supervisor.start_child(
        ChildSpec(
            f"job:{spec.job_id}",
            JobActor,
            {"spec": spec, "refs": refs, "done": done},
            restart=Restart.TEMPORARY,
            shutdown_timeout=20.0,
        )
    )
    kernel.tell(ChannelsFailed("iopub", "a broken message, injected"))
    wait_for(lambda: not kernel.is_alive(), what="the kernel actor to fail")
    release.set()

    began = time.monotonic()
    started.get(timeout=30)  # the job's setup waits for nothing: no kernel ref, no restart
    assert time.monotonic() - began < 1.0, "the job's start waited for the kernel's restart"
    snapshot = done.result(timeout=60)
    assert snapshot.state == "ok", snapshot
    events = read_events(tmp_path / "events.log")
    assert [e["child"] for e in events_named(events, "supervisor.child_restarted")] == ["kernel"]
    assert not events_named(events, "supervisor.child_start_failed")
