"""What the facade hands the front about a notebook: plain dataclasses, built in the writer.

These readers run inside the WriterActor (through `query`), so they copy what they return:
the document keeps changing after the reply leaves.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from nb_mcp.actors import notebook as nb
from nbformat import NotebookNode

_LINE_WIDTH = 72


@dataclass(frozen=True)
class CellSummary:
    index: int
    cell_id: str
    cell_type: str
    execution_count: int | None
    first_line: str
    lines: int
    outputs: str  # a short summary, "" when there are none


@dataclass(frozen=True)
class CellView:
    index: int
    cell_id: str
    cell_type: str
    execution_count: int | None
    source: str
    outputs: list[dict[str, Any]]  # copies, markers included


def summaries(notebook: NotebookNode) -> list[CellSummary]:
    return [summarize(index, cell) for index, cell in enumerate(notebook.cells)]


def summarize(index: int, cell: NotebookNode) -> CellSummary:
    source = cell.get("source", "")
    lines = source.splitlines()
    first = next((line.strip() for line in lines if line.strip()), "")
    return CellSummary(
        index=index,
        cell_id=cell["id"],
        cell_type=cell["cell_type"],
        execution_count=cell.get("execution_count"),
        first_line=_clip(first, _LINE_WIDTH),
        lines=len(lines),
        outputs=summarize_outputs(cell.get("outputs", [])),
    )


def view(notebook: NotebookNode, index: int) -> CellView:
    cell = notebook.cells[index]
    return CellView(
        index=index,
        cell_id=cell["id"],
        cell_type=cell["cell_type"],
        execution_count=cell.get("execution_count"),
        source=cell.get("source", ""),
        outputs=copy.deepcopy(list(cell.get("outputs", []))),
    )


def summarize_outputs(outputs: list[Any]) -> str:
    parts: list[str] = []
    stream_lines: dict[str, int] = {}
    stream_part: dict[str, int] = {}  # where in parts each stream's line count goes
    for output in outputs:
        kind = output.get("output_type")
        if nb.is_marker(output):
            parts.append(_clip(output["text"][len(nb.MARKER_PREFIX) :].strip(), 48))
        elif kind == "stream":
            name = output.get("name", "stdout")
            shown = visible_stream_text(_joined(output.get("text", "")))
            if not shown:
                continue  # only blanks once overwritten (a cleared progress bar): nothing to see
            if name not in stream_lines:
                stream_lines[name] = 0
                stream_part[name] = len(parts)
                parts.append("")
            stream_lines[name] += len(shown.splitlines())
        elif kind in ("display_data", "execute_result"):
            parts.append(_describe_bundle(output.get("data", {}), kind == "execute_result"))
        elif kind == "error":
            parts.append(_clip(f"{output.get('ename', 'Error')}: {output.get('evalue', '')}", 60))
    for name, count in stream_lines.items():
        parts[stream_part[name]] = f"{name} {count} line{'s' if count != 1 else ''}"
    return " · ".join(parts)


def _describe_bundle(data: dict[str, Any], is_result: bool) -> str:
    for mime in ("image/png", "image/jpeg", "image/svg+xml", "image/gif"):
        if mime in data:
            return mime
    if "text/html" in data and "text/plain" not in data:
        return "text/html"
    plain = str(data.get("text/plain", ""))
    if plain:
        first = plain.splitlines()[0] if plain.splitlines() else ""
        return ("result: " if is_result else "") + _clip(first, 48)
    return next(iter(data), "empty display")


def visible_stream_text(text: str) -> str:
    """Stream text as a front end shows it: each line's carriage-return overwrites applied,
    trailing blanks dropped ("" for a progress bar that cleared itself, or a lone newline)."""
    lines = []
    for line in text.split("\n"):
        shown = ""
        for part in line.split("\r"):
            shown = part + shown[len(part) :]  # what follows a \r overwrites from column 0
        lines.append(shown)
    return "\n".join(lines).rstrip()


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
