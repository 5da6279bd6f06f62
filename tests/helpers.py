"""Test helpers: a synchronous handle on a real `nb mcp` over stdio, the event log, deadlines."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import nbformat
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

T = TypeVar("T")
NB = str(Path(sys.executable).with_name("nb"))
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


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event in a log and its rotated files, oldest first."""
    files = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    events = []
    for file in [*files, path]:
        if file.exists():
            events.extend(json.loads(line) for line in file.read_text().splitlines() if line)
    return events


@dataclass
class Reply:
    text: str
    is_error: bool
    images: list[Any] = field(default_factory=list)
    progress: list[tuple[float, float | None, str | None]] = field(default_factory=list)


class McpServer:
    """A spawned `nb mcp` driven through the real MCP SDK client, from synchronous tests."""

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
        self.cwd = cwd
        self.env = env
        self.stderr_path = stderr_path
        # Where the server writes its events: a daemon front whose own NB_MCP_LOG_PATH differs
        # from the running daemon's is told so, and the events go to the daemon's.
        self.log_path = log_path or Path(env["NB_MCP_LOG_PATH"])
        self._stack = ExitStack()
        self._stderr = self._stack.enter_context(open(stderr_path, "w"))  # noqa: SIM115
        self.portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        # In-process unless asked: most tests are about the tree, not the daemon around it.
        args = ["mcp", "--in-process"] if in_process else ["mcp"]
        params = StdioServerParameters(command=NB, args=args, cwd=str(cwd), env=env)
        self.roots_asked: list[float] = []
        callback = None if roots is None else roots_callback(roots, self.roots_asked)
        client = Client(
            stdio_client(params, errlog=self._stderr), list_roots_callback=callback, mode=mode
        )
        self.client: Client = self._stack.enter_context(
            self.portal.wrap_async_context_manager(client)
        )
        self.pid = wait_for(self._server_pid, what="server.started in the event log")

    def _server_pid(self) -> int | None:
        started = [e for e in read_events(self.log_path) if e["event"] == "server.started"]
        return started[-1]["pid"] if started else None

    def call(self, tool: str, **arguments: Any) -> Reply:
        return self.portal.call(self._call, tool, arguments, None)

    def start_call(self, tool: str, **arguments: Any) -> tuple[Future[Reply], list[Any]]:
        """Start a call without waiting; the list fills with progress notifications."""
        progress: list[Any] = []
        return self.portal.start_task_soon(self._call, tool, arguments, progress), progress

    async def _call(
        self, tool: str, arguments: dict[str, Any], progress: list[Any] | None
    ) -> Reply:
        seen = progress if progress is not None else []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            seen.append((value, total, message))

        result = await self.client.call_tool(tool, arguments, progress_callback=on_progress)
        texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
        images = [c for c in result.content if getattr(c, "type", "") == "image"]
        return Reply("\n".join(texts), bool(result.is_error), images, seen)

    def env_path(self, name: str) -> Path:
        return Path(self.env[name])

    def events(self) -> list[dict[str, Any]]:
        return [e for e in read_events(self.log_path) if e.get("pid") == self.pid]

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> McpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
