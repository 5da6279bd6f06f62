"""Reply text for an agent: short, exact, with indices and ids; long output cut with a note."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Any

from mcp_types import ImageContent, TextContent
from nb_mcp.supervisor import facade as f
from nb_mcp.supervisor.results import MARKER_PREFIX, is_marker, without_markers
from nb_mcp.supervisor.views import CellSummary, visible_stream_text

Content = TextContent | ImageContent

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp")
TRACEBACK_LINES = 12


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def clip(text: str, limit: int, what: str = "output") -> str:
    """Keep the head and, mostly, the tail of `text` (the latest lines matter most)."""
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    cut = text[head : len(text) - tail]
    note = (
        f"\n… [cut {len(cut):,} characters ({cut.count(chr(10)):,} lines) of {what}; "
        "read_cell shows one cell in full up to the reply limit] …\n"
    )
    return text[:head] + note + text[len(text) - tail :]


def text(body: str) -> TextContent:
    return TextContent(type="text", text=body)


def with_notices(body: str, notices: Iterable[str]) -> str:
    lines = [f"⚠ {notice}" for notice in notices]
    return body if not lines else body + "\n" + "\n".join(lines)


# ---------------------------------------------------------------- cells


def listing(result: f.Listing) -> str:
    total = len(result.cells)
    header = f"{result.path.name} · {total} cell{'s' if total != 1 else ''} · {result.path}"
    lines = [header] + [cell_line(cell) for cell in result.cells]
    if not result.cells:
        lines.append("(no cells: insert_cell adds one)")
    return with_notices("\n".join(lines), result.notices)


def cell_line(cell: CellSummary) -> str:
    count = ""
    if cell.cell_type == "code":
        count = f"[{cell.execution_count}]" if cell.execution_count is not None else "[ ]"
    first = cell.first_line or "(empty)"
    more = f" (+{cell.lines - 1} lines)" if cell.lines > 1 else ""
    outputs = f"  → {cell.outputs}" if cell.outputs else ""
    return f"{cell.index:>3}  {cell.cell_id}  {cell.cell_type:<8} {count:<5} {first}{more}{outputs}"


def cell_read(result: f.CellRead, max_chars: int, max_image_bytes: int) -> list[Content]:
    cell = result.cell
    count = f", execution count {cell.execution_count}" if cell.execution_count is not None else ""
    parts = [
        f"cell {cell.index} of {result.total} · id {cell.cell_id} · {cell.cell_type}{count}",
        "--- source ---",
        clip(cell.source, max_chars // 2, "source") if cell.source else "(empty)",
    ]
    images: list[Content] = []
    if cell.cell_type == "code":
        body, images = render_outputs(cell.outputs, max_chars // 2, max_image_bytes)
        parts.append(f"--- outputs ({len(without_markers(cell.outputs))}) ---")
        parts.append(body or "(none)")
    return [text(with_notices("\n".join(parts), result.notices)), *images]


def render_outputs(
    outputs: list[dict[str, Any]], max_chars: int, max_image_bytes: int
) -> tuple[str, list[Content]]:
    """Outputs as text an agent can read, images as MCP image content (size-capped)."""
    blocks: list[str] = []
    images: list[Content] = []
    for output in outputs:
        block, image = render_output(output, max_image_bytes)
        if block:
            blocks.append(block)
        if image is not None:
            images.append(image)
    return clip("\n".join(blocks), max_chars), images


def render_output(output: dict[str, Any], max_image_bytes: int) -> tuple[str, Content | None]:
    kind = output.get("output_type")
    if is_marker(output):
        return "nb: " + str(output["text"])[len(MARKER_PREFIX) :].rstrip("\n"), None
    if kind == "stream":
        body = visible_stream_text(strip_ansi(_joined(output.get("text", ""))))
        if not body:
            return "", None  # e.g. tqdm's closing newline, or a bar that cleared itself
        return f"[{output.get('name', 'stdout')}]\n{body}", None
    if kind == "error":
        return render_error(output), None
    if kind in ("display_data", "execute_result"):
        return _render_bundle(output, max_image_bytes)
    return "", None


def render_error(output: dict[str, Any]) -> str:
    ename, evalue = output.get("ename", "Error"), output.get("evalue", "")
    frames = strip_ansi("\n".join(output.get("traceback", []))).splitlines()
    tail = frames[-TRACEBACK_LINES:]
    cut = (
        f"  … ({len(frames) - len(tail)} earlier traceback lines cut)\n"
        if len(frames) > len(tail)
        else ""
    )
    hint = _HINTS.get(ename, "")
    return f"[error] {ename}: {evalue}{hint}\n{cut}" + "\n".join(f"  {line}" for line in tail)


_HINTS = {
    "StdinNotImplementedError": (
        "\n(nb runs cells without stdin, so input() cannot wait for an answer: put the value "
        "in the code instead)"
    ),
}


def _render_bundle(output: dict[str, Any], max_image_bytes: int) -> tuple[str, Content | None]:
    data = output.get("data", {})
    label = "[result]" if output.get("output_type") == "execute_result" else "[display]"
    for mime in _IMAGE_MIMES:
        if mime in data:
            return _image(mime, _joined(data[mime]), label, max_image_bytes)
    if "text/plain" in data:
        return f"{label}\n{strip_ansi(_joined(data['text/plain']))}", None
    if "text/markdown" in data:
        return f"{label} text/markdown\n{_joined(data['text/markdown'])}", None
    kinds = ", ".join(sorted(data)) or "nothing"
    return f"{label} {kinds} (no text form)", None


def _image(mime: str, encoded: str, label: str, max_bytes: int) -> tuple[str, Content | None]:
    compact = "".join(encoded.split())
    try:
        size = len(base64.b64decode(compact, validate=True))
    except (binascii.Error, ValueError):
        return f"{label} {mime} (not valid base64; not shown)", None
    if size > max_bytes:
        return (
            f"{label} {mime} {size / 1024:.0f} KB: not attached, larger than the "
            f"{max_bytes / 1024:.0f} KB limit (NB_MCP_MAX_IMAGE_BYTES)",
            None,
        )
    image = ImageContent(type="image", data=compact, mime_type=mime)
    return f"{label} {mime} {size / 1024:.1f} KB (attached)", image


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


# ---------------------------------------------------------------- edits


def edited(result: f.Edited) -> str:
    where = f"cell {result.index}" + (f" (id {result.cell_id})" if result.cell_id else "")
    action = {
        "insert_cell": f"Inserted {where}",
        "set_cell": f"Updated {where}",
        "delete_cell": f"Deleted {where}, {result.detail}",
        "move_cell": f"Moved cell {result.cell_id} {result.detail} to index {result.index}",
        "clear_outputs": f"Cleared the outputs of {where}"
        if result.detail != "all"
        else "Cleared the outputs of every code cell",
    }[result.op]
    created = f" (created {result.path})" if result.created else ""
    cells = f"{result.total} cell{'s' if result.total != 1 else ''}"
    body = f"{action} in {result.path.name}{created}; it has {cells} now."
    return with_notices(body, result.notices)


def not_written(result: f.Edited) -> str:
    return with_notices(
        f"The edit ({result.op}, cell {result.index}) was applied to nb's copy of "
        f"{result.path.name} but could NOT be written to disk: {result.write_error}. "
        "Do not repeat it: nb keeps it in memory and retries the write; the file on disk "
        "is still the previous version.",
        result.notices,
    )
