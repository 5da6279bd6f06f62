"""`nb watch --job ID`: a job's events as JSON lines, from its first event to its end.

Built for the agent's Monitor tool and for people: it starts from the job's first event even if
the job began before watch did, follows the log through rotation, matches on event fields only
(never on message text), and exits when the job ends:

  0  the job finished ok            3  the server stopped (or died) before the job finished
  1  the job finished with an error 4  no such job in the log
  2  no event log found             5  --path is outside the allowed roots
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from nb_mcp.supervisor import statedir
from nb_mcp.supervisor.config import default_state_dir
from nb_mcp.supervisor.paths import within

OK, JOB_FAILED, NO_LOG, SERVER_STOPPED, NO_SUCH_JOB, OUTSIDE_ROOTS = 0, 1, 2, 3, 4, 5
_POLL_SEC = 0.2
_LIVENESS_EVERY_SEC = 1.0


class LogFollower:
    """Lines of a rotating log: first what is there (rotated files too), then what comes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None
        self._inode: int | None = None
        self._partial = ""

    def backlog(self) -> Iterator[str]:
        rotated = sorted(
            (p for p in self.path.parent.glob(self.path.name + ".*") if p.suffix[1:].isdigit()),
            key=lambda p: -int(p.suffix[1:]),
        )
        for old in rotated:
            try:
                yield from old.read_text(errors="replace").splitlines()
            except OSError:
                continue
        yield from self.new_lines()

    def new_lines(self) -> list[str]:
        lines: list[str] = []
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return lines
        if self._handle is not None and (
            stat.st_ino != self._inode or stat.st_size < self._handle.tell()
        ):
            lines += self._read_complete()  # the rest of the file that was rotated away
            lines += [self._partial] if self._partial else []
            self._partial = ""
            self._handle.close()
            self._handle = None
        if self._handle is None:
            self._handle = open(self.path, errors="replace")  # noqa: SIM115
            self._inode = os.fstat(self._handle.fileno()).st_ino
        return lines + self._read_complete()

    def _read_complete(self) -> list[str]:
        text = self._partial + self._handle.read()
        *complete, self._partial = text.split("\n")
        return [line for line in complete if line]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def candidate_logs(job_id: str, notebook: str | None, explicit: str | None) -> list[Path]:
    """Where the job's events may be, most specific first."""
    state_dir = default_state_dir(os.environ)
    found: list[Path] = []
    if explicit:
        found.append(Path(explicit))
    record = state_dir / "jobs" / f"{job_id}.json"
    if record.exists():
        with contextlib.suppress(OSError, ValueError, KeyError):
            found.append(Path(json.loads(record.read_text())["log_path"]))
    if os.environ.get("NB_MCP_LOG_PATH"):
        found.append(Path(os.environ["NB_MCP_LOG_PATH"]))
    found.append(Path.cwd() / ".nb_mcp.log")
    found.append(state_dir / "events.log")  # the daemon's log
    if notebook:
        folder = Path(notebook).expanduser().resolve().parent
        found += [parent / ".nb_mcp.log" for parent in [folder, *folder.parents]]
    unique: list[Path] = []
    for path in found:
        path = path.absolute()
        if path not in unique:
            unique.append(path)
    return unique


class _Job:
    """What watch knows about the job from its events."""

    def __init__(self, job_id: str, notebook: str | None) -> None:
        self.job_id = job_id
        # Events carry resolved paths (symlinks and ".." gone).
        self.notebook = str(Path(notebook).expanduser().resolve()) if notebook else None
        self.seen = False
        self.server_pid: int | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        if event.get("job_id") != self.job_id:
            return False
        return not (self.notebook and event.get("notebook") not in (None, self.notebook))


def watch(
    job_id: str,
    notebook: str | None = None,
    fmt: str = "json",
    log: str | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    appear_grace: float = 3.0,
    roots: tuple[Path, ...] = (),
) -> int:
    if notebook and roots and not within(Path(notebook), roots):
        err.write(
            f"nb watch: {notebook} is outside the allowed roots "
            f"({', '.join(map(str, roots))}; NB_MCP_ROOTS sets them)\n"
        )
        return OUTSIDE_ROOTS
    candidates = candidate_logs(job_id, notebook, log)
    existing = [path for path in candidates if path.exists()]
    if not existing:
        err.write(
            "nb watch: no event log found (looked at: "
            + ", ".join(str(p) for p in candidates)
            + ")\n"
        )
        return NO_LOG
    job = _Job(job_id, notebook)
    follower, backlog = _find_job(existing, job)
    if follower is None:
        follower = LogFollower(existing[0])
        backlog = list(follower.backlog())
    status = _follow(follower, backlog, job, fmt, out, appear_grace)
    follower.close()
    if status == NO_SUCH_JOB:
        err.write(f"nb watch: no job {job_id} in {follower.path}\n")
    elif status == SERVER_STOPPED:
        err.write(
            f"nb watch: the nb server (pid {job.server_pid}) stopped before job {job_id} "
            "finished; its cells are marked in the notebook\n"
        )
    return status


def _find_job(paths: list[Path], job: _Job) -> tuple[LogFollower | None, list[str]]:
    for path in paths:
        follower = LogFollower(path)
        lines = list(follower.backlog())
        if any((_parse(line) or {}).get("job_id") == job.job_id for line in lines):
            return follower, lines
        follower.close()
    return None, []


def _follow(
    follower: LogFollower, backlog: list[str], job: _Job, fmt: str, out: TextIO, appear_grace: float
) -> int:
    started = time.monotonic()
    last_liveness = 0.0
    lines = backlog
    while True:
        for line in lines:
            event = _parse(line)
            if event is None:
                continue
            ended = _handle(event, job, fmt, out)
            if ended is not None:
                return ended
        now = time.monotonic()
        if not job.seen and now - started > appear_grace:
            return NO_SUCH_JOB
        if job.seen and now - last_liveness > _LIVENESS_EVERY_SEC:
            last_liveness = now
            if job.server_pid is not None and not statedir.same_process_alive(job.server_pid):
                # The server is gone; take what it managed to write, then give up.
                for line in follower.new_lines():
                    event = _parse(line)
                    if event is not None:
                        ended = _handle(event, job, fmt, out)
                        if ended is not None:
                            return ended
                return SERVER_STOPPED
        time.sleep(_POLL_SEC)
        lines = follower.new_lines()


def _handle(event: dict[str, Any], job: _Job, fmt: str, out: TextIO) -> int | None:
    if event.get("event") == "server.stopped" and job.seen and event.get("pid") == job.server_pid:
        return SERVER_STOPPED
    if not job.matches(event):
        return None
    job.seen = True
    job.server_pid = event.get("pid", job.server_pid)
    out.write(_format(event, fmt))
    out.flush()
    if event.get("event") == "job.finished":
        return {"ok": OK, "stopped": SERVER_STOPPED}.get(event.get("status"), JOB_FAILED)
    return None


def _parse(line: str) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _format(event: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(event, ensure_ascii=False) + "\n"
    stamp = event.get("timestamp", "")
    try:
        clock = (
            datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
        )
    except ValueError:
        clock = stamp
    return f"{clock}  {event.get('event', '?'):<16} {event.get('message', '')}\n"
