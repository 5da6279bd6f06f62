"""Where a launch's kernel runs: on this machine, or on the gateway its session names.

The choice is the session's, made per launch from the environment it carries: a session whose
environment has `JUPYTER_GATEWAY_URL` gets a GatewayBackend, always (a gateway that refuses or
cannot be reached is a start failure naming it, never a local kernel instead); any other gets
the local backend. So one project can use a cluster while another runs locally on one daemon.

A remote kernel an earlier daemon started for this notebook on the same gateway, and that
nobody drives now (its recording daemon is gone), is taken over instead of starting another:
the records hold no token, so it is the first session that names that gateway for the
notebook which brings the credentials to reattach (see README "Running kernels on a cluster").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb_mcp.actors.backend import KernelBackend, KernelStartError, LocalBackends
from nb_mcp.actors.gateway_backend import GatewayBackend, gateway_records
from nb_mcp.actors.gateway_settings import GatewaySettings, GatewaySettingsError
from nb_mcp.actors.launch import KernelLaunch
from nb_mcp.supervisor import statedir


@dataclass(frozen=True)
class SessionBackends:
    """Makes a notebook's kernels: each launch's where its session says."""

    local: LocalBackends

    def __call__(self, launch: KernelLaunch) -> KernelBackend:
        try:
            settings = GatewaySettings.from_env(launch.env)
        except GatewaySettingsError as error:
            raise KernelStartError(str(error)) from None
        if settings is None:
            return self.local(launch)
        if launch.choice.environment is not None:
            raise KernelStartError(
                f"kernels of this session run on the gateway at {settings.url}, which cannot "
                f"run the local Python environment {launch.choice.environment}; pass one of "
                "the gateway's kernelspecs as kernel_name (list_kernels shows them)"
            )
        name = launch.choice.kernelspec or "python3"
        backend = GatewayBackend(settings, name, self.local.state_dir, self.local.notebook)
        left = left_behind(self.local.state_dir, self.local.notebook, settings.url, name)
        if left is not None:
            backend.adopt_on_start(left)
        return backend


def left_behind(state_dir: Path, notebook: Path, url: str, name: str) -> dict[str, Any] | None:
    """The record of this notebook's kernel on this gateway that an earlier daemon left (its
    owner is gone), newest first; None if there is none."""
    found = [
        record
        for record in gateway_records(state_dir)
        if record.get("notebook") == str(notebook)
        and record.get("gateway_url") == url
        and record.get("kernel_name") == name
        and not record.get("stop_failed")
        and not statedir.KernelRecord.parse(record).owner_alive()
    ]
    found.sort(key=lambda record: record.get("started_at") or 0.0, reverse=True)
    return found[0] if found else None
