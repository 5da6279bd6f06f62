"""Timers that deliver a message to an actor, so timed work runs in the actor's own thread.

pykka has no timers. A timer here only `tell`s; the actor decides what the tick means, so no
actor state is ever touched from the timer's thread.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pykka


class Timer:
    """Tell `message` to `ref` once, after `delay` seconds, unless cancelled first."""

    def __init__(self, delay: float, ref: pykka.ActorRef, message: Any) -> None:
        self._timer = threading.Timer(delay, self._fire, args=(ref, message))
        self._timer.daemon = True
        self._timer.name = f"timer-{type(message).__name__}"
        self._timer.start()

    @staticmethod
    def _fire(ref: pykka.ActorRef, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            ref.tell(message)

    def cancel(self) -> None:
        self._timer.cancel()


class Ticker:
    """Tell `message` to `ref` every `interval` seconds until stopped or the actor is gone."""

    def __init__(self, interval: float, ref: pykka.ActorRef, message: Any, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(interval, ref, message), name=name, daemon=True
        )
        self._thread.start()

    def _run(self, interval: float, ref: pykka.ActorRef, message: Any) -> None:
        while not self._stop.wait(interval):
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                return

    def stop(self) -> None:
        self._stop.set()
