"""The supervision tree, with real pykka actors that really crash."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import nb_mcp.supervisor._supervisor as supervisor_module
import pykka
import pytest
from nb_mcp.supervisor.tree import (
    ChildExited,
    ChildSpec,
    ChildStartError,
    Restart,
    StartChild,
    Strategy,
    SupervisedActor,
    Supervision,
    Supervisor,
    SupervisorGaveUp,
    start_root,
)

WAIT = 5.0

# The event schema other code validates against: these keyword fields and no others.
EVENT_FIELDS: dict[str, set[str]] = {
    "supervisor.child_restarted": {"message", "supervisor", "child", "reason", "restarts"},
    "supervisor.gave_up": {
        "message",
        "supervisor",
        "child",
        "reason",
        "restarts",
        "period_sec",
        "level",
    },
    "supervisor.child_start_failed": {"message", "supervisor", "child", "reason", "level"},
    "supervisor.child_stop_timeout": {"message", "supervisor", "child", "level"},
}


class Crash(Exception):
    pass


class SetupRefused(Exception):
    pass


class Journal:
    """What the actors did and what was emitted, in order; tests wait on it."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.entries: list[tuple[Any, ...]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.schema_violations: list[str] = []

    def record(self, *entry: Any) -> None:
        with self._changed:
            self.entries.append(entry)
            self._changed.notify_all()

    def emit(self, event: str, **fields: Any) -> None:
        expected = EVENT_FIELDS.get(event)
        if expected is None or set(fields) != expected or not isinstance(fields["message"], str):
            self.schema_violations.append(f"{event}: {sorted(fields)}")
        with self._changed:
            self.events.append((event, fields))
            self.entries.append(("event", event, fields.get("child")))
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        with self._changed:
            arrived = self._changed.wait_for(predicate, timeout=WAIT)
        assert arrived, f"timed out waiting for {what}; journal: {self.entries}"

    def wait_for_entry(self, *entry: Any) -> None:
        self.wait_for(lambda: entry in self.entries, f"{entry}")

    def wait_for_event(self, event: str, child: str, count: int = 1) -> None:
        self.wait_for(
            lambda: len(self.events_named(event, child)) >= count,
            f"{count} x {event} for {child}",
        )

    def of_kind(self, kind: str) -> list[tuple[Any, ...]]:
        with self._changed:
            return [e[1:] for e in self.entries if e[0] == kind]

    def lifecycle(self) -> list[tuple[Any, ...]]:
        """Starts and stops only, as (kind, child, incarnation)."""
        with self._changed:
            return [e[:3] for e in self.entries if e[0] in ("started", "stopped")]

    def events_named(self, event: str, child: str | None = None) -> list[dict[str, Any]]:
        with self._changed:
            return [f for name, f in self.events if name == event and child in (None, f["child"])]


@dataclass
class Incarnations:
    """Restart state: a counter every incarnation of a child increments."""

    count: int = 0


class Worker(SupervisedActor):
    def __init__(
        self,
        *,
        supervision: Supervision,
        journal: Journal,
        fail_setup: Callable[[int], bool] = lambda incarnation: False,
        hold_setup: threading.Event | None = None,
        hold_teardown: threading.Event | None = None,
    ) -> None:
        super().__init__(supervision=supervision)
        self.journal = journal
        self.fail_setup = fail_setup
        self.hold_setup = hold_setup
        self.hold_teardown = hold_teardown
        self.incarnation = 1

    @property
    def child_id(self) -> str:
        return self.supervision.child_id

    def setup(self) -> None:
        if isinstance(self.restart_state, Incarnations):
            self.restart_state.count += 1
            self.incarnation = self.restart_state.count
        if self.hold_setup is not None:
            assert self.hold_setup.wait(WAIT)
        if self.fail_setup(self.incarnation):
            self.journal.record("setup_failed", self.child_id, self.incarnation)
            raise SetupRefused(f"{self.child_id} refuses to start")
        self.journal.record("started", self.child_id, self.incarnation)

    def teardown(self, reason: BaseException | None) -> None:
        if self.hold_teardown is not None:
            assert self.hold_teardown.wait(WAIT)
        self.journal.record("stopped", self.child_id, self.incarnation, reason)

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise Crash(f"{self.child_id} crashed")
        if message == "exit":
            self.stop()
            return None
        return super().on_receive(message)

    def ping(self) -> str:
        return "pong"

    def fail(self) -> None:
        raise Crash(f"{self.child_id} failed an ask")


def worker(
    child_id: str,
    journal: Journal,
    *,
    restart: Restart = Restart.PERMANENT,
    **kwargs: Any,
) -> ChildSpec:
    return ChildSpec(
        id=child_id,
        actor_class=Worker,
        kwargs={"journal": journal, **kwargs},
        restart=restart,
        state=Incarnations(),
    )


def child(sup: pykka.ActorRef[Any], child_id: str) -> pykka.ActorRef[Any]:
    ref = sup.proxy().which_child(child_id).get(timeout=WAIT)
    assert ref is not None, f"{child_id} is not running"
    return ref


def child_ids(sup: pykka.ActorRef[Any]) -> list[str]:
    return [cid for cid, _, _ in sup.proxy().which_children().get(timeout=WAIT)]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(0.01)


@pytest.fixture(autouse=True)
def no_actor_left_behind() -> Iterator[None]:
    yield
    # A supervisor may restart a child that stop_all stopped before it, so sweep
    # until nothing is registered any more.
    wait_until(
        lambda: not pykka.ActorRegistry.stop_all(block=True, timeout=WAIT),
        "every actor to stop",
    )


@pytest.fixture
def journal() -> Iterator[Journal]:
    journal = Journal()
    yield journal
    assert journal.schema_violations == []


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    now = [1000.0]
    monkeypatch.setattr(supervisor_module, "_now", lambda: now[0])
    yield now


# -- starting --------------------------------------------------------------------


def test_children_are_started_in_the_order_of_their_specs(journal: Journal) -> None:
    root = start_root(
        "root", children=[worker(c, journal) for c in ("a", "b", "c")], emit=journal.emit
    )

    assert journal.lifecycle() == [("started", "a", 1), ("started", "b", 1), ("started", "c", 1)]
    assert root.proxy().which_children().get(timeout=WAIT) == [
        ("a", child(root, "a"), Restart.PERMANENT),
        ("b", child(root, "b"), Restart.PERMANENT),
        ("c", child(root, "c"), Restart.PERMANENT),
    ]


def test_start_child_adds_a_child_after_the_existing_ones(journal: Journal) -> None:
    root = start_root("root", children=[worker("a", journal)])

    ref = root.proxy().start_child(worker("late", journal, restart=Restart.TEMPORARY)).get()

    assert ref.proxy().ping().get(timeout=WAIT) == "pong"
    assert root.proxy().which_children().get(timeout=WAIT)[-1] == (
        "late",
        ref,
        Restart.TEMPORARY,
    )


def test_start_child_refuses_an_id_that_is_already_taken(journal: Journal) -> None:
    root = start_root("root", children=[worker("a", journal)])
    original = child(root, "a")

    with pytest.raises(ValueError, match="already has a child 'a'"):
        root.proxy().start_child(worker("a", journal)).get(timeout=WAIT)

    assert child(root, "a") is original
    assert journal.of_kind("started") == [("a", 1)]


def test_a_child_whose_setup_fails_is_not_kept_and_start_child_raises_child_start_error(
    journal: Journal,
) -> None:
    root = start_root("root", emit=journal.emit)
    spec = worker("w", journal, fail_setup=lambda incarnation: True)

    with pytest.raises(ChildStartError) as raised:
        root.proxy().start_child(spec).get(timeout=WAIT)

    assert raised.value.child_id == "w"
    assert isinstance(raised.value.__cause__, SetupRefused)
    assert "'w'" in str(raised.value)
    assert "SetupRefused: w refuses to start" in str(raised.value)
    assert root.proxy().which_children().get(timeout=WAIT) == []
    assert pykka.ActorRegistry.get_by_class(Worker) == []
    [failed] = journal.events_named("supervisor.child_start_failed", "w")
    assert failed["reason"] == "SetupRefused: w refuses to start"
    assert failed["level"] == "error"


def test_a_child_started_by_a_tell_runs_and_one_that_cannot_start_tells_the_sender_why(
    journal: Journal,
) -> None:
    root = start_root("root", emit=journal.emit)
    failures: list[BaseException] = []

    root.tell(StartChild(worker("told", journal, restart=Restart.TEMPORARY), failures.append))
    root.tell(StartChild(worker("w", journal, fail_setup=lambda _: True), failures.append))
    root.tell(StartChild(worker("told", journal), failures.append))  # its id is taken

    # the supervisor handles its mailbox in order: by this answer, all three were handled
    children = root.proxy().which_children().get(timeout=WAIT)
    assert [(c_id, restart) for c_id, _, restart in children] == [("told", Restart.TEMPORARY)]
    assert child(root, "told").proxy().ping().get(timeout=WAIT) == "pong"
    assert [type(f) for f in failures] == [ChildStartError, ValueError]
    assert "SetupRefused: w refuses to start" in str(failures[0])
    assert root.is_alive(), "a child that cannot start is the sender's business, not a crash"


def test_a_misspelt_child_argument_fails_the_start_instead_of_being_ignored(
    journal: Journal,
) -> None:
    root = start_root("root")
    spec = ChildSpec(id="w", actor_class=SupervisedActor, kwargs={"jurnal": journal})

    with pytest.raises(ChildStartError) as raised:
        root.proxy().start_child(spec).get(timeout=WAIT)

    assert isinstance(raised.value.__cause__, TypeError)
    assert "jurnal" in str(raised.value)


def test_start_child_gives_up_on_a_setup_that_does_not_return_in_time(
    journal: Journal,
) -> None:
    root = start_root("root", emit=journal.emit)
    release = threading.Event()
    spec = worker("slow", journal, hold_setup=release)
    spec.start_timeout = 0.2
    try:
        with pytest.raises(ChildStartError) as raised:
            root.proxy().start_child(spec).get(timeout=WAIT)
        assert isinstance(raised.value.__cause__, TimeoutError)
        assert root.proxy().which_children().get(timeout=WAIT) == []
    finally:
        release.set()

    # Once its setup returns, the abandoned child stops, and its exit notice is stale.
    journal.wait_for_entry("stopped", "slow", 1, None)
    assert root.proxy().which_children().get(timeout=WAIT) == []


def test_start_root_stops_the_started_children_in_reverse_order_when_one_fails(
    journal: Journal,
) -> None:
    children = [
        worker("a", journal),
        worker("b", journal),
        worker("c", journal, fail_setup=lambda incarnation: True),
        worker("d", journal),
    ]

    with pytest.raises(ChildStartError) as raised:
        start_root("root", children=children)

    assert raised.value.child_id == "c"
    assert isinstance(raised.value.__cause__, SetupRefused)
    assert journal.lifecycle() == [
        ("started", "a", 1),
        ("started", "b", 1),
        ("stopped", "b", 1),
        ("stopped", "a", 1),
    ]
    assert pykka.ActorRegistry.get_all() == []


def test_a_nested_supervisor_whose_child_fails_to_start_fails_its_own_start(
    journal: Journal,
) -> None:
    nested = ChildSpec(
        id="sub",
        actor_class=Supervisor,
        kwargs={
            "name": "sub",
            "children": [worker("x", journal), worker("y", journal, fail_setup=lambda n: True)],
        },
    )

    with pytest.raises(ChildStartError) as raised:
        start_root("root", children=[worker("a", journal), nested])

    assert raised.value.child_id == "sub"
    inner = raised.value.__cause__
    assert isinstance(inner, ChildStartError)
    assert inner.child_id == "y"
    assert journal.lifecycle() == [
        ("started", "a", 1),
        ("started", "x", 1),
        ("stopped", "x", 1),
        ("stopped", "a", 1),
    ]


# -- restart types ---------------------------------------------------------------


def test_a_permanent_child_that_crashes_is_restarted_with_its_restart_state(
    journal: Journal,
) -> None:
    spec = worker("w", journal)
    root = start_root("root", children=[spec], emit=journal.emit)
    first = child(root, "w")

    first.tell("crash")
    journal.wait_for_entry("started", "w", 2)
    second = child(root, "w")
    second.tell("crash")
    journal.wait_for_entry("started", "w", 3)

    assert spec.state == Incarnations(count=3)
    assert child(root, "w").actor_urn not in (first.actor_urn, second.actor_urn)
    assert root.proxy().restart_count("w").get(timeout=WAIT) == 2
    stopped = journal.of_kind("stopped")
    assert [(cid, n, type(reason)) for cid, n, reason in stopped] == [
        ("w", 1, Crash),
        ("w", 2, Crash),
    ]
    restarted = journal.events_named("supervisor.child_restarted", "w")
    assert [e["restarts"] for e in restarted] == [1, 2]
    assert restarted[0]["reason"] == "Crash: w crashed"
    assert restarted[0]["message"] == "root restarted w: Crash: w crashed"
    assert restarted[0]["supervisor"] == "root"


def test_a_permanent_child_that_exits_normally_is_restarted(journal: Journal) -> None:
    root = start_root("root", children=[worker("w", journal)], emit=journal.emit)

    child(root, "w").tell("exit")

    journal.wait_for_event("supervisor.child_restarted", "w")
    assert journal.of_kind("stopped") == [("w", 1, None)]
    [restarted] = journal.events_named("supervisor.child_restarted", "w")
    assert restarted["reason"] == "normal exit"


def test_a_transient_child_is_restarted_after_a_crash_but_dropped_after_a_normal_exit(
    journal: Journal,
) -> None:
    root = start_root("root", children=[worker("t", journal, restart=Restart.TRANSIENT)])

    child(root, "t").tell("crash")
    journal.wait_for_entry("started", "t", 2)
    child(root, "t").tell("exit")
    journal.wait_for_entry("stopped", "t", 2, None)

    wait_until(lambda: child_ids(root) == [], "the transient child to be dropped")
    assert journal.of_kind("started") == [("t", 1), ("t", 2)]


def test_a_temporary_child_is_never_restarted_and_is_dropped_however_it_exits(
    journal: Journal,
) -> None:
    children = [
        worker("crasher", journal, restart=Restart.TEMPORARY),
        worker("quitter", journal, restart=Restart.TEMPORARY),
        worker("keeper", journal),
    ]
    root = start_root("root", children=children, emit=journal.emit)

    child(root, "crasher").tell("crash")
    child(root, "quitter").tell("exit")
    journal.wait_for(lambda: len(journal.of_kind("stopped")) == 2, "both temporaries to stop")

    wait_until(lambda: child_ids(root) == ["keeper"], "both temporaries to be dropped")
    assert journal.of_kind("started") == [("crasher", 1), ("quitter", 1), ("keeper", 1)]
    assert journal.events_named("supervisor.child_restarted") == []


# -- strategies ------------------------------------------------------------------


def test_one_for_one_restarts_only_the_crashed_child_and_keeps_its_position(
    journal: Journal,
) -> None:
    root = start_root("root", children=[worker(c, journal) for c in ("a", "b", "c")])
    a, c = child(root, "a"), child(root, "c")

    child(root, "b").tell("crash")
    journal.wait_for_entry("started", "b", 2)

    assert journal.lifecycle()[3:] == [("stopped", "b", 1), ("started", "b", 2)]
    assert child(root, "a") is a
    assert child(root, "c") is c
    assert a.is_alive()
    assert c.is_alive()
    assert child_ids(root) == ["a", "b", "c"]


def test_one_for_all_stops_the_others_in_reverse_order_then_restarts_all_in_start_order(
    journal: Journal,
) -> None:
    root = start_root(
        "root",
        strategy=Strategy.ONE_FOR_ALL,
        children=[worker(c, journal) for c in ("a", "b", "c")],
        emit=journal.emit,
    )

    child(root, "b").tell("crash")
    journal.wait_for_entry("started", "c", 2)

    assert journal.lifecycle()[3:] == [
        ("stopped", "b", 1),
        ("stopped", "c", 1),
        ("stopped", "a", 1),
        ("started", "a", 2),
        ("started", "b", 2),
        ("started", "c", 2),
    ]
    for cid in ("a", "b", "c"):
        assert root.proxy().restart_count(cid).get(timeout=WAIT) == 1
    reasons = {e["child"]: e["reason"] for e in journal.events_named("supervisor.child_restarted")}
    assert reasons == {
        "a": "b exited: Crash: b crashed",
        "b": "Crash: b crashed",
        "c": "b exited: Crash: b crashed",
    }


def test_one_for_all_drops_temporary_children_instead_of_restarting_them(
    journal: Journal,
) -> None:
    root = start_root(
        "root",
        strategy=Strategy.ONE_FOR_ALL,
        children=[
            worker("a", journal),
            worker("job", journal, restart=Restart.TEMPORARY),
            worker("b", journal),
        ],
    )

    child(root, "b").tell("crash")
    journal.wait_for_entry("started", "b", 2)

    assert journal.lifecycle()[3:] == [
        ("stopped", "b", 1),
        ("stopped", "job", 1),
        ("stopped", "a", 1),
        ("started", "a", 2),
        ("started", "b", 2),
    ]
    assert child_ids(root) == ["a", "b"]


def test_one_for_all_ignores_a_normal_exit_of_a_transient_child(journal: Journal) -> None:
    root = start_root(
        "root",
        strategy=Strategy.ONE_FOR_ALL,
        children=[worker("a", journal), worker("t", journal, restart=Restart.TRANSIENT)],
    )

    child(root, "t").tell("exit")
    journal.wait_for_entry("stopped", "t", 1, None)

    wait_until(lambda: child_ids(root) == ["a"], "the transient child to be dropped")
    assert journal.lifecycle() == [("started", "a", 1), ("started", "t", 1), ("stopped", "t", 1)]


# -- restart intensity and escalation ----------------------------------------------


def test_a_root_that_exceeds_its_restart_intensity_stops_its_children_and_calls_on_give_up(
    journal: Journal,
) -> None:
    gave_up: list[SupervisorGaveUp] = []
    called = threading.Event()

    def on_give_up(exc: SupervisorGaveUp) -> None:
        gave_up.append(exc)
        journal.record("on_give_up")
        called.set()

    root = start_root(
        "root",
        max_restarts=1,
        children=[worker("w1", journal), worker("w2", journal)],
        emit=journal.emit,
        on_give_up=on_give_up,
    )
    child(root, "w1").tell("crash")
    journal.wait_for_entry("started", "w1", 2)

    child(root, "w1").tell("crash")
    assert called.wait(WAIT)

    [exc] = gave_up
    assert re.search(r"'root'.*2 restarts in 5 s.*'w1'", str(exc)), str(exc)
    assert isinstance(exc.__cause__, Crash)
    assert not root.is_alive()
    assert journal.lifecycle()[-2:] == [("stopped", "w1", 2), ("stopped", "w2", 1)]
    assert journal.entries[-2:] == [("event", "supervisor.gave_up", "w1"), ("on_give_up",)]
    [event] = journal.events_named("supervisor.gave_up")
    assert event == {
        "message": str(exc),
        "supervisor": "root",
        "child": "w1",
        "reason": "Crash: w1 crashed",
        "restarts": 2,
        "period_sec": 5.0,
        "level": "error",
    }
    assert pykka.ActorRegistry.get_all() == []


def test_a_supervisor_that_gives_up_escalates_to_its_parent_in_a_two_level_tree(
    journal: Journal,
) -> None:
    leaf = worker("w", journal)
    sibling = worker("sibling", journal)
    nested = ChildSpec(
        id="nb",
        actor_class=Supervisor,
        kwargs={
            "name": "nb",
            "max_restarts": 1,
            "period": 60.0,
            "children": [sibling, leaf],
            "emit": journal.emit,
        },
    )
    root = start_root("root", children=[worker("log", journal), nested], emit=journal.emit)
    first_nb = child(root, "nb")

    child(first_nb, "w").tell("crash")
    journal.wait_for_entry("started", "w", 2)
    child(first_nb, "w").tell("crash")
    journal.wait_for_event("supervisor.child_restarted", "nb")

    [gave_up] = journal.events_named("supervisor.gave_up")
    assert (gave_up["supervisor"], gave_up["child"], gave_up["restarts"]) == ("nb", "w", 2)
    [escalated] = journal.events_named("supervisor.child_restarted", "nb")
    assert escalated["supervisor"] == "root"
    assert escalated["reason"].startswith("SupervisorGaveUp: supervisor 'nb' gave up")
    assert not first_nb.is_alive()
    # The subtree was stopped in reverse order, then started afresh by the new nb.
    assert journal.lifecycle()[5:] == [
        ("stopped", "w", 2),
        ("stopped", "sibling", 1),
        ("started", "sibling", 2),
        ("started", "w", 3),
    ]
    assert leaf.state == Incarnations(count=3)
    assert child(root, "log").is_alive()
    assert journal.of_kind("started")[0] == ("log", 1)
    assert child(child(root, "nb"), "w").proxy().ping().get(timeout=WAIT) == "pong"


def test_a_setup_failure_during_a_restart_counts_toward_the_restart_intensity(
    journal: Journal,
) -> None:
    called = threading.Event()
    root = start_root(
        "root",
        max_restarts=3,
        children=[worker("w", journal, fail_setup=lambda incarnation: incarnation >= 2)],
        emit=journal.emit,
        on_give_up=lambda exc: called.set(),
    )

    child(root, "w").tell("crash")

    assert called.wait(WAIT)
    # The crash and two failed starts each led to an attempt; the fourth is refused.
    assert journal.of_kind("setup_failed") == [("w", 2), ("w", 3), ("w", 4)]
    assert len(journal.events_named("supervisor.child_start_failed", "w")) == 3
    assert journal.events_named("supervisor.child_restarted") == []
    [gave_up] = journal.events_named("supervisor.gave_up")
    assert gave_up["restarts"] == 4
    assert gave_up["reason"] == "SetupRefused: w refuses to start"


def test_a_child_whose_restart_fails_once_is_retried_and_comes_back(journal: Journal) -> None:
    root = start_root(
        "root",
        children=[worker("w", journal, fail_setup=lambda incarnation: incarnation == 2)],
        emit=journal.emit,
    )

    child(root, "w").tell("crash")
    journal.wait_for_entry("started", "w", 3)

    assert child(root, "w").proxy().ping().get(timeout=WAIT) == "pong"
    assert root.proxy().restart_count("w").get(timeout=WAIT) == 2
    [failed] = journal.events_named("supervisor.child_start_failed", "w")
    assert failed["reason"] == "SetupRefused: w refuses to start"
    [restarted] = journal.events_named("supervisor.child_restarted", "w")
    assert restarted["restarts"] == 2


def test_restart_intensity_only_counts_restarts_within_the_period(
    journal: Journal, clock: list[float]
) -> None:
    called = threading.Event()
    root = start_root(
        "root",
        max_restarts=1,
        period=10.0,
        children=[worker("w", journal)],
        emit=journal.emit,
        on_give_up=lambda exc: called.set(),
    )

    child(root, "w").tell("crash")
    journal.wait_for_entry("started", "w", 2)
    clock[0] += 10.5
    child(root, "w").tell("crash")
    journal.wait_for_entry("started", "w", 3)
    assert not called.is_set()

    child(root, "w").tell("crash")

    assert called.wait(WAIT)
    [gave_up] = journal.events_named("supervisor.gave_up")
    assert gave_up["restarts"] == 2


# -- stopping --------------------------------------------------------------------


def test_stopping_a_supervisor_stops_its_children_in_reverse_start_order(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    nested = ChildSpec(
        id="sub",
        actor_class=Supervisor,
        kwargs={"name": "sub", "children": [worker("x", journal), worker("y", journal)]},
    )
    root = start_root("root", children=[worker("a", journal), nested, worker("c", journal)])

    assert root.stop(block=True, timeout=WAIT)

    assert [e for e in journal.lifecycle() if e[0] == "stopped"] == [
        ("stopped", "c", 1),
        ("stopped", "y", 1),
        ("stopped", "x", 1),
        ("stopped", "a", 1),
    ]
    assert pykka.ActorRegistry.get_all() == []
    # Children told their already stopping parent that they exited, quietly.
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_child_that_does_not_stop_in_time_is_reported_and_skipped(journal: Journal) -> None:
    release = threading.Event()
    stuck = worker("stuck", journal, hold_teardown=release)
    stuck.shutdown_timeout = 0.2
    root = start_root("root", children=[worker("a", journal), stuck], emit=journal.emit)
    try:
        assert root.stop(block=True, timeout=WAIT)

        assert journal.lifecycle() == [
            ("started", "a", 1),
            ("started", "stuck", 1),
            ("stopped", "a", 1),
        ]
        [timeout] = journal.events_named("supervisor.child_stop_timeout", "stuck")
        assert (timeout["supervisor"], timeout["level"]) == ("root", "warning")
    finally:
        release.set()
    journal.wait_for_entry("stopped", "stuck", 1, None)


def test_terminate_child_stops_it_for_good_and_forgets_its_spec(journal: Journal) -> None:
    root = start_root("root", children=[worker("a", journal), worker("b", journal)])

    root.proxy().terminate_child("a").get(timeout=WAIT)

    # Queued behind the exit notice "a" sent while stopping: it must be ignored.
    assert child_ids(root) == ["b"]
    assert journal.lifecycle() == [("started", "a", 1), ("started", "b", 1), ("stopped", "a", 1)]
    assert root.proxy().which_child("a").get(timeout=WAIT) is None
    root.proxy().terminate_child("a").get(timeout=WAIT)


# -- notices, asks and tells -------------------------------------------------------


def test_a_stale_child_exited_from_a_replaced_incarnation_is_ignored(journal: Journal) -> None:
    root = start_root("root", children=[worker("w", journal)], emit=journal.emit)
    old = child(root, "w")
    old.tell("crash")
    journal.wait_for_entry("started", "w", 2)
    current = child(root, "w")

    root.tell(ChildExited("w", old.actor_urn, Crash("late news about the old one")))

    # This ask is queued behind the stale notice, so it answers after it was handled.
    assert child(root, "w") is current
    assert current.is_alive()
    assert root.proxy().restart_count("w").get(timeout=WAIT) == 1
    assert journal.of_kind("started") == [("w", 1), ("w", 2)]


def test_an_ask_that_fails_does_not_kill_the_child_but_a_tell_that_fails_does(
    journal: Journal,
) -> None:
    root = start_root("root", children=[worker("w", journal)])
    w = child(root, "w")

    with pytest.raises(Crash, match="failed an ask"):
        w.proxy().fail().get(timeout=WAIT)

    assert w.proxy().ping().get(timeout=WAIT) == "pong"
    assert root.proxy().restart_count("w").get(timeout=WAIT) == 0
    assert journal.of_kind("stopped") == []

    w.tell("crash")
    journal.wait_for_entry("started", "w", 2)

    assert not w.is_alive()
    [(cid, incarnation, reason)] = journal.of_kind("stopped")
    assert (cid, incarnation, type(reason)) == ("w", 1, Crash)


def test_a_child_whose_parent_is_dead_stops_without_raising(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    dead_parent = pykka.ThreadingActor.start()
    dead_parent.stop(block=True, timeout=WAIT)
    supervision = Supervision(
        parent=dead_parent, child_id="orphan", state=None, started=pykka.ThreadingFuture()
    )
    orphan = Worker.start(supervision=supervision, journal=journal)
    supervision.started.get(timeout=WAIT)

    assert orphan.stop(block=True, timeout=WAIT)

    assert journal.of_kind("stopped") == [("orphan", 1, None)]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_an_emit_callback_that_raises_does_not_break_the_supervisor(journal: Journal) -> None:
    def broken_emit(event: str, **fields: Any) -> None:
        raise RuntimeError("event sink is down")

    root = start_root("root", children=[worker("w", journal)], emit=broken_emit)

    child(root, "w").tell("crash")
    journal.wait_for_entry("started", "w", 2)

    assert root.is_alive()
    assert child(root, "w").proxy().ping().get(timeout=WAIT) == "pong"
