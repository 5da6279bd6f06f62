"""The daemon's side of `nb mcp`: one MCP session per front, over a Unix socket.

A front connects, sends one hello line (its version, its client's folder, roots and
environment), gets a welcome, and from then on the connection carries the MCP session's
JSON-RPC lines, exactly as stdio does. Each connection is a session (supervisor/session.py)
with its own MCPServer: that client's folder, roots, settings, and the environment its kernels
start with. All of them share the daemon's tree, so two agents editing one notebook go through
its one WriterActor.

Two other first lines serve the CLI: `{"nb": "status"}` and `{"nb": "stop"}`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.server.stdio import stdio_server
from nb_mcp.mcp_front.server import build
from nb_mcp.supervisor import session as sessions
from nb_mcp.supervisor.events import emit
from nb_mcp.supervisor.facade import VERSION, Facade, version_mismatch

_HELLO_LIMIT = 1 << 23  # the client's whole environment rides in it
_LINE_LIMIT = 1 << 28  # one JSON-RPC message; a notebook cell's source can be large
_IDLE_CHECK_SEC = 1.0


class _Lines:
    """`async for line in ...` over a socket, as the SDK's stdio transport reads stdin."""

    def __init__(self, buffered: BufferedByteReceiveStream) -> None:
        self._buffered = buffered

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        try:
            line = await self._buffered.receive_until(b"\n", _LINE_LIMIT)
        except (
            anyio.IncompleteRead,
            anyio.EndOfStream,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
        ):
            raise StopAsyncIteration from None
        return line.decode("utf-8", "replace") + "\n"


class _Writer:
    """What the SDK's stdio transport writes to: lines, sent whole."""

    def __init__(self, stream: SocketStream) -> None:
        self._stream = stream

    async def write(self, text: str) -> None:
        await self._stream.send(text.encode())

    async def flush(self) -> None:
        return None


@dataclasses.dataclass
class _Daemon:
    facade: Facade
    idle_sec: float
    started: float = dataclasses.field(default_factory=time.monotonic)
    fronts: int = 0
    quiet_since: float = dataclasses.field(default_factory=time.monotonic)
    reason: str = ""
    stopping: anyio.Event = dataclasses.field(default_factory=anyio.Event)

    def stop(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
        self.stopping.set()


async def serve(
    facade: Facade,
    socket_path: Path,
    idle_sec: float,
    http: tuple[str, int, str | None] | None = None,
) -> str:
    """Serve fronts until told to stop, signalled, or idle; return why it stopped.

    `http` (host, port, bearer token) also serves the tools over streamable HTTP.
    """
    daemon = _Daemon(facade, idle_sec)
    if socket_path.exists():
        socket_path.unlink()  # left by a daemon that was killed; we hold the daemon lock
    listener = await anyio.create_unix_listener(socket_path)
    os.chmod(socket_path, 0o600)
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, lambda stream: _session(daemon, stream))
        group.start_soon(_watch_signals, daemon)
        group.start_soon(_watch_idle, daemon)
        if http is not None:
            from nb_mcp.mcp_front.http_front import serve_http

            group.start_soon(serve_http, facade, *http, daemon.stopping)
        await daemon.stopping.wait()
        group.cancel_scope.cancel()
    await listener.aclose()
    return daemon.reason


async def _session(daemon: _Daemon, stream: SocketStream) -> None:
    async with stream:
        buffered = BufferedByteReceiveStream(stream)
        try:
            hello = json.loads(await buffered.receive_until(b"\n", _HELLO_LIMIT))
        except (ValueError, anyio.IncompleteRead, anyio.EndOfStream, anyio.DelimiterNotFound):
            return
        kind = hello.get("nb") if isinstance(hello, dict) else None
        if kind == "status":
            await _send(stream, await _status(daemon))
        elif kind == "stop":
            await _send(stream, {"nb": "stopping", "pid": os.getpid()})
            daemon.stop("nb stop")
        elif kind == "hello":
            await _front(daemon, stream, buffered, hello)


async def _front(
    daemon: _Daemon, stream: SocketStream, buffered: BufferedByteReceiveStream, hello: dict
) -> None:
    version = str(hello.get("version"))
    if version != VERSION:
        reason = version_mismatch(os.getpid(), VERSION, version)
        emit(
            "front.refused",
            f"refused a front: {reason}",
            level="warning",
            reason=reason,
            front_version=version,
        )
        await _send(stream, {"nb": "refused", "version": VERSION, "reason": reason})
        return
    try:
        session = sessions.from_hello(hello, daemon.facade.config, os.getpid())
    except sessions.SessionRefused as refused:
        emit(
            "front.refused",
            f"refused a front: {refused}",
            level="warning",
            reason=str(refused),
            front_version=version,
        )
        await _send(stream, {"nb": "refused", "version": VERSION, "reason": str(refused)})
        return
    cwd = session.cwd
    welcome = {"nb": "welcome", "version": VERSION, "pid": os.getpid(), "session": session.id}
    await _send(stream, welcome | {"notices": list(session.notices)})
    daemon.fronts += 1
    emit(
        "front.connected",
        f"a front connected from {cwd} ({daemon.fronts} now)",
        fronts=daemon.fronts,
        cwd=str(cwd),
        front_version=version,
    )
    sessions.opened(session)
    try:
        server = build(daemon.facade, session)
        lowlevel = server._lowlevel_server  # what MCPServer.run_stdio_async() runs
        async with stdio_server(stdin=_Lines(buffered), stdout=_Writer(stream)) as (read, write):  # type: ignore[arg-type]
            await lowlevel.run(read, write, lowlevel.create_initialization_options())
    finally:
        daemon.fronts -= 1
        daemon.quiet_since = time.monotonic()
        sessions.closed(session)
        emit(
            "front.disconnected",
            f"a front from {cwd} went away ({daemon.fronts} left); its jobs go on",
            fronts=daemon.fronts,
            cwd=str(cwd),
        )


async def _send(stream: SocketStream, message: dict[str, Any]) -> None:
    await stream.send((json.dumps(message, default=str) + "\n").encode())


async def _status(daemon: _Daemon) -> dict[str, Any]:
    status = await anyio.to_thread.run_sync(daemon.facade.status)
    return {
        "nb": "status",
        "pid": os.getpid(),
        "version": VERSION,
        "uptime_sec": round(time.monotonic() - daemon.started, 3),
        "fronts": daemon.fronts,
        "kernels": [
            {"notebook": str(k.notebook), **dataclasses.asdict(k.info)} for k in status.kernels
        ],
        "jobs": [
            {"job_id": j.job_id, "notebook": str(j.notebook), "kind": j.kind, "state": j.state}
            for j in status.jobs
        ],
    }


async def _watch_signals(daemon: _Daemon) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            daemon.stop(signal.Signals(signum).name)
            return


async def _watch_idle(daemon: _Daemon) -> None:
    """Stop after idle_sec with no front connected and nothing running."""
    while True:
        await anyio.sleep(_IDLE_CHECK_SEC)
        if daemon.fronts or daemon.idle_sec <= 0:
            continue
        if await anyio.to_thread.run_sync(daemon.facade.busy):
            daemon.quiet_since = time.monotonic()
            continue
        if time.monotonic() - daemon.quiet_since >= daemon.idle_sec:
            daemon.stop(f"idle for {daemon.idle_sec:g}s with no front and nothing running")
            return
