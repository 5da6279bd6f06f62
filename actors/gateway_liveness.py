"""Whether a kernel on a gateway is still the kernel we started: there is no pid to watch.

A remote kernel is dead for nb when the gateway says so: its model is gone (404: deleted or
culled) or `dead`, iopub carries a `restarting` or `dead` status, or the kernel's messages come
from a new process. The last one catches what the others can miss (a restart while our
websocket was down): every message a kernel process sends carries its own Session id in
`header.session`, and a process the gateway started in its place has another. A restart of the
gateway's own making loses every variable just the same, so for the running cell it is a death,
never a success, unless nb asked for it (`expect_restart`).

One object per remote kernel, shared by the backend (`is_alive`, which the KernelProcess calls
on every tick and must not wait on the network) and the channel pump (which learns the news).
"""

from __future__ import annotations

import threading


class RemoteLiveness:
    def __init__(self, incarnation: str | None = None) -> None:
        self._lock = threading.Lock()
        self._death: str | None = None
        self._incarnation = incarnation
        self._restart_expected = False

    @property
    def alive(self) -> bool:
        return self._death is None

    @property
    def death(self) -> str | None:
        """Why the kernel is dead, as a sentence for the cell and the event; None if alive."""
        return self._death

    @property
    def incarnation(self) -> str | None:
        """The Session id of the kernel process we know, once it has sent a message."""
        return self._incarnation

    def died(self, reason: str) -> bool:
        """Record the death; True the first time (so it is reported once)."""
        with self._lock:
            if self._death is not None:
                return False
            self._death = reason
            return True

    def expect_restart(self) -> None:
        """nb itself asked the gateway to restart the kernel: the next new process is ours."""
        with self._lock:
            self._restart_expected = True

    def status(self, execution_state: str) -> str | None:
        """A `status` the gateway itself published (not the kernel): the death it means."""
        if execution_state == "restarting":
            with self._lock:
                if self._restart_expected:
                    return None
            return self._report(
                "the gateway restarted the kernel (its process died or was replaced), so its "
                "variables are gone"
            )
        if execution_state == "dead":
            return self._report("the gateway reports the kernel dead (its restarts failed)")
        return None

    def saw_process(self, kernel_session: str) -> str | None:
        """A message from the kernel process with this Session id: the death it means, if any."""
        with self._lock:
            if self._incarnation is None or self._incarnation == kernel_session:
                self._incarnation = kernel_session
                return None
            self._incarnation = kernel_session
            if self._restart_expected:
                self._restart_expected = False
                return None
        return self._report(
            "the kernel on the gateway was replaced by a new process (it was restarted), so "
            "its variables are gone"
        )

    def model(self, model: dict[str, object] | None) -> str | None:
        """The kernel's model from `GET /api/kernels/{id}`: the death it means, if any."""
        if model is None:
            return self._report("the gateway no longer has this kernel (it was deleted or culled)")
        if model.get("execution_state") == "dead":
            return self._report(f"the gateway reports the kernel dead ({model.get('reason', '')})")
        return None

    def _report(self, reason: str) -> str | None:
        return reason if self.died(reason) else None
