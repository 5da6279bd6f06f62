"""Reading the MCP client's stdin without a blocking thread.

The SDK reads stdin in a worker thread, which a cancel cannot interrupt: on SIGTERM the server
would hang until the client wrote another line. This reader waits for readability on the
event loop instead, so stopping is immediate. Like the SDK, it points fd 0 at /dev/null while
serving, so a kernel or any other child never inherits the client's stream.
"""

from __future__ import annotations

import fcntl
import os
import stat

import anyio


class StdinLines:
    """`async for line in StdinLines()`: the client's JSON-RPC lines, then EOF."""

    def __init__(self) -> None:
        self._fd = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.set_blocking(self._fd, False)
        self._buffer = bytearray()
        self._eof = False

    @staticmethod
    def usable() -> bool:
        """Readiness waits work on pipes, sockets and terminals, not on regular files."""
        try:
            mode = os.fstat(0).st_mode
        except OSError:
            return False
        return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)

    def __aiter__(self) -> StdinLines:
        return self

    async def __anext__(self) -> str:
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[: newline + 1])
                del self._buffer[: newline + 1]
                return line.decode("utf-8", "replace")
            if self._eof:
                if self._buffer:
                    rest = bytes(self._buffer)
                    self._buffer.clear()
                    return rest.decode("utf-8", "replace")
                raise StopAsyncIteration
            await anyio.wait_readable(self._fd)
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                continue
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True
