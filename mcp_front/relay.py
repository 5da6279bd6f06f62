"""`nb mcp`: the thin front. It relays the MCP session between its stdio and the daemon.

It connects to the per-user daemon (starting it, detached, if none runs), says hello with its
version and its client's folder, roots and environment (the daemon makes a session of them:
kernels start with that environment, calls get these settings), and then copies bytes both
ways without reading them. When the client goes away the front goes too; the daemon and its
jobs stay. A per-daemon setting of this client that the running daemon does not have is said
on stderr, in one line, and in the session's first tool reply.

If the daemon runs another version of nb, the front does not garble the session: it answers
the client's first request with an error saying what to do, and exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

from nb_mcp.mcp_front import daemon_link
from nb_mcp.supervisor import statedir
from nb_mcp.supervisor.config import Config
from nb_mcp.supervisor.daemon_locks import starting_lock
from nb_mcp.supervisor.facade import VERSION, version_mismatch

_START_TIMEOUT_SEC = 30.0


class DaemonUnavailable(Exception):
    pass


def run_front(config: Config) -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        connection = connect_or_start(config)
        reply = _hello(connection, config)
    except (DaemonUnavailable, OSError, ValueError) as error:
        return _refuse(stdin, stdout, f"nb mcp could not reach the nb daemon: {error}")
    if reply.get("nb") != "welcome":
        return _refuse(stdin, stdout, reply.get("reason") or f"the daemon said {reply!r}")
    for notice in reply.get("notices") or []:
        print(f"nb mcp: {notice}", file=sys.stderr, flush=True)
    if reply.get("version") != VERSION:
        mismatch = version_mismatch(reply.get("pid"), reply.get("version"), VERSION)
        return _refuse(stdin, stdout, mismatch)
    _relay(connection, stdin, stdout)
    return 0


def connect_or_start(config: Config) -> socket.socket:
    state_dir = statedir.ensure(config.state_dir)
    path = statedir.daemon_socket(state_dir)
    try:
        return daemon_link.connect(path)
    except OSError:
        pass
    with starting_lock(state_dir):
        try:
            return daemon_link.connect(
                path
            )  # another front started it while we waited for the lock
        except OSError:
            pass
        process = _spawn_daemon(state_dir, config)
        deadline = time.monotonic() + _START_TIMEOUT_SEC
        while time.monotonic() < deadline:
            try:
                return daemon_link.connect(path)
            except OSError:
                if process.poll() is not None:
                    raise DaemonUnavailable(
                        f"the daemon exited at start (status {process.returncode}); see "
                        f"{state_dir / 'daemon.stderr'}"
                    ) from None
                time.sleep(0.05)
        raise DaemonUnavailable(f"the daemon did not answer within {_START_TIMEOUT_SEC:.0f}s")


def _spawn_daemon(state_dir: Path, config: Config) -> subprocess.Popen[bytes]:
    # The daemon runs in its state dir: paths this client gave relative to its own folder are
    # made absolute, so the daemon uses the same ones.
    env = dict(os.environ, NB_MCP_STATE_DIR=str(state_dir))
    if env.get("NB_MCP_LOG_PATH", "").strip():
        env["NB_MCP_LOG_PATH"] = str(config.log_path)
    with open(state_dir / "daemon.stderr", "ab") as errors:
        return subprocess.Popen(
            [sys.executable, "-m", "nb_mcp.ops.cli", "serve"],
            cwd=state_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,  # not in the client's process group: its Ctrl-C is not ours
            close_fds=True,
        )


def _hello(connection: socket.socket, config: Config) -> dict[str, Any]:
    hello = {
        "nb": "hello",
        "version": VERSION,
        "cwd": os.getcwd(),
        "roots": [str(root) for root in config.roots],
        # The whole environment, as a shell passes it to a program: the kernels of this
        # session start with it (the daemon's own is another client's, or none).
        "env": dict(os.environ),
    }
    daemon_link.send(connection, hello)
    try:
        return daemon_link.receive(connection)
    except daemon_link.LinkClosed:
        raise DaemonUnavailable("the daemon closed the connection during the hello") from None


def _relay(connection: socket.socket, stdin: BinaryIO, stdout: BinaryIO) -> None:
    def upstream() -> None:
        try:
            while chunk := os.read(stdin.fileno(), 1 << 16):
                connection.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_WR)  # the client is gone: end the session

    threading.Thread(target=upstream, name="stdin-to-daemon", daemon=True).start()
    try:
        while chunk := connection.recv(1 << 16):
            stdout.write(chunk)
            stdout.flush()
    except (OSError, ValueError):
        pass
    finally:
        connection.close()


def refuse_client(reason: str) -> int:
    """Answer the MCP client's first request with `reason` as an error, and exit 1."""
    return _refuse(sys.stdin.buffer, sys.stdout.buffer, reason)


def _refuse(stdin: BinaryIO, stdout: BinaryIO, reason: str) -> int:
    """Answer the client's first request with an error it will show, then exit."""
    print(f"nb mcp: {reason}", file=sys.stderr)
    line = stdin.readline()
    try:
        request = json.loads(line) if line else {}
    except ValueError:
        request = {}
    if isinstance(request, dict) and "id" in request:
        error = {
            "jsonrpc": "2.0",
            "id": request["id"],
            "error": {"code": -32000, "message": reason},
        }
        stdout.write((json.dumps(error) + "\n").encode())
        stdout.flush()
    return 1
