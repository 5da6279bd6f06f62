"""Driving a kernel's channels in tests, as the KernelActor will: an actor that records every
message a pump tells it, and helpers that send a request and wait (with a deadline) for what
answers it."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Protocol

import pykka
from nb_mcp.actors.channels import Incoming

from tests.helpers import wait_for


class Pump(Protocol):
    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str: ...


class _Collector(pykka.ThreadingActor):
    def __init__(self, messages: list[Any]) -> None:
        super().__init__()
        self._messages = messages

    def on_receive(self, message: Any) -> None:
        self._messages.append(message)


class Recorder:
    """A real pykka actor standing in for the KernelActor: it keeps what it is told."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.ref = _Collector.start(self.messages)

    def stop(self) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.ref.stop()

    def of_type(self, kind: type) -> list[Any]:
        return [message for message in list(self.messages) if isinstance(message, kind)]

    def answers(self, msg_id: str, channel: str = "iopub") -> list[dict[str, Any]]:
        """The messages on `channel` whose parent is `msg_id`, in arrival order."""
        return [
            m.msg
            for m in self.of_type(Incoming)
            if m.channel == channel and (m.msg.get("parent_header") or {}).get("msg_id") == msg_id
        ]

    def idle(self, msg_id: str) -> bool:
        return any(
            m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
            for m in self.answers(msg_id)
        )

    def reply(self, msg_id: str) -> dict[str, Any] | None:
        replies = self.answers(msg_id, "shell")
        return replies[0] if replies else None


def execute(pump: Pump, code: str) -> str:
    return pump.send(
        "shell",
        "execute_request",
        {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
    )


def run_cell(pump: Pump, recorder: Recorder, code: str, timeout: float = 30) -> str:
    """Run a cell and wait for its reply and its idle; return its msg_id."""
    msg_id = execute(pump, code)
    wait_for(
        lambda: recorder.reply(msg_id) and recorder.idle(msg_id),
        timeout=timeout,
        what=f"the reply and idle of {code[:40]!r}",
    )
    return msg_id


def wait_ready(pump: Pump, recorder: Recorder, timeout: float = 30) -> None:
    """Until a kernel_info_request is answered on shell and its status on iopub, as the
    KernelActor's probe does: only then is our iopub subscription known to be live (a fresh
    or restarted kernel drops what it publishes before the gateway has subscribed)."""
    probes: list[str] = []
    sent = [0.0]

    def answered() -> bool:
        if any(recorder.reply(msg_id) for msg_id in probes) and any(
            recorder.answers(msg_id) for msg_id in probes
        ):
            return True
        if time.monotonic() - sent[0] > 0.5:  # a probe every half second, as the actor does
            probes.append(pump.send("shell", "kernel_info_request", {}))
            sent[0] = time.monotonic()
        return False

    wait_for(answered, timeout=timeout, what="a kernel_info_request answered on shell and iopub")


def stream_text(messages: list[dict[str, Any]], name: str = "stdout") -> str:
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == name
    )


def output_types(messages: list[dict[str, Any]]) -> list[str]:
    return [m["msg_type"] for m in messages]
