"""A spawned `nb mcp`, driven through the real MCP SDK client over stdio from synchronous code.

What an agent sees, and what both the bench (ops/bench/driver.py: NbServer) and the tests
(tests/helpers.py: McpServer) drive: the client runs in an anyio blocking portal, and each
call comes back as a `Reply` with its text, its images, the progress notifications it got and
when it was sent and answered. ops/ never imports tests/; the tests build on this.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import anyio.from_thread
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

NB = str(Path(sys.executable).with_name("nb"))

Progress = tuple[float, float | None, str | None]
# The first line of an exec reply: "Job j-… on NB: ok · …" (finished), "Job j-… on NB is
# running after …" (still going), or exec_status's table "Job j-… on /path · kind · running".
_JOB = re.compile(
    r"^Job (j-[0-9a-f]{8}) on "
    r"(?:.* is (queued|running) after |.*: (ok|error|stopped)(?: · |$)|.* · (\w+)$)"
)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event in a log and its rotated files (events.log.1 is older than events.log),
    oldest first."""
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
    progress: list[Progress] = field(default_factory=list)
    sent: float = 0.0  # time.monotonic() when the request left
    received: float = 0.0  # time.monotonic() when the result arrived

    @property
    def seconds(self) -> float:
        return self.received - self.sent

    @property
    def job_id(self) -> str | None:
        match = _JOB.match(self.text.partition("\n")[0])
        return match.group(1) if match else None

    @property
    def state(self) -> str | None:
        match = _JOB.match(self.text.partition("\n")[0])
        return next((group for group in match.groups()[1:] if group), None) if match else None

    @property
    def finished(self) -> bool:
        return self.state in ("ok", "error", "stopped")


class McpClientProcess:
    """`nb <args>` spawned in `cwd` with `env`, its stderr in `stderr_path`, and an MCP client
    session on its stdio. `pid` is the process whose `server.started` is in `log_path` (the
    daemon, or `nb mcp` itself when it runs in-process). `cleanup` runs after the client has
    closed, e.g. `nb stop` for a daemon that outlives its fronts by design."""

    def __init__(
        self,
        cwd: Path,
        env: dict[str, str],
        stderr_path: Path,
        log_path: Path,
        *,
        args: list[str],
        list_roots_callback: Any = None,
        mode: str = "auto",
        started_within: float = 30.0,
        cleanup: Callable[[], None] | None = None,
    ) -> None:
        self.cwd = cwd
        self.env = env
        self.log_path = log_path
        self._stack = ExitStack()
        if cleanup is not None:
            self._stack.callback(cleanup)
        try:
            self._stderr = self._stack.enter_context(open(stderr_path, "w"))  # noqa: SIM115
            self.portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
            params = StdioServerParameters(command=NB, args=args, cwd=str(cwd), env=env)
            client = Client(
                stdio_client(params, errlog=self._stderr),
                list_roots_callback=list_roots_callback,
                mode=mode,
            )
            self.client: Client = self._stack.enter_context(
                self.portal.wrap_async_context_manager(client)
            )
            self.pid: int = self._wait_started(started_within)
        except BaseException:
            self._stack.close()
            raise

    def _wait_started(self, within: float) -> int:
        deadline = time.monotonic() + within
        while True:
            started = [e for e in read_events(self.log_path) if e["event"] == "server.started"]
            if started:
                return started[-1]["pid"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no server.started in {self.log_path} after {within:g}s")
            time.sleep(0.005)  # polling the log, not waiting for the start itself

    def call(self, tool: str, **arguments: Any) -> Reply:
        return self.portal.call(self._call, tool, arguments, None)

    def start_call(self, tool: str, **arguments: Any) -> tuple[Future[Reply], list[Progress]]:
        """Start a call without waiting; the list fills with its progress notifications."""
        progress: list[Progress] = []
        return self.portal.start_task_soon(self._call, tool, arguments, progress), progress

    async def _call(
        self, tool: str, arguments: dict[str, Any], progress: list[Progress] | None
    ) -> Reply:
        seen = progress if progress is not None else []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            seen.append((value, total, message))

        sent = time.monotonic()
        result = await self.client.call_tool(tool, arguments, progress_callback=on_progress)
        received = time.monotonic()
        texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
        images = [c for c in result.content if getattr(c, "type", "") == "image"]
        return Reply("\n".join(texts), bool(result.is_error), images, seen, sent, received)

    def events(self) -> list[dict[str, Any]]:
        """This server's events (a shared log may hold an earlier server's too)."""
        return [e for e in read_events(self.log_path) if e.get("pid") == self.pid]

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
