"""An OTP-style supervisor on pykka: restart strategies, intensity, escalation."""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pykka
from nb_mcp.supervisor._supervised import ChildExited, Stopping, SupervisedActor, Supervision
from nb_mcp.supervisor.spec import ChildSpec, Restart, Strategy

logger = logging.getLogger(__name__)

# Looked up at call time so tests can move the intensity window without waiting.
_now: Callable[[], float] = time.monotonic


def _describe(reason: BaseException | None) -> str:
    if reason is None:
        return "normal exit"
    return f"{type(reason).__name__}: {reason}"


@dataclass(frozen=True)
class StartChild:
    """Start a child without the sender waiting for it (a tell, not the `start_child` ask);
    `failed` is called with the reason if it cannot start."""

    spec: ChildSpec
    failed: Callable[[BaseException], None]


class ChildStartError(Exception):
    """A child could not be started; `__cause__` is what its start raised."""

    def __init__(self, child_id: str, cause: BaseException, *, supervisor: str = "") -> None:
        where = f"supervisor {supervisor!r}: " if supervisor else ""
        super().__init__(f"{where}child {child_id!r} failed to start: {_describe(cause)}")
        self.child_id = child_id
        self.supervisor = supervisor
        self.cause = cause
        # Set here rather than by `raise ... from` so it survives being passed
        # through a pykka future to another thread unchanged.
        self.__cause__ = cause


class SupervisorGaveUp(Exception):
    """More than max_restarts restarts happened within the period."""

    def __init__(
        self,
        supervisor: str,
        child_id: str,
        restarts: int,
        period: float,
        reason: BaseException | None,
    ) -> None:
        super().__init__(
            f"supervisor {supervisor!r} gave up: {restarts} restarts in {period:g} s, "
            f"last after child {child_id!r} exited ({_describe(reason)})"
        )
        self.supervisor = supervisor
        self.child_id = child_id
        self.restarts = restarts
        self.period = period
        self.reason = reason
        self.__cause__ = reason


@dataclass
class _Child:
    spec: ChildSpec
    # None while the child is down and a restart attempt is pending.
    ref: pykka.ActorRef[Any] | None
    restarts: int = 0


@dataclass(frozen=True)
class _RetryRestart:
    """Told to itself after a failed restart, so other messages get in between."""

    child_id: str
    reason: BaseException | None


class Supervisor(SupervisedActor):
    """Starts, watches and restarts children; escalates when it cannot cope."""

    def __init__(
        self,
        *,
        supervision: Supervision | None = None,
        name: str,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        period: float = 5.0,
        children: Sequence[ChildSpec] = (),
        emit: Callable[..., None] | None = None,
        on_give_up: Callable[[SupervisorGaveUp], None] | None = None,
    ) -> None:
        if max_restarts < 0 or period <= 0:
            msg = f"need max_restarts >= 0 and period > 0, got {max_restarts} and {period}"
            raise ValueError(msg)
        if supervision is None:
            supervision = Supervision(
                parent=None, child_id=name, state=None, started=pykka.ThreadingFuture()
            )
        super().__init__(supervision=supervision)
        self.name = name
        self._strategy = Strategy(strategy)
        self._max_restarts = max_restarts
        self._period = period
        self._initial_children = tuple(children)
        self._emit_callback = emit
        self._on_give_up = on_give_up
        # Insertion order is start order: restarts keep a child's position.
        self._children: dict[str, _Child] = {}
        self._restart_times: collections.deque[float] = collections.deque()

    # -- lifecycle ---------------------------------------------------------

    def setup(self) -> None:
        try:
            for spec in self._initial_children:
                self.start_child(spec)
        except Exception:
            self._stop_all_children()
            raise

    def teardown(self, reason: BaseException | None) -> None:
        self._stop_all_children()
        if (
            isinstance(reason, SupervisorGaveUp)
            and self.supervision.parent is None
            and self._on_give_up is not None
        ):
            self._on_give_up(reason)

    # -- API (through proxy or ask) ----------------------------------------

    def start_child(self, spec: ChildSpec) -> pykka.ActorRef[Any]:
        if spec.id in self._children:
            msg = f"supervisor {self.name!r} already has a child {spec.id!r}"
            raise ValueError(msg)
        ref = self._start(spec)
        self._children[spec.id] = _Child(spec, ref)
        return ref

    def terminate_child(self, child_id: str) -> None:
        """Stop a child for good; unknown ids are ignored (it may have just exited)."""
        child = self._children.pop(child_id, None)
        if child is not None:
            self._stop_child(child)

    def which_child(self, child_id: str) -> pykka.ActorRef[Any] | None:
        child = self._children.get(child_id)
        return None if child is None else child.ref

    def which_children(self) -> list[tuple[str, pykka.ActorRef[Any] | None, Restart]]:
        return [(c.spec.id, c.ref, c.spec.restart) for c in self._children.values()]

    def restart_count(self, child_id: str) -> int:
        """Restart attempts so far, including those whose start failed."""
        child = self._children.get(child_id)
        if child is None:
            msg = f"supervisor {self.name!r} has no child {child_id!r}"
            raise KeyError(msg)
        return child.restarts

    # -- messages (tells: a raise here fails this supervisor) ---------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ChildExited):
            self._on_child_exited(message)
        elif isinstance(message, StartChild):
            try:
                self.start_child(message.spec)
            except Exception as error:  # the sender's to handle: not a failure of ours
                message.failed(error)
        elif isinstance(message, _RetryRestart):
            self._on_retry_restart(message)
        else:
            return super().on_receive(message)
        return None

    def _on_child_exited(self, exited: ChildExited) -> None:
        child = self._children.get(exited.child_id)
        if child is None or child.ref is None or child.ref.actor_urn != exited.urn:
            # An incarnation we stopped or replaced ourselves.
            return
        child.ref = None
        if not _wants_restart(child.spec.restart, exited.reason):
            del self._children[exited.child_id]
            return
        self._restart(child, exited.reason)

    def _on_retry_restart(self, retry: _RetryRestart) -> None:
        child = self._children.get(retry.child_id)
        if child is None or child.ref is not None:
            # Terminated meanwhile, or a one_for_all restart already brought it back.
            return
        self._restart(child, retry.reason)

    # -- restarting ----------------------------------------------------------

    def _restart(self, child: _Child, reason: BaseException | None) -> None:
        self._count_restart(child.spec.id, reason)
        if self._strategy is Strategy.ONE_FOR_ONE:
            self._restart_one(child, reason)
        else:
            self._restart_all(child, reason)

    def _count_restart(self, child_id: str, reason: BaseException | None) -> None:
        now = _now()
        self._restart_times.append(now)
        while self._restart_times[0] <= now - self._period:
            self._restart_times.popleft()
        if len(self._restart_times) > self._max_restarts:
            self._give_up(child_id, reason, len(self._restart_times))

    def _restart_one(self, child: _Child, reason: BaseException | None) -> None:
        child.restarts += 1
        try:
            child.ref = self._start(child.spec)
        except ChildStartError as exc:
            self._retry_later(child.spec.id, exc.cause)
            return
        self._emit_restarted(child, _describe(reason))

    def _restart_all(self, trigger: _Child, reason: BaseException | None) -> None:
        self._stop_all_children()
        temporary = [i for i, c in self._children.items() if c.spec.restart is Restart.TEMPORARY]
        for child_id in temporary:
            del self._children[child_id]
        for child in list(self._children.values()):
            child.restarts += 1
            try:
                child.ref = self._start(child.spec)
            except ChildStartError as exc:
                # The retry restarts them all again, so the rest can wait for it.
                self._retry_later(child.spec.id, exc.cause)
                return
            why = _describe(reason)
            if child is not trigger:
                why = f"{trigger.spec.id} exited: {why}"
            self._emit_restarted(child, why)

    def _retry_later(self, child_id: str, reason: BaseException | None) -> None:
        # Through the mailbox rather than a loop: each attempt is counted by
        # _count_restart, which bounds the retries by the restart intensity.
        self.actor_ref.tell(_RetryRestart(child_id, reason))

    def _give_up(self, child_id: str, reason: BaseException | None, restarts: int) -> None:
        exc = SupervisorGaveUp(self.name, child_id, restarts, self._period, reason)
        for child in self._children.values():
            if child.ref is not None:
                with contextlib.suppress(pykka.ActorDeadError):
                    child.ref.tell(Stopping(f"nb gave up on this notebook: {exc}"))
        self._stop_all_children()
        self._emit(
            "supervisor.gave_up",
            message=str(exc),
            supervisor=self.name,
            child=child_id,
            reason=_describe(reason),
            restarts=restarts,
            period_sec=float(self._period),
            level="error",
        )
        # Raised from a tell handler, so pykka fails this actor and on_failure
        # tells our parent: that is the escalation.
        raise exc

    # -- starting and stopping one child -------------------------------------

    def _start(self, spec: ChildSpec) -> pykka.ActorRef[Any]:
        started: pykka.ThreadingFuture[None] = pykka.ThreadingFuture()
        supervision = Supervision(
            parent=self.actor_ref, child_id=spec.id, state=spec.state, started=started
        )
        try:
            ref = spec.actor_class.start(supervision=supervision, **spec.kwargs)
        except Exception as exc:
            raise self._start_failed(spec, exc) from exc
        try:
            started.get(timeout=spec.start_timeout)
        except pykka.Timeout as exc:
            # Its setup is still running: it will stop as soon as that returns.
            ref.stop(block=False)
            timeout = TimeoutError(f"setup() did not return within {spec.start_timeout:g} s")
            timeout.__cause__ = exc
            raise self._start_failed(spec, timeout) from timeout
        except Exception as exc:
            raise self._start_failed(spec, exc) from exc
        return ref

    def _start_failed(self, spec: ChildSpec, cause: BaseException) -> ChildStartError:
        error = ChildStartError(spec.id, cause, supervisor=self.name)
        self._emit(
            "supervisor.child_start_failed",
            message=str(error),
            supervisor=self.name,
            child=spec.id,
            reason=_describe(cause),
            level="error",
        )
        return error

    def _stop_all_children(self) -> None:
        for child in reversed(list(self._children.values())):
            self._stop_child(child)

    def _stop_child(self, child: _Child) -> None:
        # Forget the ref first: the ChildExited this stop causes must be stale.
        ref, child.ref = child.ref, None
        if ref is None:
            return  # down already (a restart was pending): its teardown released what it held
        timeout = child.spec.shutdown_timeout
        try:
            ref.stop(block=True, timeout=timeout)
        except pykka.Timeout:
            self._emit(
                "supervisor.child_stop_timeout",
                message=f"{self.name} skipped {child.spec.id}: not stopped within {timeout:g} s",
                supervisor=self.name,
                child=child.spec.id,
                level="warning",
            )

    # -- events ----------------------------------------------------------------

    def _emit_restarted(self, child: _Child, reason: str) -> None:
        self._emit(
            "supervisor.child_restarted",
            message=f"{self.name} restarted {child.spec.id}: {reason}",
            supervisor=self.name,
            child=child.spec.id,
            reason=reason,
            restarts=child.restarts,
        )

    def _emit(self, event: str, *, message: str, **fields: Any) -> None:
        if self._emit_callback is None:
            return
        try:
            self._emit_callback(event, message=message, **fields)
        except Exception:
            # Losing an event must not cost the tree its supervisor.
            logger.exception("emit(%r) from supervisor %r failed", event, self.name)


def _wants_restart(restart: Restart, reason: BaseException | None) -> bool:
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return reason is not None
    return False


def start_root(
    name: str,
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    max_restarts: int = 3,
    period: float = 5.0,
    children: Sequence[ChildSpec] = (),
    emit: Callable[..., None] | None = None,
    on_give_up: Callable[[SupervisorGaveUp], None] | None = None,
) -> pykka.ActorRef[Supervisor]:
    """Start a supervisor without a parent; return once its children are up.

    Raises ChildStartError if one of `children` failed to start; those already
    started have then been stopped in reverse order.
    """
    started: pykka.ThreadingFuture[None] = pykka.ThreadingFuture()
    ref = Supervisor.start(
        supervision=Supervision(parent=None, child_id=name, state=None, started=started),
        name=name,
        strategy=strategy,
        max_restarts=max_restarts,
        period=period,
        children=children,
        emit=emit,
        on_give_up=on_give_up,
    )
    # No timeout of its own: each child's start is bounded by its start_timeout.
    started.get()
    return ref
