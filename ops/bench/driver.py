"""The bench's two drivers: a spawned `nb mcp` over the real MCP client, and a raw kernel.

`NbServer` is what an agent sees: `nb mcp` as a subprocess, the MCP SDK client over stdio,
driven from synchronous code through an anyio blocking portal (ops/ never imports tests/).
`RawKernel` is the baseline: jupyter_client's `start_new_kernel` and a blocking client, reading
iopub until the request's `idle`.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import nbformat
import psutil
from jupyter_client.manager import start_new_kernel

from ops.bench.mcp_client import NB, McpClientProcess, Reply

T = TypeVar("T")


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


def _children() -> set[int]:
    """This process's child pids."""
    return {child.pid for child in psutil.Process().children()}


class NbServer(McpClientProcess):
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
        self.in_process = in_process
        log_path = self.folder / "events.log"
        env = {
            **os.environ,
            "NB_MCP_LOG_PATH": str(log_path),
            "NB_MCP_STATE_DIR": str(self.folder / "state"),
            # If the bench dies before `nb stop`, its daemons go soon after anyway.
            "NB_DAEMON_IDLE_SEC": "60",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),  # e.g. a session's JUPYTER_GATEWAY_* settings
        }
        before = _children()
        super().__init__(
            self.work,
            env,
            self.folder / "server.stderr",
            log_path,
            args=["mcp", "--in-process"] if in_process else ["mcp"],
            cleanup=self._stop_daemon,
        )
        spawned = sorted(_children() - before)
        self.front_pid: int = spawned[-1] if spawned else self.pid

    def _stop_daemon(self) -> None:
        """`nb stop` for this server's state dir: the daemon outlives its fronts by design."""
        if not self.in_process:
            subprocess.run(
                [NB, "stop"], env=self.env, cwd=self.work, capture_output=True, timeout=120
            )

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
