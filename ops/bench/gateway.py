"""Round trip through a Jupyter Kernel Gateway: nb (a session whose JUPYTER_GATEWAY_URL names
the gateway) against a raw websocket client on the same gateway, in the same run.

The gateway is a real Kernel Gateway started for the run from the test suite's cached venv
(tests/gateway/venvs.py builds it on first use, about a minute), on loopback with a token. The
baseline starts its own kernel there over REST and speaks the channels websocket directly:
execute_request out, iopub `idle` for it back. nb's side is `exec_cell` over MCP, timed at the
client from request to result, so the ratio is what nb's supervision, writer and MCP cost on
top of the network hop both pay.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
from websockets.sync.client import ClientConnection, connect

from ops.bench.common import Context, Outcome, Row, alternate, median, p95


class RawGatewayKernel:
    """A kernel on the gateway driven over its websocket, with nothing else in between."""

    def __init__(self, url: str, token: str) -> None:
        self._headers = {"Authorization": f"token {token}"}
        self._url = url
        started = httpx2.post(
            f"{url}/api/kernels", json={"name": "python3"}, headers=self._headers, timeout=60
        )
        started.raise_for_status()
        self.kernel_id = started.json()["id"]
        ws = "ws" + url[len("http") :]
        self._session = uuid.uuid4().hex
        self._ws: ClientConnection = connect(
            f"{ws}/api/kernels/{self.kernel_id}/channels?session_id={self._session}",
            additional_headers=self._headers,
            max_size=None,
        )

    def timed(self, code: str) -> float:
        """Seconds from sending `code` to its iopub idle."""
        msg_id = uuid.uuid4().hex
        message = {
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "session": self._session,
                "username": "bench",
                "date": "",
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {"code": code, "silent": False, "store_history": True},
            "channel": "shell",
            "buffers": [],
        }
        began = time.monotonic()
        self._ws.send(json.dumps(message))
        while True:
            reply: Any = json.loads(self._ws.recv(timeout=60))
            if (
                reply.get("channel") == "iopub"
                and reply["parent_header"].get("msg_id") == msg_id
                and reply["header"]["msg_type"] == "status"
                and reply["content"]["execution_state"] == "idle"
            ):
                return time.monotonic() - began

    def close(self) -> None:
        self._ws.close()
        httpx2.delete(f"{self._url}/api/kernels/{self.kernel_id}", headers=self._headers)


def gateway_round_trip(ctx: Context) -> Outcome:
    # The test suite's real-gateway fixture code: the bench runs from the repository.
    from tests.gateway.support import start_gateway
    from tests.gateway.venvs import kernel_gateway_venv

    sizes = ctx.sizes
    runs = max(2, sizes.round_trip_runs // 2)
    out = Outcome(
        "gateway",
        "Round trip through a Kernel Gateway",
        f"`x = 1`, {runs} runs on a local Kernel Gateway 3.0.1 (loopback, token): exec_cell "
        "over MCP from a session with JUPYTER_GATEWAY_URL vs a raw websocket client "
        "(execute_request -> iopub idle) on its own kernel there; interleaved, after warm-up.",
    )
    gateway = start_gateway("kernel", kernel_gateway_venv(), Path(ctx.folder) / "kernel-gateway")
    raw: RawGatewayKernel | None = None
    try:
        server = ctx.server("gateway", env=gateway.env())
        path = server.notebook("gateway.ipynb", "x = 1")
        raw = RawGatewayKernel(gateway.url, gateway.token)
        nb_times: list[float] = []
        raw_times: list[float] = []

        def nb_side(record: bool = True) -> None:
            _, took = server.run_job("exec_cell", path=path.name, index=0)
            if record:
                nb_times.append(took * 1000)

        def raw_side(record: bool = True) -> None:
            assert raw is not None
            took = raw.timed("x = 1")
            if record:
                raw_times.append(took * 1000)

        for _ in range(sizes.warmup):
            nb_side(False)
            raw_side(False)
        alternate(runs, nb_side, raw_side)
        server.ok("shutdown_kernel", path=path.name)
    finally:
        if raw is not None:
            raw.close()
        gateway.stop()
    med_nb, med_raw = median(nb_times), median(raw_times)
    out.rows = [
        # No target: the issue asks for the ratio (the gateway's own hop dominates both sides).
        Row("median", "ms", med_nb, med_raw, "info", None),
        Row("p95", "ms", p95(nb_times), p95(raw_times), "info", None),
    ]
    out.raw = {"nb_ms": nb_times, "raw_ms": raw_times}
    return out
