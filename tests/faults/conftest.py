"""Fixtures for fault injection: kernelspecs made at test time, and no process left behind.

Kernelspecs live in a tmp folder handed to the server through `JUPYTER_PATH`, so the faults
(a kernel behind an iopub proxy, a kernel that exits at once) never touch the user's Jupyter.
Every kernel a test's server recorded in its state dir, and every real kernel behind a proxy,
is killed when the test ends, whatever happened to the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nb_mcp.supervisor import statedir

from tests.helpers import McpServer, events_named, notebook, server_env, wait_for

PROXY_KERNEL = Path(__file__).resolve().parent / "support" / "proxy_kernel.py"


def job_id_of(text: str) -> str:
    """The job id in an exec tool's reply."""
    match = re.search(r"j-[0-9a-f]{8}", text)
    assert match, text
    return match.group(0)


def parse_time(event: dict[str, Any]) -> float:
    """An event's `timestamp` (ISO 8601, UTC, `Z`) as seconds since the epoch."""
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def process_state(pid: int) -> str | None:
    """The one-letter state in /proc/<pid>/stat (R, S, T, Z…), None if there is no such pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def gone(pid: int) -> bool:
    """The process no longer exists (reaped, or a zombie nobody waits for: dead either way)."""
    return process_state(pid) in (None, "Z", "X")


def kernel_pid(server: McpServer, path: Path, after: int = 0) -> int:
    """The pid of the `after`-th (0-based) kernel that became ready for this notebook."""

    def ready() -> list[dict[str, Any]]:
        found = [
            e for e in events_named(server.events(), "kernel.ready") if e["notebook"] == str(path)
        ]
        return found if len(found) > after else []

    return int(
        wait_for(ready, timeout=30, what=f"kernel.ready for {path.name}")[after]["kernel_pid"]
    )


def wait_event(server: McpServer, name: str, timeout: float = 15, **fields: Any) -> dict[str, Any]:
    """The first event called `name` whose fields match; fails the test at the deadline."""

    def found() -> dict[str, Any] | None:
        for event in events_named(server.events(), name):
            if all(event.get(key) == value for key, value in fields.items()):
                return event
        return None

    return wait_for(found, timeout=timeout, what=f"a {name} event with {fields}")


def notebook_on(server: McpServer, name: str, kernel: str, *sources: str) -> Path:
    """A notebook whose metadata names the kernelspec it runs on (as Jupyter saves it)."""
    path = notebook(server, name, *sources)
    document = nbformat.read(path, as_version=4)
    document.metadata["kernelspec"] = {
        "name": kernel,
        "display_name": f"fault: {kernel}",
        "language": "python",
    }
    nbformat.write(document, path)
    return path


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    began = time.monotonic()
    result = call()
    return result, time.monotonic() - began


@dataclass
class Kernelspecs:
    """A JUPYTER_PATH folder whose kernelspecs a test's server can start."""

    root: Path
    fault_dir: Path

    def add(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> str:
        folder = self.root / "kernels" / name
        folder.mkdir(parents=True, exist_ok=True)
        spec: dict[str, Any] = {
            "argv": argv,
            "display_name": f"fault: {name}",
            "language": "python",
            "interrupt_mode": "signal",
        }
        if env:
            spec["env"] = env
        (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
        return name

    def proxy(self, name: str, mode: str, how: str = "drop_delimiter") -> str:
        """A real ipykernel behind support/proxy_kernel.py, breaking iopub as told."""
        return self.add(
            name,
            [sys.executable, str(PROXY_KERNEL), "{connection_file}"],
            {
                "NB_FAULT_MODE": mode,
                "NB_FAULT_HOW": how,
                "NB_FAULT_TRIGGER": "CORRUPT_ME",
                "NB_FAULT_DIR": str(self.fault_dir),
            },
        )

    def lines(self, proxy_pid: int, kind: str) -> list[str]:
        """What the proxy with this pid noted: `child`, `subscriptions` or `corrupted`."""
        path = self.fault_dir / f"{proxy_pid}.{kind}"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def kernelspecs(tmp_path: Path) -> Kernelspecs:
    fault_dir = tmp_path / "faults"
    fault_dir.mkdir()
    return Kernelspecs(tmp_path / "jupyter", fault_dir)


@pytest.fixture
def fault_server(tmp_path: Path, workdir: Path, kernelspecs: Kernelspecs) -> Iterator[McpServer]:
    """A fresh `nb mcp` that also finds the test's kernelspecs (JUPYTER_PATH)."""
    kernelspecs.root.mkdir(parents=True, exist_ok=True)
    env = server_env(tmp_path, JUPYTER_PATH=str(kernelspecs.root))
    with McpServer(workdir, env, tmp_path / "server.stderr") as running:
        yield running


def _kill_group_and_pid(pid: int, pgid: int | None) -> None:
    for signum in (signal.SIGCONT, signal.SIGKILL):
        with contextlib.suppress(OSError):
            if pgid:
                os.killpg(pgid, signum)
        with contextlib.suppress(OSError):
            os.kill(pid, signum)


@pytest.fixture
def no_process_left_behind(tmp_path: Path) -> Iterator[None]:
    """After the test (and its server): kill every kernel and proxied kernel still running.

    The kernel fault modules use it through `pytestmark` (usefixtures), so it is set up before
    the server fixture and runs after the server has stopped. Stopped (SIGSTOP) kernels get
    SIGCONT first, so SIGKILL is not left pending.
    """
    yield
    for record_path in tmp_path.rglob("kernels/*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            record = json.loads(record_path.read_text())
            pid = int(record["pid"])
            if statedir.same_process_alive(pid, record.get("start_ticks")):
                _kill_group_and_pid(pid, record.get("pgid"))
    for child in tmp_path.rglob("faults/*.child"):
        with contextlib.suppress(OSError, ValueError):
            for line in child.read_text().split():
                pid = int(line)
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"ipykernel_launcher" in cmdline and not gone(pid):
                    _kill_group_and_pid(pid, pid)
