"""What the writer tells the event log, and the notices it hands the agent's next reply.

Each function emits its events and returns the notice lines; the WriterActor decides when.
"""

from __future__ import annotations

import errno
from pathlib import Path

from nb_mcp.actors import notebook as nb
from nb_mcp.actors.log import emit
from nb_mcp.actors.merge import Merged


def output_dropped(path: Path, cell_id: str, reason: str, notice: str) -> str:
    emit(
        "writer.output_dropped",
        f"output for cell {cell_id} not written to {path.name}: {reason}",
        level="warning",
        notebook=str(path),
        cell_id=cell_id,
        reason=reason,
    )
    return notice


def running_cell_dropped(path: Path, cell_id: str, reason: str, retyped: bool) -> str:
    """A running (or just finished) cell's outputs have no cell to go to."""
    what = "became a markdown or raw cell" if retyped else "was deleted from the file"
    return output_dropped(
        path,
        cell_id,
        reason,
        f"cell {cell_id} {what} while it ran; its outputs were not written "
        "(they are in this reply when the job finishes)",
    )


def merged(path: Path, result: Merged) -> list[str]:
    """A save merged: what could not be applied, and the merge itself."""
    notices = []
    for cell_id, note in result.op_notes:
        notices.append(output_dropped(path, cell_id, note, note))
    for dropped in result.dropped:
        if dropped.gone:
            notices.append(
                running_cell_dropped(path, dropped.cell_id, dropped.reason, dropped.retyped)
            )
        else:
            notices.append(
                output_dropped(
                    path,
                    dropped.cell_id,
                    dropped.reason,
                    f"cell {dropped.cell_id}: {dropped.reason} (a job's reply shows them; run "
                    "the cell again to have them in the file)",
                )
            )
    failed = len(result.op_notes) + len(result.dropped)
    restored = len(result.restored)
    emit(
        "writer.external_change_merged",
        f"{path.name} changed on disk; reloaded it and re-applied {result.reapplied} pending "
        "changes"
        + (f", put back the outputs of {restored} cells" if restored else "")
        + (f", {failed} could not be applied" if failed else ""),
        notebook=str(path),
        reapplied=result.reapplied,
        dropped=failed,
        restored=restored,
    )
    return notices


def restored(path: Path, cell_ids: list[str]) -> str:
    shown = ", ".join(cell_ids[:5]) + (
        f" and {len(cell_ids) - 5} more" if len(cell_ids) > 5 else ""
    )
    return (
        f"{path.name} was overwritten with a copy older than nb's outputs (an editor that had "
        f"not reloaded it?): nb put back the outputs of cells {shown}; reload the notebook in "
        "that editor"
    )


def deleted(path: Path, running: int) -> str:
    emit(
        "notebook.deleted",
        f"{path.name} was deleted on disk; nb does not re-create it"
        + (f" (its {running} running cell keeps its outputs for the reply)" if running else ""),
        level="warning",
        notebook=str(path),
        running_cells=running,
    )
    return (
        f"{path.name} was deleted on disk; nb will not write it again"
        + ("; the running job's outputs are kept for its reply" if running else "")
        + " (insert_cell creates a new notebook there)"
    )


def is_deleted_notice(notice: str) -> bool:
    return "was deleted on disk; nb will not write it again" in notice


def created_anew(path: Path) -> str:
    return (
        f"{path.name} had been deleted on disk; nb created a new notebook (nothing of the "
        "deleted one is brought back)"
    )


def created_again(path: Path) -> str:
    return (
        f"{path.name} was created again on disk; nb reads the new file (nothing of the "
        "deleted one is brought back)"
    )


def read(path: Path, upgrade: nb.Upgrade, stale: int) -> None:
    """What reading the file changed: ids given, an upgrade, stale markers replaced."""
    if upgrade.changed:
        emit(
            "notebook.upgraded",
            f"{path.name}: gave {upgrade.ids_added} cells ids"
            + (
                f", upgraded from nbformat {upgrade.from_version} to 4.5"
                if upgrade.from_version
                else ""
            ),
            notebook=str(path),
            ids_added=upgrade.ids_added,
            from_version=upgrade.from_version or "4.5",
        )
    if stale:
        emit(
            "notebook.stale_markers_replaced",
            f"{path.name}: {stale} cells had Running/Queued markers from a server that stopped",
            notebook=str(path),
            cells=stale,
        )


def flush_failed(path: Path, error: OSError, delay: float | None) -> str:
    """A write failed; return the reason in words. `delay`: until the retry (None: none)."""
    reason = describe(error)
    emit(
        "writer.flush_failed",
        f"could not write {path.name}: {reason}; kept in memory"
        + ("" if delay is None else f", retrying in {delay:g}s"),
        level="error",
        notebook=str(path),
        error=reason,
        errno=error.errno,
        retry_in_sec=0.0 if delay is None else delay,
    )
    return reason


def flush_recovered(path: Path, failed_for: float) -> str:
    emit(
        "writer.flush_recovered",
        f"{path.name} written again after {failed_for:.1f}s of failed writes",
        notebook=str(path),
        failed_for_sec=round(failed_for, 3),
    )
    return f"{path.name} is written to disk again"


def failing(path: Path, seconds: float, reason: str) -> str:
    return (
        f"{path.name} could not be written for {seconds:.0f}s ({reason}); nb keeps its changes "
        "in memory and retries (the file on disk is the last good version)"
    )


def describe(error: OSError) -> str:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full ({error.strerror})"
    if error.errno == errno.EFBIG:
        return f"file size limit reached ({error.strerror})"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"not writable ({error.strerror}: {error.filename or ''})".replace(": )", ")")
    return error.strerror or str(error)
