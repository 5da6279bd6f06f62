"""When the writer writes: the streaming cadence, retries with back-off, and looking at the
file now and then. Timers are set on the injected clock (supervisor/clock.py), so the whole
policy runs on a ManualClock in tests.

The cadence is at most one write per flush interval (0.2 s by default) while output streams.
A write replaces the whole file, and a 50 MB notebook costs tens of milliseconds to write
however little changed: the gap between streaming writes grows with the file's size
(`BYTES_PER_SEC`), so a big notebook is written less often rather than costing the server a
core. The size, not the time the last write took, sets it: the cadence does not swing with
the machine's load. Every edit is still written at once.
"""

from __future__ import annotations

from typing import Any

import pykka
from nb_mcp.actors.writer_data import FlushDue, Look
from nb_mcp.supervisor.clock import Clock, Timer, cancel

RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
# A file this big costs tens of milliseconds to write whatever changed: a finished job's reply
# does not wait for it (the reply carries the outputs the job kept), the write follows at the
# streaming cadence. Below it, the reply waits for the file showing the job's end.
BIG_FILE_BYTES = 1_000_000
BYTES_PER_SEC = 20_000_000  # while streaming, at most this much file written a second
MAX_SPACING = 5.0
# While cells run and after writing outputs, look at the file now and then even with nothing to
# write: a silent cell's notebook may be deleted, an editor holding a copy from before the
# outputs may save it once the job is over.
WATCH_EVERY_SEC = 1.0
WATCH_FOR_SEC = 120.0


class FlushPolicy:
    def __init__(self, clock: Clock, interval: float) -> None:
        self.clock = clock
        self.interval = interval
        self.ref: pykka.ActorRef[Any] | None = None  # the writer, once started
        self.last_write = float("-inf")
        self.last_size = 0  # bytes of the last file written
        self.failing_since: float | None = None
        self.failures = 0
        self._flush: Timer | None = None
        self._watch: Timer | None = None
        self._watch_until = float("-inf")

    # ------------------------------------------------------------ streaming writes

    @property
    def spacing(self) -> float:
        """The least time between two streaming writes."""
        return min(MAX_SPACING, max(self.interval, self.last_size / BYTES_PER_SEC))

    def schedule(self, delay: float | None = None) -> None:
        """Write within `delay` (default: one spacing after the last write), unless a write
        is already due or a failed one waits for its retry."""
        if self._flush is not None or self.failing_since is not None:
            return
        if delay is None:
            delay = max(0.0, self.last_write + self.spacing - self.clock.monotonic())
        self._flush = self._tell_later(delay, FlushDue())

    def due(self) -> None:
        """The flush timer fired."""
        self._flush = None

    def cancel(self) -> None:
        cancel(self._flush)
        self._flush = None

    def wrote(self, size: int) -> float | None:
        """A write of `size` bytes succeeded; how long writes had failed, if they had."""
        now = self.clock.monotonic()
        self.last_write = now
        self.last_size = size
        if self.failing_since is None:
            return None
        failed_for = now - self.failing_since
        self.failing_since, self.failures = None, 0
        return failed_for

    @property
    def big(self) -> bool:
        """The last file written was BIG_FILE_BYTES or more."""
        return self.last_size >= BIG_FILE_BYTES

    def failed(self, final: bool) -> float:
        """A write failed: retry after the next back-off delay (returned), unless `final`."""
        if self.failing_since is None:
            self.failing_since = self.clock.monotonic()
        delay = RETRY_DELAYS[min(self.failures, len(RETRY_DELAYS) - 1)]
        self.failures += 1
        if not final:
            self.cancel()
            self._flush = self._tell_later(delay, FlushDue())
        return delay

    def give_up(self) -> None:
        """Nothing is left to write (the file was deleted): no retry, no failure to report."""
        self.cancel()
        self.failing_since, self.failures = None, 0

    def failing_for(self) -> float | None:
        if self.failing_since is None:
            return None
        return self.clock.monotonic() - self.failing_since

    # ------------------------------------------------------------ looking at the file

    def keep_watching(self) -> None:
        self._watch_until = self.clock.monotonic() + WATCH_FOR_SEC
        if self._watch is None:
            self._watch = self._tell_later(WATCH_EVERY_SEC, Look())

    def looked(self, running: bool) -> None:
        """The watch timer fired; look again in a while if cells run or outputs are recent."""
        self._watch = None
        if running or self.clock.monotonic() < self._watch_until:
            self._watch = self._tell_later(WATCH_EVERY_SEC, Look())

    def stop(self) -> None:
        self.cancel()
        cancel(self._watch)
        self._watch = None

    def _tell_later(self, delay: float, message: Any) -> Timer:
        assert self.ref is not None, "the writer sets its ref when it starts"
        return self.clock.tell_later(delay, self.ref, message)
