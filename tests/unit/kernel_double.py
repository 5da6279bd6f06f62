"""A scripted kernel process and its channels: the one fake the kernel actors' tests use.

It stands where the OS process (and its zmq or websocket channels) would: it implements the
backend protocol (actors/backend.py KernelBackend) and the pump protocol (actors/channels.py
Channels), and it tells the session the same messages a real pump does (Incoming, Heartbeat,
ChannelsFailed, and a gateway's ChannelsResumed, GatewayLost, RemoteKernelDied). Everything above
it — the TurnQueue, KernelProcess, KernelSession, the jobs, the writer and its file, the
supervisor, the event log — is real, and time is a ManualClock the test moves.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pykka
from jupyter_client.session import Session
from nb_mcp.actors.backend import NO_LIMITS, KernelStartError, Limits, Started
from nb_mcp.actors.channels import Incoming
from nb_mcp.actors.launch import KernelLaunch

_PIDS = itertools.count(40_000)


def message(msg_type: str, content: dict[str, Any], parent: str | None) -> dict[str, Any]:
    return {
        "header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type},
        "parent_header": {"msg_id": parent} if parent else {},
        "metadata": {},
        "content": content,
    }


class ScriptedPump:
    """A kernel's channels: records what the session sends, answers as its kernel scripts."""

    def __init__(self, kernel: ScriptedKernel, actor: pykka.ActorRef[Any]) -> None:
        self.kernel = kernel
        self.actor = actor
        self.session = Session(key=b"")
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.stopped = False

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        self.sent.append((msg_type, msg_id, content))
        if msg_type == "kernel_info_request" and self.kernel.answers_probes:
            self.reply("shell", "kernel_info_reply", {"status": "ok"}, msg_id)
            self.reply("iopub", "status", {"execution_state": "idle"}, msg_id)
        elif msg_type == "execute_request":
            self.kernel.executed(self, msg_id, content["code"])
        return msg_id

    def stop(self, timeout: float = 2.0) -> None:
        self.stopped = True

    def reply(self, channel: str, msg_type: str, content: dict[str, Any], parent: str) -> None:
        self.tell(Incoming(channel, message(msg_type, content, parent)))

    def run_ok(self, msg_id: str, text: str = "", count: int = 1) -> None:
        """The cell of `msg_id` runs to its end: its output, the reply, the idle."""
        self.reply("iopub", "status", {"execution_state": "busy"}, msg_id)
        self.reply("iopub", "execute_input", {"execution_count": count, "code": ""}, msg_id)
        if text:
            self.reply("iopub", "stream", {"name": "stdout", "text": text}, msg_id)
        self.reply("shell", "execute_reply", {"status": "ok", "execution_count": count}, msg_id)
        self.reply("iopub", "status", {"execution_state": "idle"}, msg_id)

    def start_running(self, msg_id: str, text: str = "") -> None:
        """The cell of `msg_id` starts and keeps running."""
        self.reply("iopub", "status", {"execution_state": "busy"}, msg_id)
        self.reply("iopub", "execute_input", {"execution_count": 1, "code": ""}, msg_id)
        if text:
            self.reply("iopub", "stream", {"name": "stdout", "text": text}, msg_id)

    def tell(self, news: Any) -> None:
        """Tell the session what a real pump would (a heartbeat, a failure, a message)."""
        self.actor.tell(news)


class ScriptedKernel:
    """One kernel process: alive until it dies or is stopped; runs cells as the test says."""

    def __init__(self, launch: KernelLaunch) -> None:
        self.launch = launch
        self.pid = next(_PIDS)
        self.alive = False
        self.exit: int | None = None
        self.death: str | None = None
        self.fault: Exception | None = None  # raised by the next is_alive(): a backend's bug
        self.answers_probes = True
        self.start_error: str | None = None
        self.interrupts = 0
        self.interrupt_outcome: Future[None] | None = None
        self.stopped_with: list[float] = []
        self.records: list[dict[str, Any] | None] = []
        self.pumps: list[ScriptedPump] = []
        self.runs: list[tuple[ScriptedPump, str, str]] = []
        self._ran = threading.Condition()
        # What an execute_request does: by default the cell runs to its end at once.
        self.on_execute: Callable[[ScriptedPump, str, str], None] = lambda pump, msg_id, _: (
            pump.run_ok(msg_id)
        )

    def executed(self, pump: ScriptedPump, msg_id: str, code: str) -> None:
        # What it answers is told before a waiting test hears of the request: what the test
        # does next comes after those answers in the session's mailbox.
        self.on_execute(pump, msg_id, code)
        with self._ran:
            self.runs.append((pump, msg_id, code))
            self._ran.notify_all()

    def wait_for_run(self, count: int = 1, timeout: float = 5.0) -> tuple[ScriptedPump, str, str]:
        """The `count`-th execute_request this kernel received, once it has."""
        with self._ran:
            if not self._ran.wait_for(lambda: len(self.runs) >= count, timeout):
                raise AssertionError(f"kernel {self.pid} got {len(self.runs)} of {count} cells")
            return self.runs[count - 1]

    def die(self, exit_code: int | None = -9, reason: str | None = None) -> None:
        self.alive, self.exit, self.death = False, exit_code, reason


class ScriptedBackend:
    """The backend protocol over a ScriptedKernel."""

    def __init__(self, kernel: ScriptedKernel, start_timeout: float = 0.0) -> None:
        self.kernel = kernel
        self.kernel_name = kernel.launch.label
        self.limits: Limits = NO_LIMITS
        self._start_timeout = start_timeout

    @property
    def pid(self) -> int | None:
        return self.kernel.pid

    @property
    def start_timeout(self) -> float:
        return self._start_timeout

    def start(self) -> Started:
        if self.kernel.start_error:
            raise KernelStartError(self.kernel.start_error)
        self.kernel.alive = True
        return Started(self.kernel.pid, {})

    def open_channels(self, actor: pykka.ActorRef[Any], name: str) -> ScriptedPump:
        pump = ScriptedPump(self.kernel, actor)
        self.kernel.pumps.append(pump)
        return pump

    def interrupt(self) -> Future[None] | None:
        self.kernel.interrupts += 1
        return self.kernel.interrupt_outcome

    def is_alive(self) -> bool:
        if self.kernel.fault is not None:
            raise self.kernel.fault
        return self.kernel.alive

    def exit_code(self) -> int | None:
        return self.kernel.exit

    def death_reason(self) -> str | None:
        return self.kernel.death

    def startup_exit(self) -> str:
        return f"the kernel process exited during start-up (exit code {self.kernel.exit})"

    def stop(self, grace: float) -> None:
        self.kernel.alive = False
        self.kernel.stopped_with.append(grace)

    def record_execution(self, in_flight: dict[str, Any] | None) -> None:
        self.kernel.records.append(in_flight)


class ScriptedKernels:
    """The backend factory: every start is a new scripted kernel, kept for the test to drive."""

    def __init__(self) -> None:
        self.started: list[ScriptedKernel] = []
        self.start_timeout = 0.0
        self.prepare: Callable[[ScriptedKernel], None] = lambda kernel: None
        self._changed = threading.Condition()

    def __call__(self, launch: KernelLaunch) -> ScriptedBackend:
        kernel = ScriptedKernel(launch)
        self.prepare(kernel)
        with self._changed:
            self.started.append(kernel)
            self._changed.notify_all()
        return ScriptedBackend(kernel, self.start_timeout)

    def kernel(self, number: int = 1, timeout: float = 5.0) -> ScriptedKernel:
        """The `number`-th kernel started, once it has been."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.started) >= number, timeout):
                raise AssertionError(f"{len(self.started)} of {number} kernels were started")
            return self.started[number - 1]
