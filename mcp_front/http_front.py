"""`nb serve --http HOST:PORT`: the same tools over MCP streamable HTTP, behind a bearer token.

For agents on another machine. Every request must carry `Authorization: Bearer <token>`, the
token kept in the state dir (`http.token`, mode 0600). Remote agents have no working folder of
ours: relative paths start at the first of NB_MCP_ROOTS, and only those roots may be touched.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from nb_mcp.mcp_front.server import build
from nb_mcp.supervisor import session as sessions
from nb_mcp.supervisor import statedir
from nb_mcp.supervisor.facade import Facade


class HttpRefused(Exception):
    pass


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token(state_dir: Path) -> str:
    """The bearer token, made on first use (0600)."""
    path = statedir.ensure(state_dir) / "http.token"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        return value


class _BearerToken:
    """ASGI: answer 401 to any HTTP request without the token; pass everything else on."""

    def __init__(self, app: Any, expected: str) -> None:
        self._app = app
        self._expected = f"Bearer {expected}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b'Bearer realm="nb"'),
                        ],
                    }
                )
                await send(
                    {
                        "type": "http.response.body",
                        "body": b'{"error": "a bearer token is required (see nb serve)"}',
                    }
                )
                return
        await self._app(scope, receive, send)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon handles signals itself


async def serve_http(
    facade: Facade, host: str, port: int, bearer: str | None, stopping: anyio.Event
) -> None:
    # Remote agents bring no folder or environment of this machine: one session, the daemon's
    # own environment and NB_MCP_ROOTS. A remote client's roots name folders on its own
    # machine; they must not widen ours.
    session = sessions.for_http(facade.config)
    server = build(facade, session, client_roots=False)
    app = server.streamable_http_app(host=host)
    asgi: Any = app if bearer is None else _BearerToken(app, bearer)
    http = _Server(uvicorn.Config(asgi, host=host, port=port, log_level="warning"))
    sessions.opened(session)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(http.serve)
            await stopping.wait()
            http.should_exit = True
    finally:
        sessions.closed(session)
