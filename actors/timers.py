"""A timer that delivers a message to an actor, so timed work runs in the actor's own thread.

Only the WriterActor still uses it; supervisor/clock.py (one scheduler thread for every timer,
and a clock tests can move) replaces it.

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
