"""Real gateways for tests: a Jupyter Kernel Gateway or Enterprise Gateway process on a free
loopback port with an auth token, and a TCP proxy that can cut or refuse its connections.

The gateway runs from its own cached venv (tests/gateway/venvs.py), with Jupyter's data,
config and runtime folders in the test's tmp folder, so it sees only its venv's `python3`
kernelspec (and any a test adds) and never the user's Jupyter. Its kernels are its children
(each in a session of its own, as jupyter_client starts them): stopping the gateway kills
every one of them too, whatever state the test left them in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import psutil

from tests.gateway.venvs import GatewayVenv

_START_TIMEOUT = 60.0
_APPS = {
    "kernel": ("kernel_gateway", "KernelGatewayApp"),
    "enterprise": ("enterprise_gateway", "EnterpriseGatewayApp"),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningGateway:
    kind: str  # "kernel" or "enterprise"
    port: int
    token: str
    process: subprocess.Popen[bytes]
    log: Path
    data_dir: Path
    seen_kernels: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, url: str | None = None, **extra: str) -> dict[str, str]:
        """A session environment that points at this gateway (or at `url`, e.g. a proxy)."""
        return {
            "JUPYTER_GATEWAY_URL": url or self.url,
            "JUPYTER_GATEWAY_AUTH_TOKEN": self.token,
            "USER": "nb-test",
            **extra,
        }

    def kernel_processes(self) -> list[psutil.Process]:
        """The kernels this gateway runs now (its ipykernel descendants)."""
        found = []
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for child in children:
            with contextlib.suppress(psutil.Error):
                if "ipykernel_launcher" in " ".join(child.cmdline()):
                    found.append(child)
                    self.seen_kernels.add(child.pid)
        return found

    def kernel_process(self, kernel_id: str) -> psutil.Process | None:
        """The process of one kernel: its connection file is named after its id."""
        for process in self.kernel_processes():
            with contextlib.suppress(psutil.Error):
                if kernel_id in " ".join(process.cmdline()):
                    return process
        return None

    def add_kernelspec(self, name: str, argv: list[str]) -> None:
        folder = self.data_dir / "kernels" / name
        folder.mkdir(parents=True, exist_ok=True)
        spec = {"argv": argv, "display_name": f"test: {name}", "language": "python"}
        (folder / "kernel.json").write_text(json.dumps(spec))

    def kill(self) -> None:
        """SIGKILL the gateway (not its kernels: `stop` cleans those up)."""
        self.kernel_processes()
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        self.kernel_processes()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for pid in self.seen_kernels:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                if "ipykernel_launcher" in " ".join(process.cmdline()):
                    process.send_signal(signal.SIGCONT)
                    process.kill()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_gateway(kind: str, venv: GatewayVenv, folder: Path, *extra_args: str) -> RunningGateway:
    """Start a gateway and wait until it answers `GET /api/kernelspecs` with its token."""
    module, app = _APPS[kind]
    for name in ("data", "config", "runtime", "ipython"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("JUPYTER")}
    env.update(
        JUPYTER_DATA_DIR=str(folder / "data"),
        JUPYTER_PATH=str(folder / "data"),
        JUPYTER_CONFIG_DIR=str(folder / "config"),
        JUPYTER_RUNTIME_DIR=str(folder / "runtime"),
        IPYTHONDIR=str(folder / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    token = secrets.token_hex(16)
    port = free_port()
    log = folder / "gateway.out"  # not .log: the event-contract fixture reads those
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                str(venv.python),
                "-m",
                module,
                f"--{app}.ip=127.0.0.1",
                f"--{app}.port={port}",
                f"--{app}.port_retries=0",
                f"--{app}.auth_token={token}",
                *extra_args,
            ],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    gateway = RunningGateway(kind, port, token, process, log, folder / "data")
    try:
        _wait_until_answering(gateway)
    except BaseException:
        gateway.stop()
        raise
    return gateway


def _wait_until_answering(gateway: RunningGateway) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    headers = {"Authorization": f"token {gateway.token}"}
    while True:
        if gateway.process.poll() is not None:
            raise RuntimeError(f"the {gateway.kind} gateway exited:\n{gateway.log_tail()}")
        try:
            if httpx2.get(f"{gateway.url}/api/kernelspecs", headers=headers, timeout=2).is_success:
                return
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the {gateway.kind} gateway did not answer within {_START_TIMEOUT:.0f}s:\n"
                + gateway.log_tail()
            )
        time.sleep(0.1)  # polling interval while the server boots


class TcpProxy:
    """A loopback TCP proxy in its own thread: `cut()` drops every open connection (a websocket
    dies mid-cell), `stop()` also stops listening (the gateway is unreachable: refused), and
    `start()` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )
        self._thread.start()
        self._server: asyncio.base_events.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._call(self._listen())

    def stop(self) -> None:
        self._call(self._stop())

    def cut(self) -> int:
        """Drop every open connection at once; return how many there were."""
        return self._call(self._cut())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._link, "127.0.0.1", self.port, reuse_address=True
            )

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        await self._cut()

    async def _cut(self) -> int:
        links = list(self._links)
        for writer in links:
            writer.transport.abort()
        self._links.clear()
        return len(links) // 2

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, upstream_writer))
        await asyncio.gather(
            _pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True
        )
        for end in (writer, upstream_writer):
            self._links.discard(end)
            end.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.transport.abort()


# A cell that prints a numbered line every 50 ms, waiting for a flag file half-way, so a test
# can cut the connection while the cell is certainly running.
COUNTING_CELL = """
import os, time
for i in range(40):
    print(f'tick {{i}}', flush=True)
    if i == 10:
        while not os.path.exists({flag!r}):
            time.sleep(0.02)
    time.sleep(0.05)
print('done', flush=True)
"""
