"""A kernel started by an earlier nb daemon that died: this one drives it from its record.

It is not our child: liveness comes from psutil (pid and start time), signals go to its process
group, and stopping it means signalling it, not asking a KernelManager. Its channels are a
ChannelPump on the connection file the record names, like a local kernel's.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pykka
import zmq
from jupyter_client.client import KernelClient
from nb_mcp.actors.backend import NO_LIMITS, KernelStartError, Started
from nb_mcp.actors.channels import ChannelPump, Channels
from nb_mcp.actors.environment import KernelChoice
from nb_mcp.supervisor import statedir
from nb_mcp.supervisor.clock import Clock, real_clock
from nb_mcp.supervisor.processes import running, send_to_group, still_running


class AttachedBackend:
    def __init__(self, record: statedir.KernelRecord, clock: Clock | None = None) -> None:
        if record.pid is None or record.kernel_name is None or record.connection_file is None:
            raise KeyError("the record names no pid, kernel name or connection file")
        self.kernel_name: str = record.kernel_name
        self.choice = KernelChoice.from_record(record.data.get("choice") or {}, self.kernel_name)
        self.limits = NO_LIMITS  # whatever was set stays set on the process
        self._clock = clock or real_clock()
        self._record_data = {
            key: value
            for key, value in record.data.items()
            if key not in ("record_path", "in_flight")
        }
        self._record = record.path
        self._pid: int = record.pid
        self._pgid = record.pgid
        self._process = running(record.pid, record.started)
        self._stop_record = record
        self._connection_file = Path(record.connection_file)
        self._info = _read_json(self._connection_file)

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def start_timeout(self) -> float:
        return 0.0

    def adopt(self) -> None:
        """Record this process as the kernel's owner."""
        self._record_data.update(statedir.this_process())
        self.record_execution(None)

    def start(self) -> Started:
        raise KernelStartError("a kernel taken over from an earlier daemon cannot be started")

    def connection_info(self) -> dict[str, Any]:
        return dict(self._info)

    def open_channels(self, actor: pykka.ActorRef[Any], name: str) -> Channels:
        pump = ChannelPump(self.connection_info(), actor, name=name, clock=self._clock)
        pump.start()
        return pump

    def interrupt(self) -> None:
        send_to_group(self._pid, self._pgid, signal.SIGCONT)
        send_to_group(self._pid, self._pgid, signal.SIGINT)

    def is_alive(self) -> bool:
        return self._process is not None and still_running(self._process)

    def exit_code(self) -> int | None:
        return None  # not our child: its exit status went to init

    def death_reason(self) -> str | None:
        if self.is_alive():
            return None
        return "its process is gone (started by an earlier daemon, so its exit status is unknown)"

    def startup_exit(self) -> str:
        return "the kernel taken over from an earlier daemon is gone"

    def stop(self, grace: float) -> None:
        try:
            self._stop_record.stop(grace)
        finally:
            _remove_kernel_files(self._info, self._connection_file, self._record)

    def record_execution(self, in_flight: dict[str, Any] | None) -> None:
        statedir.write_record(self._record, {**self._record_data, "in_flight": in_flight})


def _read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _remove_kernel_files(info: dict[str, Any], connection_file: Path, record: Path) -> None:
    if info.get("transport") == "ipc":
        for channel in ("shell", "iopub", "stdin", "control", "hb"):
            statedir.remove(Path(f"{info['ip']}-{info[channel + '_port']}"))
    statedir.remove(connection_file)
    statedir.remove(record)


def heartbeat_answers(info: dict[str, Any], timeout: float = 3.0) -> bool:
    """Whether the kernel behind `info` answers a heartbeat ping: silent, and answered even
    while a cell runs (the kernel's heartbeat has its own thread)."""
    client = KernelClient(context=zmq.Context.instance())
    client.load_connection_info(info)
    socket = client.connect_hb()
    try:
        socket.send(b"ping")
        return bool(socket.poll(int(timeout * 1000)))
    finally:
        socket.close(linger=0)
