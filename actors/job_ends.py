"""What a job says as its cells end and as it ends: the `cell.finished` and `job.finished`
events, and the one-line reason a failed cell gives its job (in the reply, the job's record and
`job.finished`)."""

from __future__ import annotations

from nb_mcp.actors.job_data import CellRun, JobSnapshot, JobSpec
from nb_mcp.actors.log import emit
from nb_mcp.actors.notebook import format_duration
from nb_mcp.actors.run_states import CellState, JobState


def cell_finished(run: CellRun, spec: JobSpec, total: int) -> None:
    emit(
        "cell.finished",
        f"cell {run.position}/{total} {run.state}"
        + (f": {run.ename}: {run.evalue}" if run.ename else "")
        + (f" ({run.detail})" if run.detail and not run.ename else ""),
        level="info" if run.state in (CellState.OK, CellState.SKIPPED) else "warning",
        job_id=spec.job_id,
        notebook=str(spec.notebook),
        cell_id=run.cell_id,
        cell_index=run.index,
        status=run.state,
        duration_sec=round(run.duration or 0.0, 3),
        ename=run.ename,
        evalue=(run.evalue or "")[:500] if run.ename else None,
    )


def job_finished(snapshot: JobSnapshot, took: float) -> None:
    counts = {state: sum(1 for c in snapshot.cells if c.state is state) for state in CellState}
    emit(
        "job.finished",
        f"job {snapshot.job_id} on {snapshot.notebook.name}: {snapshot.state}"
        + (f" ({snapshot.reason})" if snapshot.reason else "")
        + f" in {format_duration(took)}",
        level="info" if snapshot.state is JobState.OK else "warning",
        job_id=snapshot.job_id,
        notebook=str(snapshot.notebook),
        status=snapshot.state,
        duration_sec=round(took, 3),
        cells_ok=counts[CellState.OK],
        cells_error=sum(count for state, count in counts.items() if state.failed),
        cells_skipped=sum(
            count
            for state, count in counts.items()
            if state.ran_nothing or state is CellState.CANCELLED
        ),
        reason=snapshot.reason or None,
    )


def failure_reason(run: CellRun) -> str:
    where = f"cell {run.position}" + (
        f" ([{run.index}] {run.cell_id})" if run.index is not None else ""
    )
    if run.state is CellState.TIMEOUT:
        return f"{where} timed out"
    if run.state is CellState.DIED:
        return f"the kernel died in {where}"
    if not run.ename:
        return f"{where} failed"
    return f"{where} failed: {run.ename}" + (f": {run.evalue}" if run.evalue else "")
