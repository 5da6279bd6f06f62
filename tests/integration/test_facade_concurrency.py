"""One notebook that is slow to open or to start a kernel holds up no call on another notebook.

The daemon serves every session through one Facade: a lock held across an ask into the tree
would freeze every session while one notebook opens. Here the slow part is real actors: the
notebook's WriterActor, gated in its setup (so the root supervisor's start of that subtree
takes as long as the test says), and a kernelspec whose kernel never comes up.

(A notebook opened for the first time while another is opening still waits for it: the root
supervisor starts one subtree at a time.)
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nb_mcp.actors.refs import NotebookRefs
from nb_mcp.actors.writer import WriterActor
from nb_mcp.supervisor import opened
from nb_mcp.supervisor.config import Config
from nb_mcp.supervisor.facade import Facade
from nb_mcp.supervisor.notebook_tree import TakenOver, notebook_spec

from tests.helpers import wait_for

PROMPT = 10.0  # seconds: what "answers promptly" allows on a loaded 2-core machine


def write_notebook(path: Path, *sources: str, kernelspec: str | None = None) -> Path:
    document = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    if kernelspec is not None:
        document.metadata["kernelspec"] = {
            "name": kernelspec,
            "display_name": kernelspec,
            "language": "python",
        }
    nbformat.write(document, path)
    return path


class _Gate:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()


GATE = _Gate()


class GatedWriter(WriterActor):
    """A real writer whose start waits for the test: its subtree is slow to open."""

    def setup(self) -> None:
        GATE.entered.set()
        GATE.release.wait(30)
        super().setup()


def test_a_notebook_slow_to_open_does_not_hold_up_a_call_on_another_notebook(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    global GATE
    GATE = _Gate()

    def gated(path: Path, refs: NotebookRefs, config: Config, kernel: TakenOver | None) -> Any:
        spec = notebook_spec(path, refs, config, kernel)
        if path.name != "slow.ipynb":
            return spec
        children = [
            dataclasses.replace(child, actor_class=GatedWriter) if child.id == "writer" else child
            for child in spec.kwargs["children"]
        ]
        return dataclasses.replace(spec, kwargs={**spec.kwargs, "children": children})

    monkeypatch.setattr(opened, "notebook_spec", gated)
    write_notebook(workdir / "slow.ipynb", "1")
    write_notebook(workdir / "quick.ipynb", "x = 1", "y = 2")
    facade = Facade(Config.from_env(cwd=workdir), mode="mcp", cwd=workdir)
    facade.start()
    try:
        assert len(facade.list_cells("quick.ipynb").cells) == 2  # open before the slow one
        with ThreadPoolExecutor(max_workers=3) as pool:
            slow = pool.submit(facade.list_cells, "slow.ipynb")
            assert GATE.entered.wait(PROMPT), "the slow notebook never began to open"
            quick = pool.submit(facade.list_cells, "quick.ipynb")
            again = pool.submit(facade.list_cells, "slow.ipynb")  # waits for the same opening
            try:
                listing = quick.result(timeout=PROMPT)
                assert [cell.index for cell in listing.cells] == [0, 1]
                assert not slow.done() and not again.done(), "the gate held nothing up"
            finally:
                GATE.release.set()
            assert len(slow.result(timeout=PROMPT).cells) == 1
            assert len(again.result(timeout=PROMPT).cells) == 1
    finally:
        GATE.release.set()
        facade.stop("test over")


@pytest.fixture
def hanging_kernelspec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec whose kernel process sleeps instead of starting (it never answers)."""
    folder = tmp_path / "jupyter" / "kernels" / "hangs"
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-c", "import time; time.sleep(600)", "{connection_file}"],
        "display_name": "Hangs",
        "language": "python",
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "hangs"


def test_a_kernel_that_never_starts_holds_up_no_call_on_another_notebook(
    workdir: Path, hanging_kernelspec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NB_MCP_KERNEL_START_TIMEOUT_SEC", "60")
    write_notebook(workdir / "hangs.ipynb", "1", kernelspec=hanging_kernelspec)
    write_notebook(workdir / "works.ipynb", "print('answered')")
    facade = Facade(Config.from_env(cwd=workdir), mode="mcp", cwd=workdir)
    facade.start()
    try:
        stuck = facade.submit("hangs.ipynb", "exec_cell", index=0)
        wait_for(
            lambda: any(k.info.state == "starting" for k in facade.status().kernels),
            timeout=PROMPT,
            what="the hanging kernel to be starting",
        )
        listing = facade.list_cells("works.ipynb")
        assert [cell.index for cell in listing.cells] == [0]
        ran = facade.submit("works.ipynb", "exec_cell", index=0)
        snapshot = ran.future.result(timeout=60)
        assert snapshot.state == "ok", snapshot
        assert not stuck.future.done(), "the hanging kernel's job ended: nothing was tested"
        outputs, _ = facade.job_outputs(snapshot)
        assert "answered" in json.dumps(outputs[0].outputs)
    finally:
        facade.stop("test over")
