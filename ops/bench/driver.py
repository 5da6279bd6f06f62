"""The bench's two drivers: a spawned `nb mcp` over the real MCP client, and a raw kernel.

`NbServer` is what an agent sees: `nb mcp` as a subprocess, the MCP SDK client over stdio,
driven from synchronous code through an anyio blocking portal (ops/ never imports tests/).
`RawKernel` is the baseline: jupyter_client's `start_new_kernel` and a blocking client, reading
iopub until the request's `idle`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import anyio.from_thread
import nbformat
from jupyter_client.manager import start_new_kernel
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

T = TypeVar("T")
NB = str(Path(sys.executable).with_name("nb"))
# The first line of an exec reply: "Job j-… on NB: ok · …" (finished), "Job j-… on NB is
# running after …" (still going), or exec_status's table "Job j-… on /path · kind · running".
_JOB = re.compile(
    r"^Job (j-[0-9a-f]{8}) on "
    r"(?:.* is (queued|running) after |.*: (ok|error|stopped)(?: · |$)|.* · (\w+)$)"
)


class BenchError(RuntimeError):
    """A workload could not be measured (a reply was an error, a deadline passed)."""


class Hung(BenchError):
    """A job that should have finished long ago is still running."""

    def __init__(self, job_id: str, text: str) -> None:
        super().__init__(f"job {job_id} still running: {text[:600]}")
        self.job_id = job_id
        self.text = text


def wait_until(condition: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.002)


def read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                events.append(json.loads(line))
    return events


@dataclass
class Reply:
    text: str
    is_error: bool
    sent: float  # time.monotonic() when the request left
    received: float  # time.monotonic() when the result arrived

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


def _children() -> set[int]:
    """This process's child pids."""
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            found.add(int(entry))
    return found


class NbServer:
    """`nb mcp` in `folder`, with its own event log and state dir, driven over stdio.

    By default `nb mcp` is what an agent runs: a thin front relaying stdio to the per-user
    daemon (`nb serve`, one per state dir, started on demand) that holds the tree. `pid` is
    the process that owns the tree (the daemon, or `nb mcp` itself with `in_process`), the
    one whose `server.started` event is in the log; `front_pid` is the spawned `nb mcp`.
    """

    def __init__(
        self,
        folder: Path,
        name: str,
        in_process: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.folder = folder / name
        self.work = self.folder / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.log_path = self.folder / "events.log"
        self.in_process = in_process
        self.env = dict(os.environ)
        self.env.update(
            NB_MCP_LOG_PATH=str(self.log_path),
            NB_MCP_STATE_DIR=str(self.folder / "state"),
            # If the bench dies before `nb stop`, its daemons go soon after anyway.
            NB_DAEMON_IDLE_SEC="60",
            PYTHONUNBUFFERED="1",
        )
        self.env.update(env or {})  # e.g. a session's JUPYTER_GATEWAY_* settings
        self._stack = ExitStack()
        self._stack.callback(self._stop_daemon)
        before = _children()
        try:
            stderr = self._stack.enter_context(open(self.folder / "server.stderr", "w"))  # noqa: SIM115
            self.portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
            args = ["mcp", "--in-process"] if in_process else ["mcp"]
            params = StdioServerParameters(command=NB, args=args, cwd=str(self.work), env=self.env)
            self.client: Client = self._stack.enter_context(
                self.portal.wrap_async_context_manager(Client(stdio_client(params, errlog=stderr)))
            )
            self.pid: int = wait_until(self._server_pid, 30, "server.started in the event log")
            spawned = sorted(_children() - before)
            self.front_pid: int = spawned[-1] if spawned else self.pid
        except BaseException:
            self._stack.close()
            raise

    def _stop_daemon(self) -> None:
        """`nb stop` for this server's state dir: the daemon outlives its fronts by design."""
        if not self.in_process:
            subprocess.run(
                [NB, "stop"], env=self.env, cwd=self.work, capture_output=True, timeout=120
            )

    def _server_pid(self) -> int | None:
        started = [e for e in read_events(self.log_path) if e["event"] == "server.started"]
        return started[-1]["pid"] if started else None

    # ------------------------------------------------------------ calls

    def call(self, tool: str, **arguments: Any) -> Reply:
        return self.portal.call(self._call, tool, arguments)

    def start_call(self, tool: str, **arguments: Any) -> Future[Reply]:
        return self.portal.start_task_soon(self._call, tool, arguments)

    async def _call(self, tool: str, arguments: dict[str, Any]) -> Reply:
        sent = time.monotonic()
        result = await self.client.call_tool(tool, arguments)
        received = time.monotonic()
        texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
        return Reply("\n".join(texts), bool(result.is_error), sent, received)

    def ok(self, tool: str, **arguments: Any) -> Reply:
        reply = self.call(tool, **arguments)
        if reply.is_error:
            raise BenchError(f"{tool} failed: {reply.text[:500]}")
        return reply

    def run_job(self, tool: str, limit: float = 120.0, **arguments: Any) -> tuple[Reply, float]:
        """Run an exec tool until its job finishes; the reply and the seconds it took.

        `block_for=30` returns inline for anything under 30 s; past that, `exec_status` with
        the same bound picks the result up (the time still runs from the first request).
        A job still going after `limit` seconds raises Hung.
        """
        reply = self.ok(tool, block_for=30, **arguments)
        started = reply.sent
        while not reply.finished:
            if reply.job_id is None:
                raise BenchError(f"{tool} replied without a job id: {reply.text[:500]}")
            if time.monotonic() - started >= limit:
                raise Hung(reply.job_id, reply.text)
            reply = self.ok("exec_status", job_id=reply.job_id, block_for=30)
        if reply.state != "ok":
            raise BenchError(f"{tool} job ended {reply.state}: {reply.text[:800]}")
        return reply, reply.received - started

    # ------------------------------------------------------------ the process and its files

    def notebook(self, name: str, *sources: str) -> Path:
        path = self.work / name
        document = nbformat.v4.new_notebook()
        document.cells = [nbformat.v4.new_code_cell(source) for source in sources]
        document.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nbformat.write(document, path)
        return path

    def events(self) -> list[dict[str, Any]]:
        return [e for e in read_events(self.log_path) if e.get("pid") == self.pid]

    def kernel_pid(self, notebook: Path, after: int = 0) -> int | None:
        """The pid of the newest kernel that became ready for `notebook`."""
        ready = [
            e
            for e in self.events()[after:]
            if e["event"] == "kernel.ready" and e.get("notebook") == str(notebook)
        ]
        return ready[-1].get("kernel_pid") if ready else None

    def threads(self, pid: int | None = None) -> int:
        return len(os.listdir(f"/proc/{pid or self.pid}/task"))

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> NbServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def proc_status(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                values[key] = int(rest.split()[0])
    return values


class RawKernel:
    """The baseline: a kernel from `start_new_kernel` and jupyter_client's blocking client."""

    def __init__(self, cwd: Path, output: IO[bytes] | None = None) -> None:
        streams = {} if output is None else {"stdout": output, "stderr": output}
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(cwd), **streams)
        self.kc.allow_stdin = False

    @property
    def pid(self) -> int:
        return int(self.km.provisioner.pid)  # type: ignore[union-attr]

    def execute(self, code: str, timeout: float = 120.0) -> dict[str, Any]:
        """Send `code`, read iopub until its idle; count what came back."""
        msg_id = self.kc.execute(code, store_history=True, stop_on_error=True)
        counts: dict[str, Any] = {"messages": 0, "stream_chars": 0, "error": None}
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            counts["messages"] += 1
            kind = msg["msg_type"]
            if kind == "stream":
                counts["stream_chars"] += len(msg["content"]["text"])
            elif kind == "error":
                counts["error"] = f"{msg['content']['ename']}: {msg['content']['evalue']}"
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return counts

    def timed(self, code: str) -> float:
        started = time.monotonic()
        counts = self.execute(code)
        took = time.monotonic() - started
        if counts["error"]:
            raise BenchError(f"raw kernel: {counts['error']}")
        return took

    def close(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)

    def __enter__(self) -> RawKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileWatcher:
    """Counts writes to a file that is replaced atomically: each write is a new inode.

    A thread stats the file every `interval` seconds (inotify is not in the stdlib) and
    records each new (inode, mtime, size) it sees, with the time it saw it.
    """

    def __init__(self, path: Path, interval: float = 0.002) -> None:
        self.path = path
        self.interval = interval
        self.changes: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._last = self._stamp()
        self._thread = threading.Thread(target=self._run, name="bench-watch", daemon=True)

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            stamp = self._stamp()
            if stamp is not None and stamp != self._last:
                if self._last is None or stamp[0] != self._last[0]:
                    self.changes.append((time.monotonic(), stamp[0]))
                self._last = stamp

    def __enter__(self) -> FileWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
