"""What a notebook's kernel actors write in the event log: one function per event line.

Names and fields are ops/events.schema.json's; the messages are one line for a person. Kept
apart from the actors so that their code reads as the state machine it is.
"""

from __future__ import annotations

from nb_mcp.actors.launch import KernelLaunch
from nb_mcp.actors.log import emit


class KernelEvents:
    """The event lines of one notebook's kernel."""

    def __init__(self, notebook: str, name: str) -> None:
        self.notebook = notebook  # the absolute path, as events carry it
        self.name = name  # the file name, as messages say it

    # ------------------------------------------------------------ the process

    def starting(self, launch: KernelLaunch) -> None:
        choice = launch.choice
        emit(
            "kernel.starting",
            f"starting a kernel for {self.name} in {choice.describe()}: {choice.rule}",
            notebook=self.notebook,
            kernel_name=launch.label,
            **launch.described(),
        )

    def start_failed(self, kernel_name: str | None, reason: str) -> None:
        emit(
            "kernel.start_failed",
            f"the {kernel_name} kernel for {self.name} could not start: {reason}",
            level="error",
            notebook=self.notebook,
            kernel_name=kernel_name or "",
            reason=reason,
        )

    def ready(
        self,
        kernel_name: str,
        pid: int | None,
        startup: float,
        remote: dict[str, str | None] | None = None,
    ) -> None:
        where = f"pid {pid}"
        if remote is not None:
            where = f"kernel {remote['kernel_id']} on {remote['gateway_url']}"
        emit(
            "kernel.ready",
            f"{kernel_name} kernel ready for {self.name} ({where}, {startup:.2f}s)",
            notebook=self.notebook,
            kernel_name=kernel_name,
            kernel_pid=pid,
            startup_sec=round(startup, 3),
            **(remote or {}),
        )

    def restarted(self, reason: str, pid: int | None) -> None:
        emit(
            "kernel.restarted",
            f"restarted the kernel of {self.name} ({reason})",
            notebook=self.notebook,
            reason=reason,
            kernel_pid=pid,
        )

    def died(
        self,
        note: str,
        pid: int | None,
        code: int | None,
        job_id: str | None,
        remote: dict[str, str | None] | None = None,
    ) -> None:
        emit(
            "kernel.died",
            f"the kernel of {self.name} died ({note})",
            level="error",
            notebook=self.notebook,
            kernel_pid=pid,
            exit_code=code,
            reason=note,
            job_id=job_id,
            **(remote or {}),
        )

    def interrupted(self, message: str, reason: str, pid: int | None, **where: str | None) -> None:
        emit(
            "kernel.interrupted",
            message,
            notebook=self.notebook,
            reason=reason,
            kernel_pid=pid,
            **where,
        )

    def interrupt_failed(self, error: BaseException) -> None:
        emit(
            "kernel.interrupt_failed",
            f"the interrupt for the kernel of {self.name} failed: {error}",
            level="warning",
            notebook=self.notebook,
            error=f"{type(error).__name__}: {error}",
        )

    def stopped(self, reason: str, pid: int | None) -> None:
        emit(
            "kernel.stopped",
            f"stopped the kernel of {self.name} ({reason})",
            notebook=self.notebook,
            reason=reason,
            kernel_pid=pid,
        )

    # ------------------------------------------------------------ the session

    def reattached(
        self, kernel_name: str, pid: int | None, cell_id: str | None, job_id: str | None
    ) -> None:
        emit(
            "kernel.reattached",
            f"took over the running {kernel_name} kernel of {self.name} (pid "
            f"{pid if pid is not None else '?'}) from a daemon that stopped",
            notebook=self.notebook,
            kernel_pid=pid,
            cell_id=cell_id,
            job_id=job_id,
        )

    def unresponsive(self, pid: int | None, silent: float) -> None:
        emit(
            "kernel.unresponsive",
            f"the kernel of {self.name} has not answered its heartbeat for {silent:.0f}s "
            "(frozen or overloaded); interrupt or restart_kernel recover it",
            level="warning",
            notebook=self.notebook,
            kernel_pid=pid,
            silent_sec=round(silent, 3),
        )

    def desync(self, channel: str, error: str) -> None:
        emit(
            "iopub.desync",
            f"reading the kernel's {channel} channel failed: {error}; rebuilding the channels",
            level="error",
            notebook=self.notebook,
            error=f"{channel}: {error}",
        )

    def recovered(self, msg_id: str | None) -> None:
        emit(
            "iopub.recovered",
            f"rebuilt the kernel channels of {self.name}; reading resumed",
            notebook=self.notebook,
            resumed_msg_id=msg_id,
        )

    def channels_resumed(self, gap: float, maybe_lost: int) -> None:
        emit(
            "gateway.channels_resumed",
            f"the connection to the gateway kernel of {self.name} dropped for {gap:.1f}s "
            "and is back",
            level="warning",
            notebook=self.notebook,
            gap_sec=round(gap, 3),
            maybe_lost=maybe_lost,
        )

    def gateway_lost(self, url: str, unreachable: float, error: str) -> None:
        emit(
            "gateway.lost",
            f"lost the gateway of {self.name}'s kernel at {url} ({unreachable:.0f}s "
            f"unreachable): {error}",
            level="error",
            notebook=self.notebook,
            gateway_url=url,
            unreachable_sec=round(unreachable, 3),
            error=error,
        )
