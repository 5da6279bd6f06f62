"""A remote kernel an earlier daemon left running a cell: taken over when its notebook opens.

A local kernel left by a killed daemon is taken over as the next daemon starts (supervisor/
takeover.py). A gateway's kernel cannot be: its record holds no token, so only a session whose
environment names that gateway can reach it. When such a session is the first to open the
notebook, and the record says a cell was running, the notebook's subtree starts with the kernel
inherited and a `resumed` job that claims the running request by its msg_id, exactly as a local
takeover does: the cell is live again in the file, its later output streams in, and its footer
is written when the kernel says it finished. The gateway replays what it buffered for the
recorded websocket session while no daemon was connected (jupyter_server does, in memory, from
the moment it notices the old connection closed: what it sent the killed daemon before that is
lost); the cell's note says output may be missing.

A kernel with no cell in flight is left to the lazy takeover at its next start
(actors/session_backends.py); a kernel the gateway no longer has is forgotten, and the cell's
stale marker is replaced when the file is read, as for any server that stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nb_mcp.actors.backend import KernelStartError
from nb_mcp.actors.environment import KernelChoice
from nb_mcp.actors.gateway_backend import GatewayBackend, KernelGone, gateway_records
from nb_mcp.actors.gateway_settings import GatewaySettings, GatewaySettingsError
from nb_mcp.actors.job import JobSpec
from nb_mcp.actors.kernel_process import Inheritance
from nb_mcp.actors.launch import KernelLaunch
from nb_mcp.actors.log import emit
from nb_mcp.supervisor import statedir
from nb_mcp.supervisor.notebook_tree import TakenOver
from nb_mcp.supervisor.takeover import resumed_of


def running_cell_left(
    notebook: Path, env: Mapping[str, str], session_id: str, state_dir: Path
) -> TakenOver | None:
    """The remote kernel and its running cell's job, if an earlier daemon left this notebook's
    kernel running a cell on the gateway `env` names and the gateway still has it; else None."""
    try:
        settings = GatewaySettings.from_env(env)
    except GatewaySettingsError:
        return None  # the session's start reports it
    if settings is None:
        return None
    record = _left_running_a_cell(state_dir, notebook, settings.url)
    if record is None:
        return None
    resumed = resumed_of(record.get("in_flight"))
    try:
        backend = GatewayBackend.reattach(record, settings, state_dir)
    except KernelGone as gone:
        _not_taken_over(notebook, str(gone))
        return None
    except KernelStartError:
        return None  # the gateway cannot be asked now: the record stays, the next start retries
    except (KeyError, TypeError, ValueError) as error:  # never a notebook that cannot open
        statedir.remove(Path(record["record_path"]))
        _not_taken_over(notebook, f"its record is unusable ({error!r})")
        return None
    choice = KernelChoice(
        kernelspec=backend.kernel_name,
        display_name=backend.kernel_name,
        language="",
        rule=f"taken over from a daemon that stopped, on the gateway at {settings.url}",
    )
    inheritance = Inheritance(backend, choice, record.get("started_at"), resumed)
    if resumed is None:
        return TakenOver(inheritance)
    job = JobSpec(
        job_id=resumed.job_id,
        notebook=notebook,
        kind="resumed",
        cell_ids=(resumed.cell_id,),
        # The session's launch: a restart of this kernel goes to the same gateway, never here.
        launch=KernelLaunch(choice=choice, env=dict(env), session_id=session_id),
        timeout=None,
        resumed=resumed,
    )
    return TakenOver(inheritance, job)


def _left_running_a_cell(state_dir: Path, notebook: Path, url: str) -> dict[str, Any] | None:
    found = [
        record
        for record in gateway_records(state_dir)
        if record.get("notebook") == str(notebook)
        and record.get("gateway_url") == url
        and record.get("in_flight")
        and not record.get("stop_failed")
        and not statedir.KernelRecord.parse(record).owner_alive()
    ]
    found.sort(key=lambda record: record.get("started_at") or 0.0, reverse=True)
    return found[0] if found else None


def _not_taken_over(notebook: Path, why: str) -> None:
    emit(
        "kernel.stopped",
        f"the remote kernel an earlier server left for {notebook.name} running a cell was not "
        f"taken over: {why}",
        level="warning",
        notebook=str(notebook),
        reason=f"left by a server that stopped; {why}",
        kernel_pid=None,
    )
