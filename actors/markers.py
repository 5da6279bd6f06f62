"""nb's markers in a cell's outputs (stderr stream outputs prefixed `[nb mcp]`): Queued,
Running, Done, Error, Skipped, and the one a stopped server leaves. Pure: no I/O."""

from __future__ import annotations

import time
from typing import Any

from nbformat import NotebookNode

MARKER_PREFIX = "[nb mcp] "
RUNNING, QUEUED = "▶ Running", "⏳ Queued"


def clock(at: float | None = None) -> str:
    """Wall-clock time with its zone, as a person reading the notebook wants it."""
    return time.strftime("%H:%M:%S %Z", time.localtime(time.time() if at is None else at))


def marker(text: str) -> NotebookNode:
    return NotebookNode(output_type="stream", name="stderr", text=f"{MARKER_PREFIX}{text}\n")


def is_marker(output: Any) -> bool:
    return (
        output.get("output_type") == "stream"
        and output.get("name") == "stderr"
        and str(output.get("text", "")).startswith(MARKER_PREFIX)
    )


def without_markers(outputs: list[Any]) -> list[Any]:
    return [output for output in outputs if not is_marker(output)]


def queued_marker(position: int, of: int, job_id: str, at: float) -> NotebookNode:
    return marker(f"{QUEUED} ({position}/{of}, job {job_id}, since {clock(at)})")


def running_marker(position: int, of: int, started: float) -> NotebookNode:
    return marker(f"{RUNNING} ({position}/{of}, started {clock(started)})")


def done_marker(finished: float, duration: float) -> NotebookNode:
    return marker(f"✓ Done at {clock(finished)} · ran {format_duration(duration)}")


def error_marker(finished: float, duration: float, detail: str = "") -> NotebookNode:
    suffix = f" · {detail}" if detail else ""
    return marker(f"✗ Error at {clock(finished)} · ran {format_duration(duration)}{suffix}")


def footer(status: str, finished: float, duration: float, ename: str | None = None) -> NotebookNode:
    """The marker a finished cell ends with, by how it ended."""
    ran = format_duration(duration)
    if status == "ok":
        return done_marker(finished, duration)
    if status == "timeout":
        return marker(
            f"⏱ Timed out at {clock(finished)} · ran {ran} (wall-clock timeout); "
            "the kernel was interrupted"
        )
    if status == "died":
        return marker(f"✗ Kernel died at {clock(finished)} · ran {ran}")
    return error_marker(finished, duration, ename or "")


def skipped_marker(reason: str = "earlier cell errored") -> NotebookNode:
    return marker(f"⊘ Skipped ({reason})")


def stopped_marker(at: float) -> NotebookNode:
    return marker(
        f"⚠ The nb server stopped before this cell finished (found at {clock(at)}); "
        "outputs below are what was saved before it stopped"
    )


def is_pending_marker(output: Any) -> bool:
    """A Running or Queued marker: only true while a server is working on the cell."""
    text = str(output.get("text", ""))
    return is_marker(output) and text[len(MARKER_PREFIX) :].startswith((RUNNING, QUEUED))


def replace_stale_markers(
    notebook: NotebookNode, at: float, keep: frozenset[str] | set[str] = frozenset()
) -> int:
    """Replace Running/Queued markers a stopped server left behind; return how many cells.

    `keep`: ids of cells whose markers are this server's own (it is running or queueing them).
    """
    cells = 0
    for cell in notebook.cells:
        if cell["id"] in keep:
            continue
        outputs = cell.get("outputs") or []
        if any(is_pending_marker(output) for output in outputs):
            cell["outputs"] = [stopped_marker(at)] + [o for o in outputs if not is_marker(o)]
            cells += 1
    return cells


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"
