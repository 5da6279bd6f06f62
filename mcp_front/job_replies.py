"""Reply text about jobs: finished (with outputs), still going (with the Monitor command)."""

from __future__ import annotations

import shlex
import time

from nb_mcp.mcp_front.replies import Content, clip, render_outputs, text, with_notices
from nb_mcp.supervisor.results import (
    OUTPUTS_KEPT,
    CellOutputs,
    CellRun,
    CellState,
    JobSnapshot,
    JobState,
    ServerStatus,
    format_duration,
)

_ICONS = {
    CellState.OK: "✓",
    CellState.ERROR: "✗",
    CellState.TIMEOUT: "⏱",
    CellState.DIED: "✗",
    CellState.SKIPPED: "⊘",
    CellState.CANCELLED: "⊘",
    CellState.LOST: "⊘",
    CellState.QUEUED: "⏳",
    CellState.RUNNING: "▶",
}


def monitor_command(snapshot: JobSnapshot) -> str:
    return f"nb watch --job {snapshot.job_id} --path {shlex.quote(str(snapshot.notebook))}"


def finished(
    snapshot: JobSnapshot,
    outputs: list[CellOutputs] | None,
    max_chars: int,
    max_image_bytes: int,
    notes: list[str],
) -> list[Content]:
    took = (snapshot.finished_at or time.time()) - snapshot.submitted_at
    header = (
        f"Job {snapshot.job_id} on {snapshot.notebook.name}: {snapshot.state}"
        f" · {len(snapshot.cells)} cell{'s' if len(snapshot.cells) != 1 else ''}"
        f" · {format_duration(took)}"
    )
    if snapshot.reason:
        header += f"\n{snapshot.reason}"
    if snapshot.outputs_released:
        header += "\n" + (
            "This job ended long ago: its own outputs are no longer kept (nb keeps those of "
            f"the last {OUTPUTS_KEPT} finished jobs), so "
            + (
                "there are none to show."
                if snapshot.kind == "run_scratch"
                else "the cells show what the notebook holds now."
            )
        )
    blocks = [header]
    images: list[Content] = []
    by_id = {out.cell_id: out for out in outputs or []}
    with_output = [
        c for c in snapshot.cells if not c.state.ran_nothing and c.state is not CellState.QUEUED
    ]
    budget = max(1000, max_chars // max(1, len(with_output)))
    for cell in snapshot.cells:
        blocks.append(_cell_header(cell, len(snapshot.cells), by_id.get(cell.cell_id)))
        if snapshot.kind == "run_scratch":
            body, found = render_outputs(list(snapshot.scratch_outputs), budget, max_image_bytes)
        elif cell.cell_id in by_id and cell in with_output:
            body, found = render_outputs(by_id[cell.cell_id].outputs, budget, max_image_bytes)
        else:
            body, found = "", []
        if body:
            blocks.append(body)
        images.extend(found)
    reply = clip("\n".join(blocks), max_chars, "the reply")
    return [text(with_notices(reply, notes)), *images]


def _cell_header(cell: CellRun, total: int, out: CellOutputs | None) -> str:
    where = f"cell {cell.position}/{total}"
    index = out.index if out is not None else cell.index
    if cell.cell_id != "scratch":
        where += f" · [{index}] {cell.cell_id}" if index is not None else f" · {cell.cell_id}"
    parts = [f"── {where}", f"{_ICONS[cell.state]} {cell.state}"]
    if cell.duration is not None and not cell.state.ran_nothing:
        parts.append(format_duration(cell.duration))
    count = out.execution_count if out is not None else cell.execution_count
    if count is not None:
        parts.append(f"[{count}]")
    if cell.detail:
        parts.append(f"({cell.detail})")
    if out is not None and out.index is None and not cell.state.ran_nothing:
        parts.append("(deleted from the file while it ran; outputs shown here only)")
    return " · ".join(parts)


def timing(cell: CellRun, now: float, tail: bool = True) -> str:
    """How long a running cell has run and when it last printed (what the agent needs)."""
    parts = []
    if cell.started_at:
        parts.append(f"running {format_duration(now - cell.started_at)}")
    if cell.last_output_at:
        last = f"last output {format_duration(now - cell.last_output_at)} ago"
        parts.append(last + (f": {cell.tail[:80]}" if tail and cell.tail else ""))
    return ", ".join(parts)


STARTING = (
    "waiting for the kernel to start (a kernel on a cluster may take minutes: an image pull; "
    "bounded by KERNEL_LAUNCH_TIMEOUT and NB_MCP_KERNEL_START_TIMEOUT_SEC)"
)


def describe_progress(snapshot: JobSnapshot) -> str:
    done = sum(
        1 for cell in snapshot.cells if cell.state not in (CellState.QUEUED, CellState.RUNNING)
    )
    total = len(snapshot.cells)
    if snapshot.state is JobState.QUEUED:
        return _queued(snapshot.ahead)
    if snapshot.kernel_starting:
        return f"{done}/{total} done; {STARTING}"
    running = snapshot.running
    if running is None:
        return f"{done}/{total} cells done"
    where = f" ([{running.index}] {running.cell_id})" if running.index is not None else ""
    details = timing(running, time.time())
    return f"{done}/{total} done; cell {running.position}/{total}{where}" + (
        f" {details}" if details else ""
    )


def _queued(ahead: int) -> str:
    if ahead == 0:  # submitted a moment ago: its place in the kernel's queue is not known yet
        return "waiting for its turn on the kernel"
    return f"queued behind {ahead} job{'s' if ahead != 1 else ''}"


def pending(snapshot: JobSnapshot, waited: float, clamp_note: str, notes: list[str]) -> str:
    state = "queued" if snapshot.state is JobState.QUEUED else "running"
    lines = [
        f"Job {snapshot.job_id} on {snapshot.notebook.name} is {state} after "
        f"{format_duration(waited)}: {describe_progress(snapshot)}.",
    ]
    if clamp_note:
        lines.append(clamp_note)
    lines += [
        "Follow it with the Monitor tool (prints its events, exits when it ends):",
        f"  {monitor_command(snapshot)}",
        f'or call exec_status(job_id="{snapshot.job_id}", block_for=30).',
    ]
    return with_notices("\n".join(lines), notes)


def table(snapshot: JobSnapshot) -> str:
    now = time.time()
    lines = [f"Job {snapshot.job_id} on {snapshot.notebook} · {snapshot.kind} · {snapshot.state}"]
    if snapshot.state is JobState.QUEUED:
        lines.append(_queued(snapshot.ahead))
    if snapshot.kernel_starting:
        lines.append(STARTING)
    for cell in snapshot.cells:
        row = f"{_ICONS[cell.state]} {cell.position:>3}  {cell.cell_id}  {cell.state}"
        if cell.index is not None:
            row += f"  index {cell.index}"
        if cell.state is not CellState.RUNNING and cell.duration is not None:
            row += f"  {format_duration(cell.duration)}"
        row += "  " + timing(cell, now, tail=False) if cell.state is CellState.RUNNING else ""
        if cell.ename:
            row += f"  {cell.ename}: {(cell.evalue or '')[:80]}"
        elif cell.detail:
            row += f"  ({cell.detail})"
        lines.append(row)
    if not snapshot.done:
        lines.append(f"Monitor: {monitor_command(snapshot)}")
    return "\n".join(lines)


def server_status(status: ServerStatus) -> str:
    lines = [
        f"nb {status.version} · pid {status.pid} · up {format_duration(status.uptime_sec)}"
        f" · log {status.log_path}",
        "Kernels:" if status.kernels else "Kernels: none running",
    ]
    for kernel in status.kernels:
        info = kernel.info
        where = f"pid {info.pid or '-'}"
        if info.gateway_url:
            where = f"kernel {info.kernel_id} on {info.gateway_url}"
        row = f"  {kernel.notebook}  {info.kernel_name or '-'}  {where}  {info.state}"
        if info.running_job:
            row += f"  job {info.running_job}"
            if info.running_cell:
                row += f" (cell {info.running_cell})"
        if info.queued_jobs:
            row += f"  queued: {', '.join(info.queued_jobs)}"
        lines.append(row)
    active = [job for job in status.jobs if not job.done]
    recent = [job for job in status.jobs if job.done]
    lines.append("Active jobs:" if active else "Active jobs: none")
    lines += [f"  {_job_line(job)}" for job in active]
    if recent:
        lines.append("Recent jobs:")
        lines += [f"  {_job_line(job)}" for job in recent[:10]]
    return "\n".join(lines)


def _job_line(job: JobSnapshot) -> str:
    now = time.time()
    line = f"{job.job_id}  {job.notebook.name}  {job.kind}  {job.state}"
    if job.done and job.finished_at:
        line += (
            f"  {format_duration(job.finished_at - job.submitted_at)}, "
            f"ended {format_duration(now - job.finished_at)} ago"
        )
    else:
        line += f"  {describe_progress(job)}"
    return line
