"""Time as a seam: the one clock and scheduler the actors read and set timers on.

pykka has no timers, and a `threading.Timer` per flush costs a thread per notebook per write.
Here one scheduler thread serves every timer of the process: a timer only `tell`s its message to
an actor, so timed work still runs in the actor's own thread and no actor state is touched from
the scheduler's.

Code that needs the time takes a `Clock` instead of calling `time.monotonic()`: `RealClock` in
the server, `ManualClock` in tests, where time moves only when the test says so (trio's
`MockClock` is the model): a kernel's deadline, a writer's coalesced flush or its retry back-off
are then tested by jumping time, without sleeping and without a real kernel.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import pykka


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; for durations and deadlines."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch; for what a person reads (markers, events)."""

    def tell_later(self, delay: float, ref: pykka.ActorRef[Any], message: Any) -> Timer:
        """Tell `message` to `ref` once, `delay` seconds from now, unless cancelled first."""

    def tell_every(self, interval: float, ref: pykka.ActorRef[Any], message: Any) -> Timer:
        """Tell `message` to `ref` every `interval` seconds until cancelled or `ref` is dead."""


@dataclass(order=True)
class _Entry:
    due: float
    order: int
    ref: pykka.ActorRef[Any] = field(compare=False)
    message: Any = field(compare=False)
    interval: float | None = field(compare=False, default=None)
    cancelled: bool = field(compare=False, default=False)

    def cancel(self) -> None:
        self.cancelled = True


class _Timers:
    """A heap of timers and what firing one means; shared by the real and the manual clock."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._order = itertools.count()

    def add(
        self, due: float, ref: pykka.ActorRef[Any], message: Any, interval: float | None
    ) -> _Entry:
        entry = _Entry(due, next(self._order), ref, message, interval)
        heapq.heappush(self._heap, entry)
        return entry

    def next_due(self) -> float | None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].due if self._heap else None

    def pop_due(self, now: float) -> list[_Entry]:
        due = []
        while self._heap and self._heap[0].due <= now:
            entry = heapq.heappop(self._heap)
            if not entry.cancelled:
                due.append(entry)
        return due

    def fire(self, entry: _Entry) -> None:
        """Deliver one timer; a periodic one is put back unless its actor is gone."""
        try:
            entry.ref.tell(entry.message)
        except pykka.ActorDeadError:
            return
        if entry.interval is not None and not entry.cancelled:
            entry.due += entry.interval
            entry.order = next(self._order)
            heapq.heappush(self._heap, entry)


class RealClock:
    """The process's clock: `time.monotonic()`, `time.time()`, one scheduler thread."""

    def __init__(self) -> None:
        self._timers = _Timers()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def tell_later(self, delay: float, ref: pykka.ActorRef[Any], message: Any) -> Timer:
        return self._add(delay, ref, message, None)

    def tell_every(self, interval: float, ref: pykka.ActorRef[Any], message: Any) -> Timer:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        return self._add(interval, ref, message, interval)

    def _add(
        self, delay: float, ref: pykka.ActorRef[Any], message: Any, interval: float | None
    ) -> Timer:
        with self._changed:
            entry = self._timers.add(time.monotonic() + max(0.0, delay), ref, message, interval)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nb-clock", daemon=True)
                self._thread.start()
            self._changed.notify()
        return entry

    def _run(self) -> None:
        while True:
            with self._changed:
                due = self._timers.next_due()
                now = time.monotonic()
                if due is None or due > now:
                    self._changed.wait(None if due is None else due - now)
                    continue
                entries = self._timers.pop_due(now)
                # Told under the lock: a periodic entry goes back on the heap as it fires.
                for entry in entries:
                    self._timers.fire(entry)


class ManualClock:
    """A clock that moves only when told: `advance(seconds)` fires what falls due, in order.

    Each step delivers the timers due at that moment with `tell`, then waits until every actor
    told has handled them (a `Barrier` behind them in its mailbox, which SupervisedActor
    answers), so what an actor does at a tick — read the time, set the next timer — happens
    at that tick's time, before time moves on.
    """

    def __init__(self, start: float = 1000.0, wall: float = 1_800_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall - start
        self._timers = _Timers()
        self._lock = threading.RLock()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    def tell_later(self, delay: float, ref: pykka.ActorRef[Any], message: Any) -> Timer:
        with self._lock:
            return self._timers.add(self._now + max(0.0, delay), ref, message, None)

    def tell_every(self, interval: float, ref: pykka.ActorRef[Any], message: Any) -> Timer:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        with self._lock:
            return self._timers.add(self._now + interval, ref, message, interval)

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, firing every timer due on the way, each at its time."""
        if seconds < 0:
            raise ValueError("time does not go back")
        target = self._now + seconds
        while True:
            with self._lock:
                due = self._timers.next_due()
                if due is None or due > target:
                    self._now = target
                    return
                self._now = max(self._now, due)
                told = self._timers.pop_due(self._now)
                for entry in told:
                    self._timers.fire(entry)
            # Not under the lock: what the actors do now may set new timers.
            _wait_until_handled({entry.ref for entry in told})

    def pending(self) -> int:
        """How many timers are set (tests assert that a stopped actor left none behind)."""
        with self._lock:
            return sum(1 for entry in self._timers._heap if not entry.cancelled)


@dataclass(frozen=True)
class Barrier:
    """Told behind other messages; the actor sets `reached` when it gets to it."""

    reached: threading.Event = field(default_factory=threading.Event)


_SETTLE_TIMEOUT_SEC = 10.0


def _wait_until_handled(refs: set[pykka.ActorRef[Any]]) -> None:
    for ref in refs:
        # An ask, not a tell: an actor that fails while the barrier waits in its mailbox drops
        # it, and pykka then fails the ask at once (a tell would leave us waiting it out).
        try:
            ref.ask(Barrier(), timeout=_SETTLE_TIMEOUT_SEC)
        except pykka.ActorDeadError:
            continue
        except pykka.Timeout:
            if ref.is_alive():
                raise TimeoutError(
                    f"{ref} did not handle its timers within {_SETTLE_TIMEOUT_SEC}s"
                ) from None


_default: RealClock | None = None
_default_lock = threading.Lock()


def real_clock() -> RealClock:
    """The process-wide real clock (one scheduler thread for every timer)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RealClock()
        return _default


def cancel(timer: Timer | None) -> None:
    """Cancel `timer` if there is one."""
    if timer is not None:
        timer.cancel()
