"""`nb status` and `nb cleanup`: what nb runs on this machine, read from the state dir.

These work with no MCP session at hand: every server records itself and every kernel it starts
in the per-user state dir. A kernel whose server is gone is an orphan (the server was killed);
`nb cleanup` stops orphans, and only kernels nb recorded, never the user's other Jupyter or
VS Code kernels.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from nb_mcp.mcp_front import daemon_link
from nb_mcp.supervisor import gateway_records, kernel_logs, statedir
from nb_mcp.supervisor.results import format_duration


@dataclass(frozen=True)
class KernelRecord:
    kernel_id: str
    pid: int | None
    notebook: str
    kernel_name: str
    alive: bool
    owner_pid: int
    owner_alive: bool
    started_at: float
    record_path: str
    connection_file: str
    pgid: int | None

    @property
    def orphaned(self) -> bool:
        return self.alive and not self.owner_alive


@dataclass(frozen=True)
class ServerRow:
    pid: int
    alive: bool
    started_at: float
    cwd: str
    log_path: str
    mode: str
    version: str


@dataclass(frozen=True)
class ActiveJob:
    job_id: str
    notebook: str
    server_pid: int
    log_path: str
    last_event: str
    last_message: str


def servers(state_dir: Path) -> list[ServerRow]:
    rows = []
    for record in statedir.read_records(state_dir / "servers"):
        pid = record.get("pid")
        if not isinstance(pid, int):
            continue  # not a server record nb wrote
        rows.append(
            ServerRow(
                pid,
                statedir.same_process_alive(pid, statedir.recorded_start(record)),
                record.get("started_at") or 0.0,
                record.get("cwd") or "?",
                record.get("log_path") or "?",
                record.get("mode") or "?",
                record.get("version") or "?",
            )
        )
    return rows


def kernels(state_dir: Path) -> list[KernelRecord]:
    return [_row(record) for record in statedir.kernel_records(state_dir)]


def _row(record: statedir.KernelRecord) -> KernelRecord:
    return KernelRecord(
        kernel_id=record.kernel_id,
        pid=record.pid,
        notebook=record.notebook or "(notebook unknown)",
        kernel_name=record.kernel_name or "(kernel name unknown)",
        alive=record.alive(),
        owner_pid=record.server_pid or 0,
        owner_alive=record.owner_alive(),
        started_at=record.started_at or 0.0,
        record_path=str(record.path),
        connection_file=record.connection_file or "",
        pgid=record.pgid,
    )


def active_jobs(state_dir: Path, live_servers: set[int]) -> list[ActiveJob]:
    """Jobs whose server is alive and whose log has no job.finished for them yet."""
    by_log: dict[str, list[dict[str, Any]]] = {}
    for record in statedir.read_records(state_dir / "jobs"):
        complete = all(record.get(key) for key in ("job_id", "log_path", "notebook"))
        if complete and record.get("server_pid") in live_servers:
            by_log.setdefault(record["log_path"], []).append(record)
    active = []
    for log_path, records in by_log.items():
        last = _last_events(Path(log_path), {r["job_id"] for r in records})
        for record in records:
            event = last.get(record["job_id"])
            if event is not None and event.get("event") == "job.finished":
                continue
            active.append(
                ActiveJob(
                    record["job_id"],
                    record["notebook"],
                    record["server_pid"],
                    log_path,
                    (event or {}).get("event", "?"),
                    (event or {}).get("message", ""),
                )
            )
    return active


def _last_events(log: Path, job_ids: set[str]) -> dict[str, dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    try:
        with open(log, errors="replace") as handle:
            for line in handle:
                if '"job_id"' not in line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("job_id") in job_ids:
                    last[event["job_id"]] = event
    except OSError:
        pass
    return last


def ask_daemon(state_dir: Path, request: str, timeout: float = 10.0) -> dict[str, Any] | None:
    """Send the running daemon one control request; None if no daemon answers."""
    record = statedir.daemon_record(state_dir)
    if record is None:
        return None
    try:
        with daemon_link.connect(record["socket"], timeout) as connection:
            daemon_link.send(connection, {"nb": request})
            return daemon_link.receive(connection, last=True)
    except (OSError, ValueError):  # LinkClosed is an OSError
        return None


def stop_daemon(state_dir: Path, out: TextIO, wait: float = 60.0) -> int:
    record = statedir.daemon_record(state_dir)
    if record is None:
        out.write("no nb daemon is running\n")
        return 0
    pid = record["pid"]
    if ask_daemon(state_dir, "stop") is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not statedir.same_process_alive(pid, statedir.recorded_start(record)):
            out.write(f"stopped the nb daemon (pid {pid})\n")
            return 0
        time.sleep(0.05)
    out.write(f"the nb daemon (pid {pid}) did not stop within {wait:.0f}s\n")
    return 1


def print_status(state_dir: Path, out: TextIO, as_json: bool = False) -> int:
    daemon = ask_daemon(state_dir, "status")
    server_rows = servers(state_dir)
    kernel_rows = kernels(state_dir)
    remote_rows = gateway_records.gateway_kernels(state_dir)
    live = {row.pid for row in server_rows if row.alive}
    jobs = active_jobs(state_dir, live)
    jobs += [
        job for job in _daemon_jobs(daemon, state_dir) if job.job_id not in {j.job_id for j in jobs}
    ]
    if as_json:
        json.dump(
            {
                "state_dir": str(state_dir),
                "daemon": daemon,
                "servers": [asdict(r) for r in server_rows],
                "kernels": [asdict(r) | {"orphaned": r.orphaned} for r in kernel_rows],
                "gateway_kernels": [asdict(r) | {"left": r.left} for r in remote_rows],
                "active_jobs": [asdict(j) for j in jobs],
            },
            out,
            indent=1,
        )
        out.write("\n")
        return 0
    now = time.time()
    out.write(f"state dir: {state_dir}\n")
    if daemon is not None:
        out.write(
            f"Daemon: pid {daemon['pid']}  nb {daemon['version']}  up "
            f"{format_duration(daemon['uptime_sec'])}  fronts {daemon['fronts']}  "
            f"kernels {sum(1 for k in daemon['kernels'] if k.get('state') not in (None, 'none'))}"
            "  jobs running "
            f"{sum(1 for j in daemon['jobs'] if j['state'] in ('queued', 'running'))}\n"
        )
        for kernel in daemon["kernels"]:
            out.write(f"  {_daemon_kernel(kernel)}\n")
    else:
        out.write("Daemon: not running\n")
    out.write("Servers:\n" if server_rows else "Servers: none running\n")
    for row in server_rows:
        state = "running" if row.alive else "gone (killed?)"
        out.write(
            f"  pid {row.pid}  {row.mode}  {state}  up {format_duration(now - row.started_at)}"
            f"  {row.cwd}  log {row.log_path}\n"
        )
    out.write("Kernels:\n" if kernel_rows else "Kernels: none\n")
    for k in kernel_rows:
        if k.orphaned:
            state = f"ORPHANED (server {k.owner_pid} is gone; `nb cleanup` stops it)"
        elif k.alive:
            state = f"running (server {k.owner_pid})"
        else:
            state = "dead (stale record; `nb cleanup` removes it)"
        out.write(f"  {_pid(k.pid)}  {k.kernel_name}  {k.notebook}  {state}\n")
    if remote_rows:
        out.write("Kernels on Jupyter gateways:\n")
        for remote in remote_rows:
            out.write(f"  {gateway_records.describe(remote)}\n")
    out.write("Active jobs:\n" if jobs else "Active jobs: none\n")
    for job in jobs:
        out.write(
            f"  {job.job_id}  {job.notebook}  server {job.server_pid}  "
            f"last: {job.last_event} {job.last_message[:60]}\n"
        )
        out.write(f"    nb watch --job {job.job_id} --path {shlex.quote(job.notebook)}\n")
    return 0


def _daemon_jobs(daemon: dict[str, Any] | None, state_dir: Path) -> list[ActiveJob]:
    """The daemon's unfinished jobs: a job gets a record in the state dir only once a call
    hands out its Monitor command, so a job still inside its call's wait has none yet."""
    if daemon is None:
        return []
    record = statedir.daemon_record(state_dir) or {}
    log_path = str(record.get("log_path") or state_dir / "events.log")
    return [
        ActiveJob(job["job_id"], job["notebook"], daemon["pid"], log_path, job["state"], "")
        for job in daemon.get("jobs", [])
        if job.get("state") in ("queued", "running")
    ]


def _pid(pid: int | None) -> str:
    return f"pid {pid}" if pid else "no pid"


def _daemon_kernel(kernel: dict[str, Any]) -> str:
    """One line for a notebook the daemon has open, with or without a kernel."""
    notebook = kernel.get("notebook", "?")
    state = kernel.get("state") or "none"
    if state == "none":
        return f"no kernel yet  {notebook}  (open; a kernel starts at its first execution)"
    name = kernel.get("kernel_name") or "(kernel name unknown)"
    taken = "  (taken over from a daemon that stopped)" if kernel.get("reattached") else ""
    where = _pid(kernel.get("pid"))
    if kernel.get("gateway_url"):
        where = f"{kernel.get('kernel_id')} on {kernel['gateway_url']}"
    return f"kernel {where}  {name}  {state}  {notebook}{taken}"


def cleanup(state_dir: Path, out: TextIO, dry_run: bool = False) -> int:
    """Stop orphaned kernels nb started; drop records of dead kernels and servers, and the
    logs of kernels that no longer run."""
    verb = "would stop" if dry_run else "stopping"
    orphans = records = 0
    for record in statedir.kernel_records(state_dir):
        k = _row(record)
        if k.owner_alive and k.alive:
            continue  # a live server's kernel: not ours to stop
        if k.orphaned:
            out.write(f"{verb} orphaned kernel {_pid(k.pid)} ({k.kernel_name}, {k.notebook})\n")
            orphans += 1
            if not dry_run:
                record.stop(grace=0.0)
        records += 1
        if not dry_run:
            for path in (k.record_path, k.connection_file):
                if path:
                    statedir.remove(Path(path))
    lines, remote, forgotten = gateway_records.clean(state_dir, os.environ, dry_run)
    for line in lines:
        out.write(line + "\n")
    orphans, records = orphans + remote, records + forgotten
    for row in servers(state_dir):
        if not row.alive:
            records += 1
            if not dry_run:
                statedir.remove(state_dir / "servers" / f"{row.pid}.json")
    if dry_run:
        logs = len(kernel_logs.stopped_kernel_logs(state_dir))
    else:
        logs = len(kernel_logs.remove_stopped_kernel_logs(state_dir))
    if not (orphans or records or logs):
        out.write("nothing to clean up: no orphaned kernel, stale record or old kernel log\n")
        return 0
    stop, remove = ("would stop", "would remove") if dry_run else ("stopped", "removed")
    out.write(
        f"{stop} {_count(orphans, 'orphaned kernel')}; {remove} {_count(records, 'stale record')}"
        f" and {_count(logs, 'log')} of kernels that no longer run"
        + (" (dry run: nothing was changed)\n" if dry_run else "\n")
    )
    return 0


def _count(number: int, what: str) -> str:
    return f"{number} {what}{'s' if number != 1 else ''}"
