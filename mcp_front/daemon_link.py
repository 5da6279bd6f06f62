"""The daemon's control socket as its clients use it: connect, send one JSON line, read one.

Two clients: `nb mcp` says hello and then relays raw bytes on the same connection, and the
CLI (`nb status`, `nb stop`) asks one question and hangs up. The hello's reply is read a byte
at a time, so nothing after its newline (the relayed session) is taken from the socket.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


class LinkClosed(ConnectionError):
    """The daemon hung up before its reply line was complete."""


def connect(path: Path | str, timeout: float | None = None) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.settimeout(timeout)
        connection.connect(str(path))
    except OSError:
        connection.close()
        raise
    return connection


def send(connection: socket.socket, message: dict[str, Any]) -> None:
    connection.sendall((json.dumps(message) + "\n").encode())


def receive(connection: socket.socket, *, last: bool = False) -> dict[str, Any]:
    """The next line, parsed; LinkClosed if the daemon hangs up first, ValueError if it is not
    a JSON object. `last`: nothing follows on this connection, so read in large pieces."""
    size = 1 << 16 if last else 1
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = connection.recv(size)
        if not chunk:
            raise LinkClosed("the daemon closed the connection before answering")
        data += chunk
    reply = json.loads(data)
    if not isinstance(reply, dict):
        raise ValueError(f"the daemon answered {reply!r}")
    return reply
