"""The clock seam: timers that tell actors, on real time and on a clock a test moves."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest
from nb_mcp.supervisor.clock import Barrier, ManualClock, RealClock


class Recorder(pykka.ThreadingActor):
    def __init__(self, clock: ManualClock | RealClock | None = None) -> None:
        super().__init__()
        self.clock = clock
        self.seen: list[tuple[Any, float | None]] = []
        self.arrived = threading.Event()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Barrier):
            message.reached.set()
            return
        self.seen.append((message, self.clock.monotonic() if self.clock else None))
        self.arrived.set()

    def messages(self) -> list[tuple[Any, float | None]]:
        return list(self.seen)


@pytest.fixture
def actors():
    started: list[pykka.ActorRef] = []
    yield started
    for ref in started:
        ref.stop()


def test_a_manual_clock_fires_nothing_until_time_is_advanced_past_the_delay(actors):
    clock = ManualClock(start=10.0)
    ref = Recorder.start(clock)
    actors.append(ref)
    clock.tell_later(5.0, ref, "flush")
    clock.advance(4.5)
    assert ref.proxy().messages().get(timeout=5) == []
    clock.advance(0.5)
    assert ref.proxy().messages().get(timeout=5) == [("flush", 15.0)]
    assert clock.pending() == 0


def test_advancing_past_several_timers_delivers_each_at_its_own_time_in_order(actors):
    clock = ManualClock(start=0.0)
    ref = Recorder.start(clock)
    actors.append(ref)
    clock.tell_later(3.0, ref, "c")
    clock.tell_later(1.0, ref, "a")
    clock.tell_later(2.0, ref, "b")
    clock.advance(10.0)
    assert ref.proxy().messages().get(timeout=5) == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert clock.monotonic() == 10.0


def test_a_periodic_timer_ticks_once_per_interval_until_cancelled(actors):
    clock = ManualClock(start=0.0)
    ref = Recorder.start(clock)
    actors.append(ref)
    ticker = clock.tell_every(0.5, ref, "tick")
    clock.advance(2.0)
    ticker.cancel()
    clock.advance(2.0)
    times = [at for _, at in ref.proxy().messages().get(timeout=5)]
    assert times == [0.5, 1.0, 1.5, 2.0]
    assert clock.pending() == 0


def test_a_cancelled_timer_never_fires(actors):
    clock = ManualClock()
    ref = Recorder.start(clock)
    actors.append(ref)
    clock.tell_later(1.0, ref, "never").cancel()
    clock.advance(5.0)
    assert ref.proxy().messages().get(timeout=5) == []


def test_a_periodic_timer_of_a_stopped_actor_is_dropped_not_kept_forever():
    clock = ManualClock()
    ref = Recorder.start(clock)
    clock.tell_every(1.0, ref, "tick")
    ref.stop()
    clock.advance(3.0)
    assert clock.pending() == 0


def test_what_an_actor_does_at_a_tick_happens_at_that_ticks_time(actors):
    class Backoff(Recorder):
        """Retries at 0.5, 1, 2 s after each failure, as the writer's back-off does."""

        def on_receive(self, message: Any) -> Any:
            super().on_receive(message)
            if message == "retry" and len(self.seen) < 4:
                delay = (0.5, 1.0, 2.0)[len(self.seen) - 1]
                self.clock.tell_later(delay, self.actor_ref, "retry")

    clock = ManualClock(start=0.0)
    ref = Backoff.start(clock)
    actors.append(ref)
    clock.tell_later(0.0, ref, "retry")
    clock.advance(100.0)
    times = [at for _, at in ref.proxy().messages().get(timeout=5)]
    assert times == [0.0, 0.5, 1.5, 3.5]


def test_the_wall_clock_moves_with_the_monotonic_one():
    clock = ManualClock(start=5.0, wall=1_000.0)
    clock.advance(2.5)
    assert (clock.monotonic(), clock.time()) == (7.5, 1_002.5)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_the_real_clock_tells_the_actor_once_the_delay_has_passed(actors):
    clock = RealClock()
    recorder = Recorder(clock)
    ref = recorder.start(clock)
    actors.append(ref)
    set_at = clock.monotonic()
    clock.tell_later(0.05, ref, "due")
    proxy = ref.proxy()
    arrived = proxy.arrived.get(timeout=5)
    assert arrived.wait(timeout=5), "the timer never fired"
    [(message, at)] = proxy.messages().get(timeout=5)
    assert message == "due" and at is not None and at - set_at >= 0.05


def test_the_real_clock_serves_many_timers_with_one_thread(actors):
    clock = RealClock()
    ref = Recorder.start(clock)
    actors.append(ref)
    before = threading.active_count()
    timers = [clock.tell_later(60.0, ref, n) for n in range(50)]
    assert threading.active_count() <= before + 1
    for timer in timers:
        timer.cancel()
