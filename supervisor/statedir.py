"""The per-user state dir: what a server records so that another process can find its work.

Layout (folder 0700, files 0600):
  servers/<pid>.json   one per running server: pid, start time, cwd, log path, version
  kernels/<id>.json    one per kernel a server started: pid and start time, notebook,
                       connection file, owner, the cell in flight (KernelRecord reads them)
  kernels/<id>.log     that kernel's own stdout/stderr (never the server's stdout); removed by
                       `nb cleanup` and by the daemon as it exits once no process writes it
  events.log           the event log of the daemon and of `nb run` (unless NB_MCP_LOG_PATH)
  runtime/             kernels' connection files (they hold the key to the kernel's channels)
  kernelspecs/nb-env-<hash>/kernel.json   how to start a Python environment's interpreter
                       as a kernel (nb's own, never in the user's Jupyter folders)
  jobs/<job_id>.json   one per job: which log holds its events, which server ran it
  daemon.json, daemon.lock, daemon.sock   the per-user daemon (`nb serve`), if one runs
Records are written atomically and removed when their owner stops them; a record whose owner
is gone is how `nb status` finds orphans and `nb cleanup` knows what it may stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nb_mcp.supervisor import short_paths
from nb_mcp.supervisor.processes import (
    process_started,
    recorded_start,
    same_process_alive,
    stop_group,
)

__all__ = [
    "KernelRecord",
    "ServerRecord",
    "daemon_record",
    "daemon_socket",
    "ensure",
    "kernel_records",
    "process_started",
    "prune_job_records",
    "read_records",
    "record_job",
    "recorded_start",
    "remove",
    "same_process_alive",
    "this_process",
    "write_record",
]


def ensure(state_dir: Path) -> Path:
    for name in ("", "servers", "kernels", "jobs", "runtime"):
        (state_dir / name).mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state_dir, 0o700)
    os.chmod(state_dir / "runtime", 0o700)
    return state_dir


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Replace the record at `path` whole: a reader sees the old one or the new one, and after
    a power cut never an empty file (fsync before the rename, as the notebook writer does)."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def read_records(folder: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            records.append(json.loads(path.read_text()) | {"record_path": str(path)})
        except (OSError, ValueError):
            continue
    return records


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@dataclass(frozen=True)
class KernelRecord:
    """A kernel nb started, as its record in the state dir tells (read here, and only here)."""

    path: Path
    kernel_id: str
    pid: int | None
    pgid: int | None
    started: float | int | None  # the process's identity beside its pid (see processes.py)
    server_pid: int | None
    server_started: float | int | None
    notebook: str | None
    kernel_name: str | None
    connection_file: str | None
    started_at: float | None
    in_flight: dict[str, Any] | None
    data: dict[str, Any]  # the record as written, for what only one reader needs

    @classmethod
    def parse(cls, data: dict[str, Any]) -> KernelRecord:
        path = Path(data["record_path"])
        return cls(
            path=path,
            kernel_id=str(data.get("kernel_id") or path.stem),
            pid=_integer(data.get("pid")),
            pgid=_integer(data.get("pgid")),
            started=recorded_start(data),
            server_pid=_integer(data.get("server_pid")),
            server_started=recorded_start(data, "server_"),
            notebook=_text(data.get("notebook")),
            kernel_name=_text(data.get("kernel_name")),
            connection_file=_text(data.get("connection_file")),
            started_at=_number(data.get("started_at")),
            in_flight=in_flight if isinstance(in_flight := data.get("in_flight"), dict) else None,
            data=data,
        )

    def alive(self) -> bool:
        """The kernel process runs (and is the one recorded, not a reuse of its pid)."""
        return self.pid is not None and same_process_alive(self.pid, self.started)

    def owner_alive(self) -> bool:
        """The server that started it (or took it over) still runs."""
        return self.server_pid is not None and same_process_alive(
            self.server_pid, self.server_started
        )

    def stop(self, grace: float) -> None:
        """Stop the kernel process (and what its cells spawned), if it still runs."""
        if self.pid is not None:
            stop_group(self.pid, self.pgid, grace=grace, started=self.started)


def kernel_records(state_dir: Path) -> list[KernelRecord]:
    """Every local kernel recorded in the state dir."""
    return [KernelRecord.parse(data) for data in read_records(state_dir / "kernels")]


def this_process() -> dict[str, Any]:
    """How a record names the process writing it as a kernel's owner."""
    return {"server_pid": os.getpid(), "server_start_time": process_started(os.getpid())}


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class ServerRecord:
    pid: int
    start_time: float | None
    started_at: float
    cwd: str
    log_path: str
    version: str
    mode: str

    def path(self, state_dir: Path) -> Path:
        return state_dir / "servers" / f"{self.pid}.json"

    def save(self, state_dir: Path) -> None:
        write_record(self.path(state_dir), asdict(self))


JOB_RECORDS_KEPT_SEC = 7 * 24 * 3600


def record_job(state_dir: Path, job_id: str, log_path: Path, notebook: Path) -> None:
    write_record(
        state_dir / "jobs" / f"{job_id}.json",
        {
            "job_id": job_id,
            "log_path": str(log_path),
            "notebook": str(notebook),
            **this_process(),
            "submitted_at": time.time(),
        },
    )


def prune_job_records(state_dir: Path, now: float | None = None) -> None:
    cutoff = (time.time() if now is None else now) - JOB_RECORDS_KEPT_SEC
    for path in (state_dir / "jobs").glob("*.json"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def daemon_socket(state_dir: Path) -> Path:
    """The daemon's Unix socket: in the state dir, or a short private folder if too deep."""
    path = state_dir / "daemon.sock"
    if len(str(path)) <= short_paths.MAX_SOCKET_PATH:
        return path
    return short_paths.private_folder(state_dir) / "daemon.sock"


def daemon_record(state_dir: Path) -> dict[str, Any] | None:
    """The running daemon's record, or None if there is none (or it is gone)."""
    path = state_dir / "daemon.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not same_process_alive(record["pid"], recorded_start(record)):
        return None
    return record
