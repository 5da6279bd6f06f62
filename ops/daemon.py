"""`nb serve`: the per-user daemon that owns the tree, so long runs outlive MCP sessions.

One daemon per user (per state dir): it holds an exclusive lock for its lifetime, records
itself in `daemon.json`, takes over the kernels a killed daemon left running, and serves fronts
on a Unix socket in the state dir until `nb stop`, a signal, or NB_DAEMON_IDLE_SEC with no front
and nothing running.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from nb_mcp.ops.stop_signals import ignore_stop_signals
from nb_mcp.supervisor import kernel_logs, statedir
from nb_mcp.supervisor.config import Config, daemon_log_path
from nb_mcp.supervisor.daemon_locks import hold_daemon_lock


def serve(config: Config, http: str | None = None, no_token: bool = False) -> int:
    import anyio
    from nb_mcp.mcp_front.socket_server import serve as serve_socket
    from nb_mcp.supervisor.facade import VERSION, Facade

    state_dir = statedir.ensure(config.state_dir)
    try:
        http_front = _http_front(http, no_token, state_dir) if http else None
    except ValueError as error:
        print(f"nb serve: {error}", file=sys.stderr)
        return 2
    lock = hold_daemon_lock(state_dir)
    if lock is None:
        running = statedir.daemon_record(state_dir)
        print(
            f"nb serve: a daemon is already running (pid {running and running['pid']})",
            file=sys.stderr,
        )
        return 1
    # One daemon serves many projects: its event log lives with it, not in one project.
    config = replace(config, log_path=daemon_log_path(os.environ, Path.cwd(), state_dir))
    socket_path = statedir.daemon_socket(state_dir)
    # A daemon serving remote agents stays up until told to stop.
    idle = 0.0 if http_front else config.idle_sec
    facade = Facade(config, mode="daemon", cwd=state_dir)
    facade.start()
    reason = "crashed"
    record = state_dir / "daemon.json"
    try:
        facade.take_over_kernels()
        statedir.write_record(
            record,
            {
                "pid": os.getpid(),
                "start_time": statedir.process_started(os.getpid()),
                "version": VERSION,
                "socket": str(socket_path),
                "started_at": time.time(),
                "log_path": str(config.log_path),
            },
        )
        if http_front:
            host, port, bearer = http_front
            print(
                f"nb serve: MCP over HTTP on http://{host}:{port}/mcp"
                + (
                    f"; bearer token in {state_dir / 'http.token'}"
                    if bearer
                    else " without a token (loopback only)"
                ),
                file=sys.stderr,
                flush=True,
            )
        reason = anyio.run(serve_socket, facade, socket_path, idle, http_front)
    except BaseException as error:
        facade.report_unhandled(error, "nb serve")
        raise
    finally:
        ignore_stop_signals()
        facade.stop(reason)
        # Its kernels are stopped now: their logs, and those of any other kernel no longer
        # running, would otherwise pile up (a kernel still running keeps its log).
        with contextlib.suppress(OSError):
            kernel_logs.remove_stopped_kernel_logs(state_dir)
        statedir.remove(record)
        statedir.remove(socket_path)
        lock.release()
    return 0


def _http_front(spec: str, no_token: bool, state_dir: Path) -> tuple[str, int, str | None]:
    from nb_mcp.mcp_front.http_front import loopback, token

    host, _, port = spec.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--http wants HOST:PORT, not {spec!r}")
    if not os.environ.get("NB_MCP_ROOTS"):
        raise ValueError(
            "--http needs NB_MCP_ROOTS: the folders remote agents may touch (they have no "
            "working folder here)"
        )
    if no_token and not loopback(host):
        raise ValueError(
            f"refusing to serve {host} without a token: anyone who can reach it could run "
            "code as you; drop --no-token (the token is in the state dir's http.token)"
        )
    return host, int(port), None if no_token else token(state_dir)
