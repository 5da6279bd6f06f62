"""Child specifications: everything a supervisor needs to (re)start one child."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nb_mcp.supervisor._supervised import SupervisedActor


class Restart(StrEnum):
    """When a child that exited is started again (OTP restart types)."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class Strategy(StrEnum):
    """Which children a supervisor restarts when one of them exits."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"


@dataclass
class ChildSpec:
    """How to start one child, and what to do when it exits.

    `state` is the restart state: the very same object is handed to every
    incarnation (a counter of incarnations, say). Prefer a sibling that does not
    fail to hold what must outlive a crash: a state object that every
    incarnation mutates has no owner, and nothing releases it when the
    supervisor gives up.
    """

    id: str
    actor_class: type[SupervisedActor]
    kwargs: dict[str, Any] = field(default_factory=dict)
    restart: Restart = Restart.PERMANENT
    state: Any = None
    shutdown_timeout: float = 5.0
    start_timeout: float = 10.0
