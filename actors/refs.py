"""Where a notebook's actors are right now: its writer, and its kernel's three actors.

A restarted actor is a new actor with a new ref; a job that kept the old ref would tell a dead
actor. Each incarnation registers itself here in setup() and unregisters in teardown(), like a
registered name in OTP, and callers look the ref up at the moment they send.

Roles: "writer"; "turns" (the TurnQueue jobs talk to); "process" (the KernelProcess: the kernel
as tools see it, `kernel()`); "session" (the KernelSession, restarted on a channel failure).
Actors inside the tree use `current`, which never waits: an actor must not block its mailbox on
another's restart.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pykka


class NotRunning(Exception):
    """The actor is not running (stopped, or given up on by its supervisor)."""


class NotebookRefs:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._refs: dict[str, pykka.ActorRef] = {}
        # A pykka proxy introspects every attribute of its actor when built (~0.4 ms): build
        # one per incarnation, not one per call (the kernel sends one per iopub message).
        self._proxies: dict[str, pykka.ActorProxy[Any]] = {}
        self._changed = threading.Condition()
        self._kernel_info: Any = None

    def put_kernel_info(self, info: Any) -> None:
        """The KernelProcess's latest KernelInfo, put up after each message it handles."""
        self._kernel_info = info  # one reference, swapped whole: readers never see half of it

    def kernel_info(self) -> Any:
        """The kernel as its KernelProcess last said it is (None before it said anything):
        what the facade decides a launch on, without an ask on the exec path."""
        return self._kernel_info

    def register(self, role: str, ref: pykka.ActorRef) -> None:
        proxy = ref.proxy()
        with self._changed:
            self._refs[role] = ref
            self._proxies[role] = proxy
            self._changed.notify_all()

    def unregister(self, role: str, ref: pykka.ActorRef) -> None:
        with self._changed:
            if self._refs.get(role) is ref:
                del self._refs[role]
                del self._proxies[role]

    def current(self, role: str) -> pykka.ActorRef | None:
        """The live actor in `role` now, or None; never waits."""
        with self._changed:
            ref = self._refs.get(role)
        return ref if ref is not None and ref.is_alive() else None

    def get(self, role: str, wait: float = 5.0) -> pykka.ActorRef:
        """The live actor in `role`, waiting up to `wait` seconds for a restart to finish."""
        deadline = time.monotonic() + wait
        with self._changed:
            while True:
                ref = self._refs.get(role)
                if ref is not None and ref.is_alive():
                    return ref
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise NotRunning(f"the {role} of {self.path.name} is not running")
                self._changed.wait(remaining)

    def tell(self, role: str, message: Any) -> None:
        """Tell the current incarnation, riding out a restart in progress."""
        for _ in range(3):
            try:
                self.get(role).tell(message)
                return
            except pykka.ActorDeadError:
                continue  # it died between the lookup and the tell; look again
        raise NotRunning(f"the {role} of {self.path.name} is not running")

    def proxy(self, role: str, wait: float = 5.0) -> pykka.ActorProxy[Any]:
        ref = self.get(role, wait)
        with self._changed:
            proxy = self._proxies.get(role)
            if proxy is not None and self._refs.get(role) is ref:
                return proxy
        return ref.proxy()

    def writer(self) -> pykka.ActorProxy[Any]:
        return self.proxy("writer")

    def kernel(self) -> pykka.ActorProxy[Any]:
        """The kernel as tools see it: info, interrupt, restart_kernel, shutdown_kernel."""
        return self.proxy("process")
