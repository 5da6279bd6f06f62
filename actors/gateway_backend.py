"""A kernel on a Jupyter Kernel Gateway or Enterprise Gateway, behind the kernel actors' seam.

It has the methods of backend.KernelBackend, so the KernelProcess drives it like a local kernel
(and the KernelSession reads it through `open_channels`):
`start` asks the gateway for a kernel (no pid: the process is the gateway's), `interrupt` and
`stop` are REST calls, `is_alive` answers from what the gateway last said (never waiting on the
network: the actor asks on every tick), and `open_channels` gives the websocket pump that feeds
the actor the same messages as the local one. Only the kernel runs remotely; the notebook,
the jobs and the events stay here.

Each kernel is recorded (0600, atomically) under the state dir's `gateway-kernels/` with its
kernel id, the gateway URL and the websocket session id, never the token, so a daemon that
replaces a dead one can `reattach`: same kernel, same session, and the gateway replays what it
buffered for that session meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pykka
from nb_mcp.actors.backend import NO_LIMITS, KernelStartError, Started
from nb_mcp.actors.gateway_channels import GatewayChannels
from nb_mcp.actors.gateway_client import GatewayClient, GatewayError
from nb_mcp.actors.gateway_liveness import RemoteLiveness
from nb_mcp.actors.gateway_settings import GatewaySettings
from nb_mcp.supervisor import statedir

RECORDS = "gateway-kernels"


class KernelGone(KernelStartError):
    """A recorded remote kernel no longer exists on its gateway (or the gateway changed)."""


def records_folder(state_dir: Path) -> Path:
    folder = state_dir / RECORDS
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder


def gateway_records(state_dir: Path) -> list[dict[str, Any]]:
    """Every remote kernel recorded in the state dir (with `record_path`)."""
    return statedir.read_records(state_dir / RECORDS)


class GatewayBackend:
    def __init__(
        self,
        settings: GatewaySettings,
        kernel_name: str,
        state_dir: Path,
        notebook: Path,
        *,
        client: GatewayClient | None = None,
        offer_v1: bool = True,
    ) -> None:
        self.kernel_name = kernel_name
        self.limits = NO_LIMITS  # a gateway's kernels get their limits from the gateway
        self.settings = settings
        self._owns_client = client is None
        self.client = client or GatewayClient(settings)
        self._state_dir = state_dir
        self._notebook = notebook
        self._offer_v1 = offer_v1
        self._record = records_folder(state_dir) / f"{uuid.uuid4().hex[:12]}.json"
        self._record_data: dict[str, Any] = {}
        self.kernel_id: str | None = None
        # Kept across channel rebuilds and daemons: the gateway buffers a dropped session's
        # messages under this id and replays them to whoever reconnects with it.
        self.session_id = uuid.uuid4().hex
        self.liveness = RemoteLiveness()
        self._stopped = False
        self._requests: ThreadPoolExecutor | None = None
        self._adopt: dict[str, Any] | None = None
        self.reattached = False  # the last start took over a kernel an earlier daemon left

    @property
    def pid(self) -> int | None:
        return None  # the process is the gateway's, maybe on another machine

    @property
    def start_timeout(self) -> float:
        return self.settings.start_timeout  # a launch may pull an image or wait for a node

    # ------------------------------------------------------------ the KernelBackend methods

    @property
    def remote(self) -> dict[str, str | None]:
        """Where the kernel is, for events and status: no pid here, its id on the gateway."""
        return {"kernel_id": self.kernel_id, "gateway_url": self.settings.url}

    def adopt_on_start(self, record: dict[str, Any]) -> None:
        """Let `start` take over the recorded kernel (an earlier daemon's) if the gateway still
        has it, and start a new one only if not."""
        self._adopt = record

    def restarts_in_place(self, launch_env: Any, kernel_name: str) -> bool:
        """Whether a restart for this launch can be the gateway's own (same kernel id, same
        gateway and credentials, same kernelspec) rather than a new kernel."""
        try:
            settings = GatewaySettings.from_env(launch_env)
        except ValueError:
            return False
        return (
            settings is not None
            and settings.url == self.settings.url
            and settings.auth_headers() == self.settings.auth_headers()
            and kernel_name == self.kernel_name
            and self.kernel_id is not None
            and self.liveness.alive
        )

    def start(self) -> Started:
        adopt, self._adopt = self._adopt, None
        if adopt is not None and self._take_over(adopt):
            self.reattached = True
            return Started(pid=None, connection_info=self.connection_info())
        try:
            model = self.client.start_kernel(self.kernel_name, self.settings.kernel_env)
        except GatewayError as error:
            raise KernelStartError(str(error)) from error
        self.kernel_id = str(model["id"])
        self._record_data = {
            "kind": "gateway",
            "kernel_id": self.kernel_id,
            "gateway_url": self.settings.url,
            "session_id": self.session_id,
            "kernel_name": self.kernel_name,
            "notebook": str(self._notebook),
            "started_at": time.time(),
        }
        try:
            self.record_execution(None)
        except OSError as error:
            self._delete_quietly()
            raise KernelStartError(
                f"the kernel started on the gateway but could not be recorded ({error}); "
                "it was shut down again"
            ) from error
        return Started(pid=None, connection_info=self.connection_info())

    def connection_info(self) -> dict[str, Any]:
        return {
            "transport": "gateway",
            "gateway_url": self.settings.url,
            "kernel_id": self.kernel_id,
            "session_id": self.session_id,
        }

    def interrupt(self) -> Future[None]:
        """Ask the gateway to interrupt the kernel, without waiting: the actor's mailbox must
        not wait on the network. The future holds the outcome (a GatewayError if refused)."""
        assert self.kernel_id is not None
        return self._background().submit(self.client.interrupt_kernel, self.kernel_id)

    def is_alive(self) -> bool:
        return self.kernel_id is not None and not self._stopped and self.liveness.alive

    def death_reason(self) -> str | None:
        """Why the kernel is no longer alive, as the gateway told us; None if it is."""
        return self.liveness.death

    def exit_code(self) -> int | None:
        return None  # a remote process's exit status never reaches us

    def startup_exit(self) -> str:
        return self.death_reason() or "the kernel on the gateway stopped while it started"

    def restart(self) -> None:
        """Restart the kernel in place (same id, variables gone), as nb's own decision."""
        assert self.kernel_id is not None
        self.liveness.expect_restart()
        try:
            self.client.restart_kernel(self.kernel_id)
        except GatewayError as error:
            raise KernelStartError(str(error)) from error

    def stop(self, grace: float) -> None:
        """Shut the kernel down on the gateway (which gives it its own grace period).

        If the gateway cannot be reached the record stays, marked, so a later daemon or
        `nb cleanup` can finish the job; the gateway's culling is the last resort.
        """
        self._stopped = True
        try:
            if self.kernel_id is not None:
                self.client.delete_kernel(
                    self.kernel_id, timeout=min(self.settings.request_timeout, grace + 10)
                )
            statedir.remove(self._record)
        except GatewayError as error:
            if self._record_data:
                self._write({"stop_failed": str(error), "in_flight": None})
        finally:
            if self._requests is not None:
                self._requests.shutdown(wait=False)
            if self._owns_client:
                self.client.close()

    def record_execution(self, in_flight: dict[str, Any] | None) -> None:
        """Note which cell runs, so a daemon that replaces us can resume it."""
        self._write({"in_flight": in_flight})

    # ------------------------------------------------------------ the channel side

    def open_channels(self, actor: pykka.ActorRef, name: str, **tuning: float) -> GatewayChannels:
        """A started pump between the kernel's websocket and `actor`."""
        assert self.kernel_id is not None
        channels = GatewayChannels(
            self.client,
            self.kernel_id,
            actor,
            name=name,
            session_id=self.session_id,
            liveness=self.liveness,
            offer_v1=self._offer_v1,
            **tuning,
        )
        channels.start()
        return channels

    # ------------------------------------------------------------ taking over

    @classmethod
    def reattach(
        cls,
        record: dict[str, Any],
        settings: GatewaySettings,
        state_dir: Path,
        *,
        client: GatewayClient | None = None,
    ) -> GatewayBackend:
        """Drive a kernel an earlier daemon started, if it still exists on its gateway.

        Raises KernelGone (and forgets the record) if the gateway no longer has it; raises
        KernelStartError, keeping the record, if the gateway cannot be asked right now or the
        session now names another gateway.
        """
        if record.get("gateway_url") != settings.url:
            raise KernelStartError(
                f"the kernel was started on the gateway at {record.get('gateway_url')}, but "
                f"JUPYTER_GATEWAY_URL now names {settings.url}"
            )
        backend = cls(
            settings, record["kernel_name"], state_dir, Path(record["notebook"]), client=client
        )
        try:
            taken = backend._take_over(record, record.get("in_flight"))
        except KernelStartError:
            backend.close()
            raise
        if not taken:
            backend.close()
            raise KernelGone(
                f"the gateway at {settings.url} no longer has kernel {record['kernel_id']} "
                "(deleted or culled)"
            )
        return backend

    def _take_over(self, record: dict[str, Any], in_flight: Any = None) -> bool:
        """Drive the recorded kernel from now on; False (and the record forgotten) if the
        gateway no longer has it; KernelStartError if the gateway cannot be asked."""
        try:
            model = self.client.kernel(record["kernel_id"])
        except GatewayError as error:
            raise KernelStartError(str(error)) from error
        if model is None or model.get("execution_state") == "dead":
            statedir.remove(Path(record["record_path"]))
            return False
        statedir.remove(self._record)  # (never written: this backend had not started)
        self._record = Path(record["record_path"])
        self.kernel_id = str(record["kernel_id"])
        self.session_id = str(record["session_id"])
        # The process we knew: if the gateway replaced it meanwhile, its first message says so.
        self.liveness = RemoteLiveness(record.get("kernel_session"))
        self._record_data = {
            key: value
            for key, value in record.items()
            if key not in ("record_path", "in_flight", "stop_failed", "kernel_session")
        }
        self.record_execution(in_flight)
        return True

    def close(self) -> None:
        """Let go of the kernel without stopping it (it stays on the gateway)."""
        if self._owns_client:
            self.client.close()

    # ------------------------------------------------------------ plumbing

    def _write(self, extra: dict[str, Any]) -> None:
        statedir.write_record(
            self._record,
            {
                **self._record_data,
                "kernel_session": self.liveness.incarnation,
                **statedir.this_process(),
                **extra,
            },
        )

    def _background(self) -> ThreadPoolExecutor:
        if self._requests is None:
            self._requests = ThreadPoolExecutor(1, thread_name_prefix="gateway-rest")
        return self._requests

    def _delete_quietly(self) -> None:
        if self.kernel_id is not None:
            with contextlib.suppress(GatewayError):
                self.client.delete_kernel(self.kernel_id)
