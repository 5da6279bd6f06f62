"""Where a kernel runs: the seam between nb's kernel actors and a kernel process.

The KernelProcess actor drives a backend (start, interrupt, is-alive, why it died, stop, its
record) and hands the KernelSession the one thing it needs from it: `open_channels`, a started
pump that moves the kernel's messages to and from the session's mailbox. The local backend is a
jupyter_client KernelManager (whose provisioners already reach Docker, Kubernetes or YARN) with a
ChannelPump on its zmq sockets; a kernel taken over from a dead daemon is attached_backend.py's;
a Kernel/Enterprise Gateway kernel is gateway_backend.py's, with a websocket pump.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pykka
import zmq
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nb_mcp.actors.channels import ChannelPump, Channels
from nb_mcp.actors.launch import KernelLaunch, launch_problem, private_kernelspec, startup_exit
from nb_mcp.supervisor import short_paths, statedir
from nb_mcp.supervisor.clock import Clock, real_clock
from nb_mcp.supervisor.processes import process_started, send_to_group


class KernelStartError(Exception):
    """The kernel could not be started; the message says why and what to do."""


@dataclass(frozen=True)
class Started:
    pid: int | None
    connection_info: dict[str, Any]


@dataclass(frozen=True)
class Limits:
    """Optional per-kernel resource limits (0: none)."""

    memory_mb: int = 0
    cpu_sec: int = 0

    def describe_signal(self, signum: int) -> str:
        """What a limit has to do with a kernel killed by `signum` ("" if nothing)."""
        if signum == signal.SIGXCPU and self.cpu_sec:
            return f"it used up its CPU time limit ({self.cpu_sec}s, NB_MCP_KERNEL_CPU_SEC)"
        if signum == signal.SIGKILL and self.cpu_sec:
            return (
                f"killed by SIGKILL: out of memory, or past its CPU time limit "
                f"({self.cpu_sec}s + 5s grace, NB_MCP_KERNEL_CPU_SEC)"
            )
        return ""


NO_LIMITS = Limits()


class KernelBackend(Protocol):
    """A kernel process wherever it runs; every method but `start` and `stop` returns at once
    (the KernelProcess calls `is_alive` every tick, and its mailbox must not wait on a kernel)."""

    kernel_name: str
    limits: Limits

    @property
    def pid(self) -> int | None: ...
    @property
    def start_timeout(self) -> float:
        """How long a start may take here (0: nb's own NB_MCP_KERNEL_START_TIMEOUT_SEC); a
        backend that pulls images or queues for a node says more."""
        ...

    def start(self) -> Started: ...
    def open_channels(self, actor: pykka.ActorRef[Any], name: str) -> Channels:
        """A started pump that tells `actor` what the kernel sends (Incoming, Heartbeat, …)."""
        ...

    def interrupt(self) -> Future[None] | None:
        """Send an interrupt without waiting; a Future, if the outcome comes later."""
        ...

    def is_alive(self) -> bool: ...
    def exit_code(self) -> int | None: ...
    def death_reason(self) -> str | None:
        """Why the kernel is gone, in words, where there is no exit code to tell it."""
        ...

    def startup_exit(self) -> str: ...
    def stop(self, grace: float) -> None: ...
    def record_execution(self, in_flight: dict[str, Any] | None) -> None: ...


_FOUND_KERNELSPECS: dict[str, tuple[str, str]] = {}


def check_kernel_name(name: str) -> tuple[str, str]:
    """The kernelspec's display name and language; raise KernelStartError, listing what
    exists, if no kernelspec has this name."""
    found = _FOUND_KERNELSPECS.get(name)
    if found is not None:
        return found  # found before; scanning the kernelspec folders on every job costs 0.6 ms
    manager = KernelSpecManager()
    try:
        spec = manager.get_kernel_spec(name)
    except NoSuchKernel:
        available = ", ".join(sorted(manager.find_kernel_specs())) or "none"
        raise KernelStartError(
            f"no kernel named {name!r} (installed kernelspecs: {available})"
        ) from None
    found = (spec.display_name or name, spec.language or "")
    _FOUND_KERNELSPECS[name] = found
    return found


def installed_kernelspecs() -> dict[str, tuple[str, str, str]]:
    """Every kernelspec Jupyter finds: name -> (display name, language, folder)."""
    found = {}
    for name, info in sorted(KernelSpecManager().get_all_specs().items()):
        spec = info.get("spec") or {}
        found[name] = (
            str(spec.get("display_name") or name),
            str(spec.get("language") or ""),
            str(info.get("resource_dir") or ""),
        )
    return found


def socket_base(state_dir: Path, kernel_id: str) -> Path:
    """Where a kernel's ipc sockets go: a folder only this user can enter (0700)."""
    base = state_dir / "runtime" / f"kernel-{kernel_id}-ipc"
    if len(str(base)) + len("-65535") <= short_paths.MAX_SOCKET_PATH:
        return base
    try:
        return short_paths.private_folder(state_dir) / f"k-{kernel_id}"
    except short_paths.NotPrivate as error:
        raise KernelStartError(str(error)) from None


@dataclass(frozen=True)
class LocalBackends:
    """Makes a notebook's local kernels: each launch's, in the notebook's folder."""

    notebook: Path
    state_dir: Path
    transport: str = "ipc"
    limits: Limits = NO_LIMITS
    clock: Clock | None = None

    def __call__(self, launch: KernelLaunch) -> LocalBackend:
        return LocalBackend(
            launch,
            self.notebook.parent,
            self.state_dir,
            self.notebook,
            transport=self.transport,
            limits=self.limits,
            clock=self.clock,
        )


class LocalBackend:
    """A kernel process on this machine, started by jupyter_client for one launch: a
    kernelspec, or a Python environment's interpreter, with its session's environment."""

    def __init__(
        self,
        launch: KernelLaunch,
        cwd: Path,
        state_dir: Path,
        notebook: Path,
        transport: str = "ipc",
        limits: Limits = NO_LIMITS,
        clock: Clock | None = None,
    ) -> None:
        self.launch = launch
        self.choice = launch.choice
        self.kernel_name = launch.label
        self.limits = limits
        self._cwd = cwd
        self._clock = clock or real_clock()
        self._state_dir = state_dir
        self._notebook = notebook
        self._id = uuid.uuid4().hex[:12]
        kernels = state_dir / "kernels"
        self._record = kernels / f"{self._id}.json"
        self._log = kernels / f"{self._id}.log"
        self._record_data: dict[str, Any] = {}
        # ipc: the kernel's sockets are files in a 0700 folder, so no other local user can
        # subscribe to its outputs or send it code (on TCP loopback anyone on the machine can).
        self._km = KernelManager(
            kernel_name=launch.choice.kernelspec or "python3",
            transport=transport,
            context=zmq.Context.instance(),
        )
        # Connection files live in our state dir, so `nb cleanup` can tell our kernels apart
        # from the user's other Jupyter or VS Code kernels.
        self._km.connection_file = str(state_dir / "runtime" / f"kernel-{self._id}.json")
        if transport == "ipc":
            self._km.ip = str(socket_base(state_dir, self._id))

    @property
    def pid(self) -> int | None:
        provisioner = self._km.provisioner
        return getattr(provisioner, "pid", None) if provisioner is not None else None

    @property
    def start_timeout(self) -> float:
        return 0.0  # nb's own: a local kernel has nothing to wait for but itself

    def start(self) -> Started:
        statedir.ensure(self._state_dir)
        if self.choice.environment is not None:
            problem = launch_problem(self.choice)
            if problem:
                raise KernelStartError(problem)
            # The environment's interpreter, as a kernelspec of nb's own (in the state dir):
            # jupyter_client then starts, signals and stops it like any kernel.
            name, folder = private_kernelspec(self._state_dir, self.choice)
            self._km.kernel_spec_manager = KernelSpecManager(kernel_dirs=[str(folder)])
            self._km.kernel_name = name
        try:
            with open(self._log, "ab") as log:
                # The kernel's stdout/stderr go to its own log file: never to ours, since our
                # stdout is the MCP stream.
                # independent: the kernel does not watch for its parent to exit (ipykernel's
                # parent poller), so a training run survives the daemon that started it, and
                # nb itself decides when a kernel stops.
                # env: the session's, never this process's own (another client's, or none).
                self._km.start_kernel(
                    cwd=str(self._cwd),
                    env=self.launch.kernel_env(),
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    independent=True,
                )
        except NoSuchKernel:
            check_kernel_name(self.kernel_name)
            raise
        except (OSError, RuntimeError, ValueError) as error:
            raise KernelStartError(
                f"kernel {self.kernel_name!r} failed to start: {error}"
            ) from error
        pid = self.pid
        if pid:
            self._apply_limits(pid)
        self._record_data = {
            "kernel_id": self._id,
            "pid": pid,
            "start_time": process_started(pid) if pid else None,
            "pgid": getattr(self._km.provisioner, "pgid", None),
            **statedir.this_process(),
            "notebook": str(self._notebook),
            "kernel_name": self.kernel_name,
            "choice": self.choice.to_record(),
            "connection_file": self._km.connection_file,
            "log": str(self._log),
            "started_at": self._clock.time(),
        }
        self.record_execution(None)
        return Started(pid=pid, connection_info=self.connection_info())

    def startup_exit(self) -> str:
        """Why the kernel exited during start-up, with what its own output (its log) says."""
        try:
            with open(self._log, "rb") as log:
                log.seek(max(0, os.fstat(log.fileno()).st_size - 4096))
                tail = log.read().decode("utf-8", "replace")
        except OSError:
            tail = ""
        return startup_exit(self.exit_code(), tail, self.choice)

    def record_execution(self, in_flight: dict[str, Any] | None) -> None:
        """Note in the state dir which cell runs, so a daemon that replaces us can resume it."""
        statedir.write_record(self._record, {**self._record_data, "in_flight": in_flight})

    def _apply_limits(self, pid: int) -> None:
        # Set on the new process from outside: a preexec_fn is unsafe in a threaded server.
        if self.limits.memory_mb:
            size = self.limits.memory_mb * 1024 * 1024
            resource.prlimit(pid, resource.RLIMIT_AS, (size, size))
        if self.limits.cpu_sec:
            # SIGXCPU at the soft limit names the cause; SIGKILL at the hard one if ignored.
            cpu = self.limits.cpu_sec
            resource.prlimit(pid, resource.RLIMIT_CPU, (cpu, cpu + 5))

    def connection_info(self) -> dict[str, Any]:
        return dict(self._km.get_connection_info(session=False))

    def open_channels(self, actor: pykka.ActorRef[Any], name: str) -> Channels:
        pump = ChannelPump(self.connection_info(), actor, name=name, clock=self._clock)
        pump.start()
        return pump

    def interrupt(self) -> None:
        # A kernel frozen by SIGSTOP queues SIGINT until it runs again: wake it first.
        self._signal_group(signal.SIGCONT)
        self._km.interrupt_kernel()

    def is_alive(self) -> bool:
        return bool(self._km.has_kernel and self._km.is_alive())

    def exit_code(self) -> int | None:
        process = getattr(self._km.provisioner, "process", None)
        return None if process is None else process.poll()

    def death_reason(self) -> str | None:
        return None  # our own child: its exit code tells

    def stop(self, grace: float) -> None:
        """Ask the kernel to shut down; kill its process group if it has not after `grace`."""
        try:
            if self._km.has_kernel:
                self._km.shutdown_wait_time = grace
                self._signal_group(signal.SIGCONT)
                self._km.shutdown_kernel(now=grace <= 0)
        finally:
            with contextlib.suppress(OSError):
                self._km.cleanup_resources()
            statedir.remove(self._record)

    def _signal_group(self, signum: int) -> None:
        pid, pgid = self.pid, getattr(self._km.provisioner, "pgid", None)
        if pid:
            send_to_group(pid, pgid, signum)


def remote_of(backend: KernelBackend) -> dict[str, str | None] | None:
    """Where a remote kernel is (its id on the gateway, the gateway's URL); None for a kernel
    on this machine, whose pid tells."""
    remote = getattr(backend, "remote", None)
    return dict(remote) if isinstance(remote, dict) else None
