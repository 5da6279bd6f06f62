"""A real ipykernel behind an iopub proxy that can break a message on its way to the client.

A kernelspec runs this as `python proxy_kernel.py {connection_file}`. It reads the connection
file the client (nb) wrote, starts the real kernel (`python -m ipykernel_launcher`) on a copy
whose iopub port is a fresh internal one, binds the ORIGINAL iopub port itself and forwards
every iopub message (and every subscription, the other way). The client, connecting where
its connection file says, reads the kernel's output through this proxy; shell, control, stdin
and heartbeat go straight to the kernel.

Set through the kernelspec's `env`:

- `NB_FAULT_MODE`: `once` breaks the first stream message whose content contains the
  trigger, `always` breaks every one, `off` nothing.
- `NB_FAULT_TRIGGER`: the text that selects the message (default `CORRUPT_ME`).
- `NB_FAULT_HOW`: `drop_delimiter` removes the `<IDS|MSG>` frame (the client's
  `'<IDS|MSG>' is not in list`), `truncate` cuts the message after its header,
  `bad_signature` changes one byte of the content (HMAC mismatch).
- `NB_FAULT_DIR`: where it writes, per proxy pid, `<pid>.child` (the real kernel's pid),
  `<pid>.subscriptions` (one line per subscription the client made) and `<pid>.corrupted`
  (one line per message it broke), so a test can wait on them instead of sleeping.

Signals sent to this process (SIGINT for interrupts, SIGTERM, SIGHUP, SIGQUIT, SIGCONT…) are
forwarded to the kernel, which runs in its own session so that a signal to this process
group reaches it exactly once. If this process is killed (SIGKILL), the kernel gets SIGKILL
too (PR_SET_PDEATHSIG). It exits when the kernel exits, with the kernel's status.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import zmq

DELIM = b"<IDS|MSG>"
_PR_SET_PDEATHSIG = 1
_FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCONT,
)


def endpoint(info: dict[str, Any], port: int) -> str:
    """Where a channel on `port` is, as ipykernel and jupyter_client spell it."""
    if info["transport"] == "ipc":
        return f"ipc://{info['ip']}-{port}"
    return f"tcp://{info['ip']}:{port}"


def free_port(info: dict[str, Any]) -> int:
    """A port the real kernel can bind its iopub on: a free TCP port, or an unused ipc path."""
    if info["transport"] == "ipc":
        taken = {int(v) for k, v in info.items() if k.endswith("_port")}
        port = max(taken) + 1
        while Path(f"{info['ip']}-{port}").exists():
            port += 1
        return port
    with socket.socket() as probe:
        probe.bind((info["ip"], 0))
        return int(probe.getsockname()[1])


def die_with_parent() -> None:
    """Runs in the kernel's process before exec: SIGKILL it when this proxy dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Faults:
    def __init__(self, mode: str, trigger: bytes, how: str, folder: Path | None) -> None:
        self.mode = mode
        self.trigger = trigger
        self.how = how
        self.folder = folder
        self.broken = 0

    def note(self, kind: str, line: str) -> None:
        if self.folder is None:
            return
        with open(self.folder / f"{os.getpid()}.{kind}", "a") as out:
            out.write(line + "\n")

    def selects(self, frames: list[bytes]) -> bool:
        if self.mode == "off" or (self.mode == "once" and self.broken):
            return False
        try:
            at = frames.index(DELIM)
            header = json.loads(frames[at + 2])
        except (ValueError, IndexError):
            return False
        return header.get("msg_type") == "stream" and self.trigger in frames[at + 5]

    def apply(self, frames: list[bytes]) -> list[bytes]:
        at = frames.index(DELIM)
        if self.how == "drop_delimiter":
            broken = frames[:at] + frames[at + 1 :]
        elif self.how == "truncate":
            broken = frames[: at + 3]
        elif self.how == "bad_signature":
            content = bytearray(frames[at + 5])
            content[-2] = ord("x") if content[-2] != ord("x") else ord("y")
            broken = [*frames[: at + 5], bytes(content), *frames[at + 6 :]]
        else:
            raise ValueError(f"unknown NB_FAULT_HOW {self.how!r}")
        self.broken += 1
        self.note("corrupted", f"{self.how} {len(frames)} -> {len(broken)} frames")
        return broken


def main() -> int:
    connection_file = Path(sys.argv[1])
    info = json.loads(connection_file.read_text())
    folder = os.environ.get("NB_FAULT_DIR")
    faults = Faults(
        os.environ.get("NB_FAULT_MODE", "once"),
        os.environ.get("NB_FAULT_TRIGGER", "CORRUPT_ME").encode(),
        os.environ.get("NB_FAULT_HOW", "drop_delimiter"),
        Path(folder) if folder else None,
    )
    inner = dict(info, iopub_port=free_port(info))
    inner_file = connection_file.with_name(connection_file.stem + "-inner.json")
    inner_file.write_text(json.dumps(inner))

    # Started before any zmq context exists: preexec_fn is only safe without other threads.
    kernel = subprocess.Popen(
        [sys.executable, "-m", "ipykernel_launcher", "-f", str(inner_file)],
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    faults.note("child", str(kernel.pid))

    context = zmq.Context()
    downstream = context.socket(zmq.XPUB)  # where the client's SUB connects
    downstream.setsockopt(zmq.XPUB_VERBOSE, 1)
    downstream.setsockopt(zmq.LINGER, 0)
    downstream.bind(endpoint(info, int(info["iopub_port"])))

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(kernel.pid, signum)

    for signum in _FORWARDED:
        signal.signal(signum, forward)

    upstream = context.socket(zmq.XSUB)  # the kernel's XPUB
    upstream.setsockopt(zmq.LINGER, 0)
    upstream.connect(endpoint(inner, int(inner["iopub_port"])))

    poller = zmq.Poller()
    poller.register(downstream, zmq.POLLIN)
    poller.register(upstream, zmq.POLLIN)
    try:
        while kernel.poll() is None:
            try:
                ready = dict(poller.poll(100))
            except zmq.ZMQError:  # interrupted by a forwarded signal
                continue
            if downstream in ready:
                while True:
                    try:
                        frames = downstream.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if frames and frames[0][:1] == b"\x01":
                        faults.note("subscriptions", repr(frames[0][1:]))
                    upstream.send_multipart(frames)
            if upstream in ready:
                while True:
                    try:
                        frames = upstream.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if faults.selects(frames):
                        frames = faults.apply(frames)
                    downstream.send_multipart(frames)
    finally:
        downstream.close(0)
        upstream.close(0)
        context.term()
        with contextlib.suppress(OSError):
            inner_file.unlink()
    code = kernel.wait()
    if code < 0:
        # Die the way the kernel died, so the client reads the same exit status.
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main())
