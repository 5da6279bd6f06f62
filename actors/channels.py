"""A kernel's channels, owned by one reader thread: what a pump is, and the local one.

zmq sockets are not thread-safe, so one thread (the pump) owns the shell, iopub, control and
heartbeat sockets: it sends what the KernelSession queues, and `tell`s the session every
message that arrives. The session never blocks on a socket, so interrupt, status and stop are
served while a cell streams.

A message that cannot be read (a multipart message without its `<IDS|MSG>` delimiter, a bad
signature, broken JSON) is reported as a channel failure and the pump stops: the KernelSession
fails and its restart builds a new pump with fresh sockets on the same kernel.

`Channels` is all the session knows of a pump: the gateway backend's websocket pump
(gateway_channels.py) has the same three members and tells the same messages, plus its own.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import pykka
import zmq
from jupyter_client.client import KernelClient
from jupyter_client.session import Session
from nb_mcp.supervisor.clock import Clock, real_clock

_POLL_MS = 100


@dataclass(frozen=True)
class Incoming:
    channel: str  # "iopub", "shell" or "control"
    msg: dict[str, Any]


@dataclass(frozen=True)
class ChannelsFailed:
    channel: str
    error: str


@dataclass(frozen=True)
class Heartbeat:
    beating: bool
    silent_sec: float


class Channels(Protocol):
    """A started pump between a kernel and the actor it tells what arrives."""

    session: Session  # whose id and key sign what is sent

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        """Queue a request; return its msg_id at once. Any thread may call it."""
        ...

    def stop(self, timeout: float = 2.0) -> None: ...


class ChannelPump:
    """Moves messages between a local kernel's sockets and an actor, in its own thread."""

    def __init__(
        self,
        connection_info: dict[str, Any],
        actor: pykka.ActorRef,
        *,
        name: str,
        hb_interval: float = 1.0,
        hb_timeout: float = 3.0,
        clock: Clock | None = None,
    ) -> None:
        # One process-wide zmq context: each context of its own costs two I/O threads.
        self._client = KernelClient(context=zmq.Context.instance())
        self._client.load_connection_info(connection_info)
        self.session = self._client.session
        self._actor = actor
        self._outbox: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._stopping = threading.Event()
        self._hb_interval = hb_interval
        self._hb_timeout = hb_timeout
        self._clock = clock or real_clock()
        self._thread = threading.Thread(target=self._run, name=f"pump-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        """Queue a request for the kernel; return its msg_id. Any thread may call this."""
        msg = self.session.msg(msg_type, content)
        self._outbox.put((channel, msg))
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")
        return str(msg["header"]["msg_id"])

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # ------------------------------------------------------------ the pump thread

    def _run(self) -> None:
        sockets: dict[str, zmq.Socket[Any]] = {}
        try:
            identity = self.session.bsession
            sockets = {
                "shell": self._client.connect_shell(identity=identity),
                "iopub": self._connect_iopub(),
                "control": self._client.connect_control(identity=identity),
            }
            self._loop(sockets)
        except Exception as error:  # report, never die silently
            self._tell(ChannelsFailed("pump", f"{type(error).__name__}: {error}"))
        finally:
            for socket in sockets.values():
                socket.close(linger=0)
            for fd in (self._wake_read, self._wake_write):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _connect_iopub(self) -> zmq.Socket[Any]:
        # PUB/SUB drops messages silently once a queue holds its high-water mark (1000 by
        # default): under heavy output that loses output, even the idle that ends a cell. Our
        # side never drops; the kernel's side may, which the KernelSession survives.
        socket = self._client.context.socket(zmq.SUB)
        socket.setsockopt(zmq.RCVHWM, 0)
        socket.linger = 0
        info = self._client.get_connection_info()
        if info["transport"] == "tcp":
            socket.connect(f"tcp://{info['ip']}:{info['iopub_port']}")
        else:
            socket.connect(f"{info['transport']}://{info['ip']}-{info['iopub_port']}")
        socket.setsockopt(zmq.SUBSCRIBE, b"")
        return socket

    def _loop(self, sockets: dict[str, zmq.Socket[Any]]) -> None:
        poller = zmq.Poller()
        for socket in sockets.values():
            poller.register(socket, zmq.POLLIN)
        poller.register(self._wake_read, zmq.POLLIN)
        by_socket = {socket: name for name, socket in sockets.items()}
        heart = _Heart(self._client, poller, self._hb_interval, self._hb_timeout, self._clock)
        try:
            while not self._stopping.is_set():
                ready = dict(poller.poll(_POLL_MS))
                if self._wake_read in ready:
                    self._send_queued(sockets)
                for socket, name in by_socket.items():
                    if socket in ready and not self._receive(name, socket):
                        return
                beat = heart.check(ready)
                if beat is not None:
                    self._tell(beat)
        finally:
            heart.close()

    def _send_queued(self, sockets: dict[str, zmq.Socket[Any]]) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wake_read, 4096):
                pass
        while True:
            try:
                channel, msg = self._outbox.get_nowait()
            except queue.Empty:
                return
            self.session.send(sockets[channel], msg)

    def _receive(self, channel: str, socket: zmq.Socket[Any]) -> bool:
        """Read every waiting message on one socket; False if the channel broke."""
        while True:
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return True
            try:
                _, parts = self.session.feed_identities(frames, copy=False)
                msg = self.session.deserialize(parts, content=True, copy=False)
            except Exception as error:
                self._tell(ChannelsFailed(channel, f"{type(error).__name__}: {error}"))
                return False
            if not self._tell(Incoming(channel, msg)):
                return False

    def _tell(self, message: Any) -> bool:
        try:
            self._actor.tell(message)
            return True
        except pykka.ActorDeadError:
            self._stopping.set()
            return False


class _Heart:
    """The heartbeat: a ping every interval; silence past the timeout means unresponsive."""

    def __init__(
        self,
        client: KernelClient,
        poller: zmq.Poller,
        interval: float,
        timeout: float,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self._client = client
        self._poller = poller
        self._interval = interval
        self._timeout = timeout
        self._socket: zmq.Socket[Any] | None = None
        self._sent_at: float | None = None
        self._last_reply = clock.monotonic()
        self._beating = True
        self._connect()

    def _connect(self) -> None:
        self._socket = self._client.connect_hb()
        self._poller.register(self._socket, zmq.POLLIN)

    def check(self, ready: dict[Any, int]) -> Heartbeat | None:
        now = self._clock.monotonic()
        assert self._socket is not None
        if self._socket in ready:
            with contextlib.suppress(zmq.Again):
                self._socket.recv(zmq.NOBLOCK)
            self._sent_at = None
            self._last_reply = now
            if not self._beating:
                self._beating = True
                return Heartbeat(True, 0.0)
        if self._sent_at is None and now - self._last_reply >= self._interval:
            self._socket.send(b"ping")
            self._sent_at = now
        elif self._sent_at is not None and now - self._sent_at > self._timeout:
            # A REQ socket that lost its reply is stuck: start over with a new one.
            self._poller.unregister(self._socket)
            self._socket.close(linger=0)
            self._connect()
            self._sent_at = None
            if self._beating:
                self._beating = False
                return Heartbeat(False, now - self._last_reply)
        return None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
