"""Kernels nb started on Jupyter gateways, as `nb status` and `nb cleanup` see them.

Each is recorded under the state dir's `gateway-kernels/` (0600, no token) by the daemon that
drives it. One whose daemon is gone is left on its gateway: the next session naming that
gateway for that notebook takes it over (its variables intact), and `nb cleanup` shuts it down
if its own environment names that gateway (it needs the token, which no record holds);
otherwise the gateway's culling is the last resort.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nb_mcp.actors.gateway_backend import RECORDS
from nb_mcp.actors.gateway_client import GatewayClient, GatewayError
from nb_mcp.actors.gateway_settings import GatewaySettings, GatewaySettingsError
from nb_mcp.supervisor import statedir


@dataclass(frozen=True)
class GatewayKernel:
    kernel_id: str
    gateway_url: str
    notebook: str
    kernel_name: str
    owner_pid: int
    owner_alive: bool
    stop_failed: str
    record_path: str

    @property
    def left(self) -> bool:
        """Its daemon is gone (or could not shut it down): nobody drives it."""
        return not self.owner_alive or bool(self.stop_failed)


def gateway_kernels(state_dir: Path) -> list[GatewayKernel]:
    found = []
    for data in statedir.read_records(state_dir / RECORDS):
        record = statedir.KernelRecord.parse(data)
        found.append(
            GatewayKernel(
                kernel_id=record.kernel_id,
                gateway_url=str(data.get("gateway_url") or "?"),
                notebook=record.notebook or "(notebook unknown)",
                kernel_name=record.kernel_name or "(kernel name unknown)",
                owner_pid=record.server_pid or 0,
                owner_alive=record.owner_alive(),
                stop_failed=str(data.get("stop_failed") or ""),
                record_path=str(record.path),
            )
        )
    return found


def describe(kernel: GatewayKernel) -> str:
    """One line for `nb status`."""
    if not kernel.left:
        state = f"running (server {kernel.owner_pid})"
    elif kernel.stop_failed:
        state = f"LEFT: its shutdown failed ({kernel.stop_failed}); `nb cleanup` retries it"
    else:
        state = (
            f"LEFT (server {kernel.owner_pid} is gone): the next session naming this gateway "
            "takes it over for its notebook; `nb cleanup` shuts it down"
        )
    return (
        f"kernel {kernel.kernel_id} on {kernel.gateway_url}  {kernel.kernel_name}  "
        f"{kernel.notebook}  {state}"
    )


def clean(state_dir: Path, env: Mapping[str, str], dry_run: bool) -> tuple[list[str], int, int]:
    """Shut down the left kernels on the gateway `env` names; return the lines to print, how
    many kernels were shut down (or would be) and how many records were removed."""
    try:
        settings = GatewaySettings.from_env(env)
    except GatewaySettingsError as error:
        settings, problem = None, str(error)
    else:
        problem = ""
    lines: list[str] = []
    stopped = removed = 0
    client: GatewayClient | None = None
    for kernel in gateway_kernels(state_dir):
        if not kernel.left:
            continue  # a live server drives it
        where = f"kernel {kernel.kernel_id} on {kernel.gateway_url} ({kernel.notebook})"
        if settings is None or settings.url != kernel.gateway_url:
            why = problem or (
                f"set JUPYTER_GATEWAY_URL={kernel.gateway_url} and its token to shut it down; "
                "or the next session naming it takes it over"
            )
            lines.append(f"left {where}: kept ({why})")
            continue
        if dry_run:
            lines.append(f"would shut down {where}")
            stopped += 1
            continue
        client = client or GatewayClient(settings)
        try:
            existed = client.delete_kernel(kernel.kernel_id)
        except GatewayError as error:
            lines.append(f"could not shut down {where}: {error}")
            continue
        statedir.remove(Path(kernel.record_path))
        removed += 1
        if existed:
            stopped += 1
            lines.append(f"shut down {where}")
        else:
            lines.append(f"forgot {where}: the gateway no longer has it")
    if client is not None:
        client.close()
    return lines, stopped, removed
