"""The base class of every supervised actor, and what a child tells its parent."""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka
from nb_mcp.supervisor.clock import Barrier

if TYPE_CHECKING:
    from types import TracebackType

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Supervision:
    """What a child knows about its place in the tree."""

    parent: pykka.ActorRef[Any] | None
    child_id: str
    state: Any
    # Resolved by the child itself, because pykka gives a starter no other way
    # to learn that on_start finished or failed.
    started: pykka.ThreadingFuture[None]


@dataclass(frozen=True)
class ChildExited:
    """Told by a child to its parent when it stops (reason None) or fails."""

    child_id: str
    urn: str
    reason: BaseException | None


@dataclass(frozen=True)
class Stopping:
    """Told by a supervisor to a child right before it stops it, with why."""

    reason: str


class SupervisedActor(pykka.ThreadingActor):
    """A pykka actor that reports its start and its exit to its supervisor.

    Subclasses implement `setup()` and `teardown()`; pykka's `on_start`,
    `on_stop` and `on_failure` belong to this class.
    """

    def __init__(self, *, supervision: Supervision, **kwargs: Any) -> None:
        # pykka's Actor swallows any argument; a misspelt ChildSpec.kwargs key
        # should fail the start instead of being silently ignored.
        if kwargs:
            names = ", ".join(sorted(kwargs))
            msg = f"{type(self).__name__} got unexpected keyword arguments: {names}"
            raise TypeError(msg)
        super().__init__()
        self.supervision = supervision
        # Why the supervisor is about to stop us, when it is not a plain shutdown.
        self.stopping_reason: str | None = None

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Stopping):
            self.stopping_reason = message.reason
            return None
        if isinstance(message, Barrier):
            message.reached.set()  # a ManualClock waits for this before moving time on
            return None
        return super().on_receive(message)

    @property
    def restart_state(self) -> Any:
        """The object shared by every incarnation of this child."""
        return self.supervision.state

    def setup(self) -> None:
        """Hook: acquire resources. Runs in the actor thread before any message.

        If it raises, the start fails and `teardown()` is not called (as in
        OTP), so release whatever was acquired before raising.
        """

    def teardown(self, reason: BaseException | None) -> None:
        """Hook: release resources on stop (reason None) or failure."""

    def on_start(self) -> None:
        try:
            self.setup()
        except BaseException:
            exc_info = sys.exc_info()
            # pykka marks the actor dead only after this method returns; doing
            # it first means the starter never sees a failed child as alive.
            self.actor_stopped.set()
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.supervision.started.set_exception(exc_info)
            raise
        self.supervision.started.set(None)

    def on_stop(self) -> None:
        self._exit(None)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._exit(exception_value)

    def _exit(self, reason: BaseException | None) -> None:
        try:
            self.teardown(reason)
        except Exception as exc:
            logger.exception("teardown of %s failed", self)
            # As in OTP: a stop that could not clean up is not a normal exit.
            if reason is None:
                reason = exc
        # Told only after teardown, so a restarted incarnation never races its
        # predecessor for the resources it held.
        self._notify_parent(reason)

    def _notify_parent(self, reason: BaseException | None) -> None:
        parent = self.supervision.parent
        if parent is None:
            return
        # A dead parent is stopping us as part of its own exit: nobody to tell.
        with contextlib.suppress(pykka.ActorDeadError):
            parent.tell(ChildExited(self.supervision.child_id, self.actor_urn, reason))
