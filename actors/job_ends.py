"""What a job says as its cells end: the `cell.finished` event and the one-line reason a
failed cell gives its job (in the reply, the job's record and `job.finished`)."""

from __future__ import annotations

from nb_mcp.actors.job_data import CellRun, JobSpec
from nb_mcp.actors.log import emit
from nb_mcp.actors.run_states import CellState


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
