"""The states a job and each of its cells go through: enums, so a misspelt state is an error
where it is written rather than a comparison that is never true. They are `StrEnum`s, because
they go out as they are: in event lines (`status`), reply text and JSON.
"""

from __future__ import annotations

from enum import StrEnum


class CellState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"  # past its deadline: interrupted, and the kernel restarted if need be
    DIED = "died"  # its kernel died under it
    SKIPPED = "skipped"  # an earlier cell of its job failed, or the job was stopped
    LOST = "lost"  # deleted from the notebook before its turn
    CANCELLED = "cancelled"

    @property
    def failed(self) -> bool:
        return self in (CellState.ERROR, CellState.TIMEOUT, CellState.DIED)

    @property
    def ran_nothing(self) -> bool:
        """Never ran, nor will: nothing of it to show."""
        return self in (CellState.SKIPPED, CellState.LOST)


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    STOPPED = "stopped"  # the server stopped under it
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING)
