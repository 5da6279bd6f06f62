"""Test helpers: a synchronous handle on a real `nb mcp` over stdio (built on the bench's, in
ops/bench/mcp_client.py), the event log, deadlines."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import nbformat

# NB, Reply and read_events are the tests' too: they import them from here.
from ops.bench.mcp_client import NB as NB
from ops.bench.mcp_client import McpClientProcess
from ops.bench.mcp_client import Reply as Reply
from ops.bench.mcp_client import read_events as read_events

T = TypeVar("T")
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "ops" / "events.schema.json"


def wait_for(condition: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll `condition` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)  # polling interval, not a wait for the thing itself
        delay = min(delay * 2, 0.05)


class McpServer(McpClientProcess):
    """A spawned `nb mcp` driven through the real MCP SDK client, from synchronous tests;
    in-process unless asked (most tests are about the tree, not the daemon around it)."""

    def __init__(
        self,
        cwd: Path,
        env: dict[str, str],
        stderr_path: Path,
        roots: list[Path] | None = None,
        mode: str = "auto",
        in_process: bool = True,
        log_path: Path | None = None,
    ) -> None:
        self.stderr_path = stderr_path
        self.roots_asked: list[float] = []
        super().__init__(
            cwd,
            env,
            stderr_path,
            # Where the server writes its events: a daemon front whose own NB_MCP_LOG_PATH
            # differs from the running daemon's is told so, and the events go to the daemon's.
            log_path or Path(env["NB_MCP_LOG_PATH"]),
            args=["mcp", "--in-process"] if in_process else ["mcp"],
            list_roots_callback=None if roots is None else roots_callback(roots, self.roots_asked),
            mode=mode,
            started_within=10.0,
        )

    def env_path(self, name: str) -> Path:
        return Path(self.env[name])


def roots_callback(roots: list[Path], asked: list[float] | None = None) -> Any:
    """The client's answer to roots/list; each time it is asked is appended to `asked`."""
    from mcp_types import ListRootsResult, Root

    async def list_roots(_: Any) -> ListRootsResult:
        if asked is not None:
            asked.append(time.monotonic())
        return ListRootsResult(roots=[Root(uri=p.as_uri(), name=p.name) for p in roots])

    return list_roots


def server_env(tmp: Path, **overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    # An activated environment of whoever runs the tests would choose the kernels' Python
    # (the client's VIRTUAL_ENV / CONDA_PREFIX rule): tests say which one they want.
    for variable in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        env.pop(variable, None)
    env.update(
        NB_MCP_LOG_PATH=str(tmp / "events.log"),
        NB_MCP_STATE_DIR=str(tmp / "state"),
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def cell_texts(notebook: dict[str, Any]) -> list[str]:
    return [
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for cell in notebook["cells"]
    ]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def events_named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


def gate(flag: Path, before: str = "", after: str = "") -> str:
    """Cell code that runs `before`, waits until the test creates `flag`, then runs `after`."""
    return (
        "import os, time\n"
        f"{before}\n"
        f"while not os.path.exists({str(flag)!r}):\n"
        "    time.sleep(0.01)\n"
        f"{after}\n"
    )


def notebook(server: McpServer, name: str, *sources: str) -> Path:
    path = server.cwd / name
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    document = nbformat.v4.new_notebook()
    document.cells = cells
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(document, path)
    return path


def outputs_text(path: Path, index: int) -> str:
    cell = load(path)["cells"][index]
    parts = []
    for output in cell.get("outputs", []):
        if "text" in output:
            parts.append("".join(output["text"]))
        for value in output.get("data", {}).values():
            parts.append("".join(value) if isinstance(value, list) else str(value))
        if output["output_type"] == "error":
            parts.append(f"{output['ename']}: {output['evalue']}")
    return "".join(parts)


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
