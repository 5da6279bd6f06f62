"""The per-user state dir: what a server records so that another process can find its work.

Layout (folder 0700, files 0600):
  servers/<pid>.json   one per running server: pid, start time, cwd, log path, version
  kernels/<id>.json    one per kernel a server started: pid, notebook, connection file, owner
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
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def ensure(state_dir: Path) -> Path:
    for name in ("", "servers", "kernels", "jobs", "runtime"):
        (state_dir / name).mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state_dir, 0o700)
    os.chmod(state_dir / "runtime", 0o700)
    return state_dir


def write_record(path: Path, record: dict[str, Any]) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
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


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after it are fixed.
    return stat[stat.rindex(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: tells a pid from its reuse."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def same_process_alive(pid: int, start_ticks: int | None = None) -> bool:
    """True if `pid` runs (a zombie does not) and is the process recorded, not a reuse."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start_ticks is None or int(fields[19]) == start_ticks


@dataclass(frozen=True)
class ServerRecord:
    pid: int
    start_ticks: int | None
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
            "server_pid": os.getpid(),
            "server_start_ticks": process_start_ticks(os.getpid()),
            "submitted_at": time.time(),
        },
    )


def prune_job_records(state_dir: Path, now: float | None = None) -> None:
    cutoff = (time.time() if now is None else now) - JOB_RECORDS_KEPT_SEC
    for path in (state_dir / "jobs").glob("*.json"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


_MAX_SOCKET_PATH = 100


def daemon_socket(state_dir: Path) -> Path:
    """The daemon's Unix socket: in the state dir, or a short private folder if too deep."""
    path = state_dir / "daemon.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"nb-{os.getuid()}" / digest
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder.parent, 0o700)
    os.chmod(folder, 0o700)
    return folder / "daemon.sock"


def daemon_record(state_dir: Path) -> dict[str, Any] | None:
    """The running daemon's record, or None if there is none (or it is gone)."""
    path = state_dir / "daemon.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not same_process_alive(record["pid"], record.get("start_ticks")):
        return None
    return record
