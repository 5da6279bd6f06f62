"""A raw JSON-RPC MCP client over a spawned `nb mcp`'s stdio, for what no SDK client speaks
yet (the 2026-07-28 tasks extension): lines out, lines in, nothing interpreted for us."""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.helpers import NB, read_events, wait_for

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
TASKS = "io.modelcontextprotocol/tasks"


def modern_envelope(tasks: bool) -> dict[str, Any]:
    """The 2026-07-28 per-request `_meta`, declaring the tasks extension or not."""
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS: {}}} if tasks else {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    }


class RawMcp:
    """`nb mcp` spoken to line by line. `tasks=True`: each request declares the tasks
    extension in its 2026-07-28 envelope; `version=LEGACY` opens with the 2025 handshake."""

    def __init__(
        self,
        cwd: Path,
        env: dict[str, str],
        stderr_path: Path,
        *,
        version: str = MODERN,
        tasks: bool = True,
        in_process: bool = False,
    ) -> None:
        self.version, self.tasks = version, tasks
        args = [NB, "mcp", "--in-process"] if in_process else [NB, "mcp"]
        self._stderr = open(stderr_path, "a")  # noqa: SIM115
        self.process = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._ids = itertools.count(1)
        self._answers: dict[int, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        self.notifications: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        if version == LEGACY:
            self.request(
                "initialize",
                {
                    "protocolVersion": LEGACY,
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
                envelope=False,
            )
            self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            if "id" in message and ("result" in message or "error" in message):
                with self._arrived:
                    self._answers[message["id"]] = message
                    self._arrived.notify_all()
            else:
                self.notifications.put(message)

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def request(
        self, method: str, params: dict[str, Any] | None = None, *, envelope: bool = True
    ) -> dict[str, Any]:
        """Send a request and wait for its answer (the whole JSON-RPC message)."""
        request_id = next(self._ids)
        params = dict(params or {})
        if envelope and self.version == MODERN:
            params["_meta"] = modern_envelope(self.tasks)
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        deadline = time.monotonic() + 90
        with self._arrived:
            while request_id not in self._answers:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"no answer to {method} (server {self.process.poll()})")
                self._arrived.wait(min(remaining, 0.5))
            return self._answers.pop(request_id)

    def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """tools/call; the result (a CallToolResult, or a task) or fail on a JSON-RPC error."""
        answer = self.request("tools/call", {"name": tool, "arguments": arguments})
        assert "result" in answer, answer
        return answer["result"]

    def get(self, task_id: str) -> dict[str, Any]:
        return self.request("tasks/get", {"taskId": task_id})

    def poll_until(self, task_id: str, *statuses: str, timeout: float = 60.0) -> dict[str, Any]:
        """tasks/get until the task's status is one of `statuses`; its result."""
        seen: list[dict[str, Any]] = []

        def reached() -> dict[str, Any] | None:
            answer = self.get(task_id)
            assert "result" in answer, answer
            seen.append(answer["result"])
            return answer["result"] if answer["result"]["status"] in statuses else None

        return wait_for(reached, timeout, f"task status {statuses} (last: {seen[-1:]})")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stderr.close()

    def __enter__(self) -> RawMcp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def text_of(result: dict[str, Any]) -> str:
    return "\n".join(c["text"] for c in result.get("content", []) if c.get("type") == "text")


def events(log: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in read_events(log) if e["event"] == name]
