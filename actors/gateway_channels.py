"""A remote kernel's channels over the gateway's websocket, owned by one thread.

The counterpart of channels.ChannelPump for a kernel on a Kernel or Enterprise Gateway: one
thread (running its own asyncio loop) owns the websocket `/api/kernels/{id}/channels`, sends
what `send` queues from any thread, and `tell`s the actor every message that arrives as the
same `Incoming`, `ChannelsFailed` and `Heartbeat` the local pump sends, plus:
- `ChannelsResumed`: the websocket dropped and is back. We reconnect with the same session
  id, so the gateway replays what it buffered meanwhile and the kernel keeps its state; what
  was in flight when the connection broke may still be lost, hence the gap is reported;
- `GatewayLost`: the gateway stayed unreachable for the request timeout (or refused us);
- `RemoteKernelDied`: the gateway says the kernel is gone, dead or restarted (see
  gateway_liveness), or refused the websocket with 404.

There is no heartbeat socket over a websocket. Responsiveness is a `kernel_info_request` on
the control channel every `hb_interval` (the kernel answers it from its control thread even
while a cell runs); no answer within `hb_timeout` is `Heartbeat(False, …)`, judged while a cell
runs only once the kernel has shown it answers control then (a kernel without a control
thread is silent while busy, and that is no freeze). Those pings and the status messages
they cause are ours and never reach the actor. Whether the kernel still exists
is a `GET /api/kernels/{id}` every `probe_interval`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import pykka
from jupyter_client.session import Session
from nb_mcp.actors import gateway_wire as wire
from nb_mcp.actors.channels import ChannelsFailed, Heartbeat, Incoming
from nb_mcp.actors.gateway_client import GatewayClient, GatewayError, ssl_context
from nb_mcp.actors.gateway_liveness import RemoteLiveness
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

_RECENT_PINGS = 16


@dataclass(frozen=True)
class ChannelsResumed:
    gap_sec: float
    # Requests whose sending the drop interrupted: they may never have reached the kernel.
    maybe_lost: tuple[str, ...] = ()


@dataclass(frozen=True)
class GatewayLost:
    url: str
    unreachable_sec: float
    error: str


@dataclass(frozen=True)
class RemoteKernelDied:
    reason: str


class _Refused(Exception):
    """The gateway answered the websocket upgrade with an error status: retrying won't help."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class GatewayChannels:
    """Moves messages between a gateway's kernel websocket and an actor, in its own thread."""

    def __init__(
        self,
        client: GatewayClient,
        kernel_id: str,
        actor: pykka.ActorRef,
        *,
        name: str,
        session_id: str,
        liveness: RemoteLiveness,
        offer_v1: bool = True,
        hb_interval: float = 2.0,
        hb_timeout: float = 15.0,
        probe_interval: float = 3.0,
    ) -> None:
        self._client = client
        self._settings = client.settings
        self._kernel_id = kernel_id
        self._actor = actor
        self._liveness = liveness
        self._offer_v1 = offer_v1
        self._hb_interval = hb_interval
        self._hb_timeout = hb_timeout
        self._probe_interval = probe_interval
        # The key is never used (the gateway signs what it forwards to the kernel); having
        # one keeps jupyter_client from warning that messages are unsigned.
        self.session = Session(key=os.urandom(16), session=session_id)
        self.protocol: str | None = None  # negotiated: wire.V1_PROTOCOL, or None for legacy
        self._outbox: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._loop = asyncio.new_event_loop()
        self._wake = asyncio.Event()
        self._stopping = threading.Event()
        self._main: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name=f"gateway-{name}", daemon=True)
        self._pings: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._beating = True
        self._busy = False  # the kernel's last status for a request not ours
        self._control_while_busy = False  # it has answered a ping while busy: it can
        self._last_answer = time.monotonic()
        self._received = 0  # frames, ever: a connection that brought none recovered nothing

    def start(self) -> None:
        self._thread.start()

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        """Queue a request for the kernel; return its msg_id. Any thread may call this."""
        msg = self.session.msg(msg_type, content)
        self._outbox.append((channel, msg))
        with contextlib.suppress(RuntimeError):  # the loop is closed: the pump has stopped
            self._loop.call_soon_threadsafe(self._wake.set)
        return str(msg["header"]["msg_id"])

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._cancel_main)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _cancel_main(self) -> None:
        if self._main is not None:
            self._main.cancel()

    # ------------------------------------------------------------ the pump thread

    def _run(self) -> None:
        try:
            self._main = self._loop.create_task(self._connected_loop())
            with contextlib.suppress(asyncio.CancelledError):
                self._loop.run_until_complete(self._main)
        except Exception as error:  # report, never die silently
            self._tell(ChannelsFailed("websocket", f"{type(error).__name__}: {error}"))
        finally:
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()

    async def _connected_loop(self) -> None:
        lost_at = time.monotonic()
        first = True
        maybe_lost: tuple[str, ...] = ()
        while not self._stopping.is_set():
            websocket = await self._reconnect(lost_at)
            if websocket is None:
                return
            if not first:
                self._tell(ChannelsResumed(round(time.monotonic() - lost_at, 3), maybe_lost))
            first = False
            received = self._received
            async with websocket:
                maybe_lost = await self._serve(websocket)
            if self._received == received:
                # Accepted, then dropped before a single message (a gateway closing on us):
                # not a recovery, so the outage keeps counting towards GatewayLost.
                await asyncio.sleep(self._settings.retry_interval)
            else:
                lost_at = time.monotonic()

    async def _reconnect(self, lost_at: float) -> ClientConnection | None:
        """Connect, retrying with backoff until the request timeout has passed since lost_at."""
        deadline = lost_at + self._settings.request_timeout
        delay = self._settings.retry_interval
        error = "not connected"
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            try:
                return await self._connect(max(0.1, min(self._settings.connect_timeout, remaining)))
            except _Refused as refused:
                if refused.status == 404:
                    self._died(self._liveness.model(None))
                    return None
                self._tell(GatewayLost(self._settings.url, 0.0, _refusal(refused.status)))
                return None
            except (OSError, TimeoutError, InvalidHandshake, GatewayError) as failure:
                error = f"{type(failure).__name__}: {failure}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                unreachable = round(time.monotonic() - lost_at, 3)
                self._tell(GatewayLost(self._settings.url, unreachable, error))
                return None
            await asyncio.sleep(min(delay, remaining))
            delay = min(max(delay, 0.05) * 2, max(self._settings.retry_interval_max, 0.05))
        return None

    async def _connect(self, timeout: float) -> ClientConnection:
        url = self._client.channels_url(self._kernel_id, self.session.session)
        secure = url.startswith("wss")
        # A ping every third of the request timeout finds a silently dead network in time.
        keepalive = max(1.0, self._settings.request_timeout / 3)
        try:
            websocket = await connect(
                url,
                additional_headers=self._settings.auth_headers(),
                subprotocols=[wire.V1_PROTOCOL] if self._offer_v1 else None,  # type: ignore[list-item]
                ssl=ssl_context(self._settings) if secure else None,
                proxy=None,
                open_timeout=timeout,
                ping_interval=keepalive,
                ping_timeout=keepalive,
                close_timeout=1.0,
                max_size=None,  # outputs are as big as the cell makes them, as locally
                user_agent_header="nb-mcp",
            )
        except InvalidStatus as refused:
            raise _Refused(refused.response.status_code) from refused
        self.protocol = websocket.subprotocol
        return websocket

    async def _serve(self, websocket: ClientConnection) -> tuple[str, ...]:
        """Pump until the connection drops; return the msg_ids whose sending it cut short."""
        maybe_lost: list[str] = []
        self._last_answer = time.monotonic()
        helpers = [
            asyncio.create_task(self._write(websocket, maybe_lost)),
            asyncio.create_task(self._heart()),
            asyncio.create_task(self._probe()),
        ]
        try:
            await self._read(websocket)
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        return tuple(maybe_lost)

    async def _read(self, websocket: ClientConnection) -> None:
        while True:
            try:
                frame = await websocket.recv()
            except ConnectionClosed:
                return
            self._received += 1
            try:
                channel, msg = wire.decode(frame, self.protocol, self.session)
            except wire.BadFrame as error:
                self._tell(ChannelsFailed("websocket", str(error)))
                self._stopping.set()
                return
            if not self._forward(channel, msg):
                self._stopping.set()
                return

    def _forward(self, channel: str, msg: dict[str, Any]) -> bool:
        sender = msg["header"].get("session")
        parent = (msg.get("parent_header") or {}).get("msg_id")
        death: str | None = None
        if sender == self.session.session:
            # Published by the gateway itself: jupyter_server's restart and death notices.
            if msg["msg_type"] == "status":
                death = self._liveness.status(msg["content"].get("execution_state", ""))
        elif sender:
            death = self._liveness.saw_process(sender)
            self._kernel_spoke(channel, msg, parent)
        # Our own pings, their replies and the busy/idle they cause are never the actor's.
        told = parent in self._pings or self._tell(Incoming(channel, msg))
        if death:
            self._tell(RemoteKernelDied(death))
        return told

    async def _write(self, websocket: ClientConnection, maybe_lost: list[str]) -> None:
        while True:
            while self._outbox:
                channel, msg = self._outbox[0]
                frame = wire.encode(msg, channel, self.protocol, self.session)
                try:
                    await websocket.send(frame)
                except ConnectionClosed:
                    # It may or may not have left: never send it twice (a cell would run twice).
                    self._outbox.popleft()
                    if msg["header"]["msg_id"] not in self._pings:
                        maybe_lost.append(msg["header"]["msg_id"])
                    return
                self._outbox.popleft()
            self._wake.clear()
            if not self._outbox:
                await self._wake.wait()

    async def _heart(self) -> None:
        while True:
            self._pings[self.send("control", "kernel_info_request", {})] = None
            while len(self._pings) > _RECENT_PINGS:
                self._pings.popitem(last=False)
            await asyncio.sleep(self._hb_interval)
            silent = time.monotonic() - self._last_answer
            # A kernel that answers control only between requests (not every kernel has
            # ipykernel's control thread) is silent while busy: that is not a freeze.
            judged = not self._busy or self._control_while_busy
            if silent > self._hb_timeout and self._beating and judged:
                self._beating = False
                self._tell(Heartbeat(False, round(silent, 3)))

    def _kernel_spoke(self, channel: str, msg: dict[str, Any], parent: str | None) -> None:
        if msg["msg_type"] == "status" and parent not in self._pings:
            self._busy = msg["content"].get("execution_state") == "busy"
        elif channel == "control" and parent in self._pings and self._busy:
            self._control_while_busy = True
        self._answered()  # any word from the kernel shows it is responsive

    def _answered(self) -> None:
        self._last_answer = time.monotonic()
        if not self._beating:
            self._beating = True
            self._tell(Heartbeat(True, 0.0))

    async def _probe(self) -> None:
        while True:
            await asyncio.sleep(self._probe_interval)
            try:
                model = await asyncio.to_thread(self._client.kernel, self._kernel_id)
            except GatewayError:
                continue  # unreachable: the websocket's own reconnect decides about that
            self._died(self._liveness.model(model))

    def _died(self, death: str | None) -> None:
        if death:
            self._tell(RemoteKernelDied(death))

    def _tell(self, message: Any) -> bool:
        try:
            self._actor.tell(message)
            return True
        except pykka.ActorDeadError:
            self._stopping.set()
            return False


def _refusal(status: int) -> str:
    if status in (401, 403):
        return (
            f"the gateway refused the kernel's websocket with HTTP {status}: "
            "JUPYTER_GATEWAY_AUTH_TOKEN is wrong or missing"
        )
    return f"the gateway refused the kernel's websocket with HTTP {status}"
