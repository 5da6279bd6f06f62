"""LogActor: the one writer of the JSON-lines event log, and the in-process fan-out.

`emit()` may be called from any thread. structlog's processors run in the caller's thread, so
the timestamp is when the thing happened; the finished event dict is then told to the LogActor,
which renders it, appends it to the file with one write() per line (a tail sees it at once,
and lines from two processes sharing a log never interleave), rotates by size and hands the
dict to subscribers. If the file cannot be opened or written, events go to stderr after a
one-line warning: never lost silently, never on stdout (stdout is the MCP JSON-RPC stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka
import structlog
from nb_mcp.supervisor.tree import SupervisedActor, Supervision

Event = dict[str, Any]
Subscriber = Callable[[Event], None]
Written = Callable[[], None]  # called in the LogActor's thread once the line is written

_SYNC_TIMEOUT_SEC = 5.0

# Keys in the order a person reading the file wants them; the rest follow alphabetically.
_LEADING_KEYS = (
    "timestamp",
    "level",
    "event",
    "message",
    "pid",
    "job_id",
    "notebook",
    "cell_id",
    "cell_index",
)


class _Sink:
    """Where the structlog pipeline delivers finished events: the current LogActor, or stderr."""

    def __init__(self) -> None:
        self.actor: pykka.ActorRef | None = None

    def deliver(self, event: Event, sync: bool, written: Written | None) -> None:
        actor = self.actor
        if actor is not None:
            try:
                if sync:
                    actor.ask(_Record(event), timeout=_SYNC_TIMEOUT_SEC)
                else:
                    actor.tell(_Record(event, written))
                return
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        _to_stderr(event)
        if written is not None:
            written()

    def __getattr__(self, level: str) -> Callable[..., bool]:
        # structlog calls logger.<level>(**event_dict) when the last processor returns a dict,
        # and returns what we return; an event below the level never gets here (None).
        def method(**event: Any) -> bool:
            sync = bool(event.pop("_sync", False))
            self.deliver(event, sync, event.pop("_written", None))
            return True

        return method


_sink = _Sink()
_pipeline_lock = threading.Lock()
_logger: Any = None


def _add_pid(_: Any, __: str, event: Event) -> Event:
    event["pid"] = os.getpid()
    return event


def _order_keys(_: Any, __: str, event: Event) -> Event:
    ordered = {key: event.pop(key) for key in _LEADING_KEYS if key in event}
    ordered.update(sorted(event.items()))
    return ordered


def configure(level: str = "info") -> None:
    """Build the structlog pipeline; events below `level` are dropped in the caller's thread."""
    global _logger
    with _pipeline_lock:
        _logger = structlog.wrap_logger(
            _sink,
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
                _add_pid,
                _order_keys,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(level),
            cache_logger_on_first_use=False,
        )


def emit(
    event: str, message: str, *, level: str = "info", sync: bool = False, **fields: Any
) -> None:
    """Emit one event of the closed list in ops/events.schema.json.

    `sync=True` returns only once the line is in the file: used where a reader (nb watch) may
    look for the event right after the caller returns.
    """
    _emit(event, message, level, sync, None, fields)


def emit_unhandled(error: BaseException, where: str, message: str = "", **fields: Any) -> None:
    """`error.unhandled`: an exception nb did not expect, with its traceback and where."""
    emit(
        "error.unhandled",
        message or f"unexpected {type(error).__name__} in {where}: {error}",
        level="error",
        error=f"{type(error).__name__}: {error}",
        traceback="".join(traceback.format_exception(error)),
        where=where,
        **fields,
    )


async def emit_written(event: str, message: str, *, level: str = "info", **fields: Any) -> None:
    """`emit(sync=True)` for code on an event loop: waits until the line is in the file
    without blocking the loop, so the other sessions a daemon serves are not held up by a
    slow log disk. Cancelled, it stops waiting; the event is still written."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(done.set)

    if _emit(event, message, level, False, wake, fields):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), _SYNC_TIMEOUT_SEC)


def _emit(
    event: str, message: str, level: str, sync: bool, written: Written | None, fields: Any
) -> bool:
    """Whether the event was delivered (False: below the configured level, dropped)."""
    if _logger is None:
        configure()
    extra = {key: value for key, value in fields.items() if value is not None}
    if written is not None:
        extra["_written"] = written
    return bool(getattr(_logger, level)(event, message=message, _sync=sync, **extra))


def _to_stderr(event: Event) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.write(2, render(event))


def render(event: Event) -> bytes:
    return (json.dumps(event, ensure_ascii=False, default=str) + "\n").encode()


class _Record:
    __slots__ = ("event", "written")

    def __init__(self, event: Event, written: Written | None = None) -> None:
        self.event = event
        self.written = written


class RotatingLineFile:
    """An append-only file of lines, rotated to NAME.1 … NAME.N when it passes max_bytes.

    Several processes may share one file (the daemon and `nb run` both log to the state dir's
    events.log): each line is one O_APPEND write, so lines never interleave, and rotation is
    safe across processes. A writer holds a shared flock on the file it writes to and checks,
    under it, that the file is still the one at `path`; a rotation holds an exclusive flock on
    that file while it renames it. So no line is ever written to a file after it was rotated
    away, where a reader following `path` (nb watch) would never look, and two processes never
    rotate the same file twice.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._backups = backups
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # 0600: output tails can hold anything a cell printed.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        stat = os.fstat(self._fd)
        self._inode = (stat.st_dev, stat.st_ino)

    def write(self, line: bytes) -> None:
        size = self._write_to_current(line)
        if size >= self._max_bytes:
            self._rotate()

    def _write_to_current(self, line: bytes) -> int:
        """Append `line` to the file now at `path`; return that file's size after it."""
        while True:
            if self._fd is None:
                self.open()
            assert self._fd is not None
            _flock(self._fd, fcntl.LOCK_SH)
            try:
                if self._is_current():
                    written = os.write(self._fd, line)
                    if written != len(line):
                        raise OSError(f"short write to {self.path} ({written}/{len(line)} bytes)")
                    return os.fstat(self._fd).st_size
            finally:
                _flock(self._fd, fcntl.LOCK_UN)
            self.close()  # another process rotated it: write to the new file

    def _is_current(self) -> bool:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (stat.st_dev, stat.st_ino) == self._inode

    def _rotate(self) -> None:
        assert self._fd is not None
        _flock(self._fd, fcntl.LOCK_EX)
        try:
            # Another process may have rotated it between our write and this lock.
            if self._is_current() and os.fstat(self._fd).st_size >= self._max_bytes:
                for index in range(self._backups - 1, 0, -1):
                    older = self.path.with_name(f"{self.path.name}.{index}")
                    if older.exists():
                        older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
                self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        finally:
            _flock(self._fd, fcntl.LOCK_UN)
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
            self._inode = None


def _flock(fd: int, operation: int) -> None:
    # A file system without flock (some network mounts) still gets its events, rotated per
    # process as before, rather than no log at all.
    with contextlib.suppress(OSError):
        fcntl.flock(fd, operation)


class LogActor(SupervisedActor):
    """Writes every event to the log file and hands it to in-process subscribers."""

    def __init__(
        self,
        *,
        supervision: Supervision,
        path: Path,
        level: str = "info",
        max_bytes: int = 10_000_000,
        backups: int = 3,
    ) -> None:
        super().__init__(supervision=supervision)
        self._file = RotatingLineFile(path, max_bytes, backups)
        self._level = level
        self._subscribers: dict[int, Subscriber] = {}
        self._next_token = 0
        self._file_broken = False

    def setup(self) -> None:
        configure(self._level)
        try:
            self._file.open()
        except OSError as error:
            self._fall_back(error)
        _sink.actor = self.actor_ref

    def teardown(self, reason: BaseException | None) -> None:
        if _sink.actor is self.actor_ref:
            _sink.actor = None  # from now on, emit() writes to stderr
        self._file.close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Record):
            try:
                self._record(message.event)
            finally:
                if message.written is not None:
                    message.written()
            return None
        return super().on_receive(message)

    def subscribe(self, subscriber: Subscriber) -> int:
        self._next_token += 1
        self._subscribers[self._next_token] = subscriber
        return self._next_token

    def unsubscribe(self, token: int) -> None:
        self._subscribers.pop(token, None)

    @property
    def path(self) -> Path:
        return self._file.path

    def _record(self, event: Event) -> None:
        line = render(event)
        if not self._file_broken:
            try:
                self._file.write(line)
            except OSError as error:
                self._fall_back(error)
        if self._file_broken:
            _to_stderr(event)
        for subscriber in list(self._subscribers.values()):
            try:
                subscriber(event)
            except Exception as error:  # a broken subscriber must not stop the log
                _warn(f"event subscriber failed: {error!r}")

    def _fall_back(self, error: OSError) -> None:
        self._file_broken = True
        self._file.close()
        _warn(f"cannot write the event log {self._file.path} ({error}); events go to stderr")


def _warn(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, f"nb: warning: {text}\n".encode())
