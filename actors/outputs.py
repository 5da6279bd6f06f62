"""Jupyter iopub messages -> nbformat v4 outputs, as JupyterLab would save them.

Pure: no I/O, no threads, no actors. The WriterActor owns the outputs lists; this module only
edits the lists it is handed.

Stream text semantics. JupyterLab merges contiguous stream outputs of the same name and, on
the merged text, removes what backspaces and carriage returns overwrite (`fixBackspace` then
`fixCarriageReturn`, or since 4.3 a cursor it keeps in memory). Kernels split text into
messages at arbitrary points, so the result must not depend on where the chunks end. We
therefore run the text through one left-to-right line machine, a line being
`(buf, col)`: the characters on it and the cursor column.

- a text character overwrites `buf[col]` (or appends at the end) and moves the cursor on;
- `\\n` ends the line with `buf` as it stands (so `\\r+\\n` is just `\\n`);
- `\\r` (any run of them) moves the cursor to column 0: what follows overwrites;
- `\\b` with the cursor at the end deletes the character before it (JupyterLab, not a
  terminal, which would only move the cursor), so n backspaces delete n characters (as
  JupyterLab >= 4.1 counts them; its older regex paired "\\b\\b" off, which depends on the
  chunking); on an empty line it stays as a character, as JupyterLab keeps a backspace at a
  line start, and the next backspace deletes it; right after a `\\r` it cancels that `\\r`
  (JupyterLab's backspace removes the `\\r` character itself); mid-overwrite it moves the
  cursor left, as a terminal does (JupyterLab would restore the overwritten character; we
  no longer have it).

The normalized text is the finished lines plus the last line encoded so that running the
machine over it restores exactly its `(buf, col)`: `buf` when the cursor is at its end, else
`buf + "\\r" + buf[:col]`. That keeps a trailing `\\r` ("abc\\r" then "def" gives "def") and the
rare unfinished overwrite ("abcdef\\rxy" is kept as "xycdef\\rxy", which every front end shows
as "xycdef", so a later "z" gives "xyzdef"). Finished lines never hold a `\\r`. Hence
`merge_stream_text` only re-reads the last line: the cost of a merge is that line plus the new
chunk, and a 10,000-update progress bar stays one line.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nb_mcp.actors import notebook as nb

__all__ = ["Applied", "OutputBuilder", "last_line", "merge_stream_text"]


_DISPLAY_TYPES = ("display_data", "execute_result")

# A run of carriage returns acts as one; backspaces are counted, so they come as a run too.
_CONTROL = re.compile("(\r+|\x08+)")


# ---------------------------------------------------------------- stream text


def merge_stream_text(previous: str, new: str) -> str:
    """Return the normalized `previous + new`; `previous` must already be normalized."""
    if _extends(previous, new):
        return previous + new
    start = previous.rfind("\n") + 1
    return previous[:start] + _normalize(previous[start:] + new)


def _extends(previous: str, new: str) -> bool:
    """Whether `new` just goes on after `previous`: the cursor is at the end of the last
    line (no pending `\\r`) and nothing in `new` moves it back."""
    if "\r" in new or "\b" in new:
        return False
    return previous.find("\r", previous.rfind("\n") + 1) == -1


def last_line(text: str) -> str:
    """The last line a reader sees (after `\\r`/`\\b`), stripped; "" if there is none."""
    end = len(text)
    while True:
        start = text.rfind("\n", 0, end) + 1
        buf, _ = _run_line(text[start:end])
        visible = buf.replace("\b", "").strip()
        if visible or start == 0:
            return visible
        end = start - 1


def _normalize(text: str) -> str:
    """Normalize a text that starts at the beginning of a line."""
    *finished, last = text.split("\n")
    lines = [_finished_line(line) for line in finished]
    lines.append(_encode(*_run_line(last)))
    return "\n".join(lines)


def _finished_line(line: str) -> str:
    if "\r" not in line and "\b" not in line:
        return line
    buf, _ = _run_line(line)
    return buf


def _encode(buf: str, col: int) -> str:
    """The shortest text that brings the line machine back to `(buf, col)`."""
    if col == len(buf):
        return buf
    return f"{buf}\r{buf[:col]}"


def _run_line(line: str) -> tuple[str, int]:
    """Run the line machine over one line (no `\\n` in it) from an empty line."""
    buf, col = "", 0
    for token in _CONTROL.split(line):
        if not token:
            continue
        if token[0] == "\r":
            col = 0
        elif token[0] == "\b":
            buf, col = _backspaces(buf, col, len(token))
        else:
            buf = buf[:col] + token + buf[col + len(token) :]
            col += len(token)
    return buf, col


def _backspaces(buf: str, col: int, count: int) -> tuple[str, int]:
    """Apply a run of backspaces, many characters at a time (a run can be long)."""
    while count:
        if not buf:
            # Pairs cancel: JupyterLab's fixBackspace lets a backspace remove a backspace.
            return ("\b", 1) if count % 2 else ("", 0)
        if col == 0:
            col, count = len(buf), count - 1  # cancels the pending \r
        elif col < len(buf):
            step = min(count, col)
            col, count = col - step, count - step
        else:
            step = min(count, len(buf))
            buf, count = buf[: len(buf) - step], count - step
            col = len(buf)
    return buf, col


# ---------------------------------------------------------------- outputs


@dataclass
class Applied:
    changed: set[str]  # keys of cells whose outputs changed; empty if nothing changed
    execution_count: int | None  # set when the message carried one, else None


@dataclass
class _Display:
    """Where an output shown under a display id lives, and the data we last put there."""

    cell_key: str
    index: int
    data: dict[str, Any]  # our own copy: finds the output again if the list was shifted


OutputsOf = Callable[[str], list[dict[str, Any]] | None]


class OutputBuilder:
    """Builds the outputs of a notebook's cells from iopub messages.

    One per notebook: display ids span cells. It holds no output dicts between calls; the
    owner may replace lists and dicts at any time (e.g. after reloading the file), so every
    call resolves cells through `outputs_of`.
    """

    def __init__(self, outputs_of: OutputsOf) -> None:
        self._outputs_of = outputs_of
        self._displays: dict[str, list[_Display]] = {}
        self._clear_pending: set[str] = set()

    def apply(self, cell_key: str, msg_type: str, content: dict[str, Any]) -> Applied:
        if msg_type == "execute_input":
            return Applied(set(), content.get("execution_count"))
        if msg_type == "clear_output":
            return self._clear_output(cell_key, bool(content.get("wait", False)))
        if msg_type == "update_display_data":
            return Applied(self._update_display(content), None)
        if msg_type != "stream" and msg_type not in _BUILDERS:
            return Applied(set(), None)  # status, execute_reply, comm_*, ...: nothing to show
        count = content.get("execution_count") if msg_type == "execute_result" else None
        return Applied(self._add(cell_key, msg_type, content), count)

    def forget(self, cell_key: str) -> None:
        """Someone else cleared or replaced this cell's outputs."""
        self._clear_pending.discard(cell_key)
        for display_id in list(self._displays):
            kept = [d for d in self._displays[display_id] if d.cell_key != cell_key]
            if kept:
                self._displays[display_id] = kept
            else:
                del self._displays[display_id]

    def clear(self, cell_key: str) -> None:
        outputs = self._outputs_of(cell_key)
        if outputs:
            outputs.clear()
        self.forget(cell_key)

    # ------------------------------------------------------------ messages

    def _clear_output(self, cell_key: str, wait: bool) -> Applied:
        if wait:
            # JupyterLab keeps the old outputs on screen until the next one arrives, so a
            # loop of clear_output(wait=True) + print does not flicker.
            if self._outputs_of(cell_key) is not None:
                self._clear_pending.add(cell_key)
            return Applied(set(), None)
        outputs = self._outputs_of(cell_key)
        had_outputs = bool(outputs)
        self.clear(cell_key)
        return Applied({cell_key} if had_outputs else set(), None)

    def _add(self, cell_key: str, msg_type: str, content: dict[str, Any]) -> set[str]:
        outputs = self._outputs_of(cell_key)
        if outputs is None:
            self.forget(cell_key)  # the cell is gone, and so is anything we knew about it
            return set()
        changed = False
        if cell_key in self._clear_pending:
            changed = bool(outputs)
            outputs.clear()
            self.forget(cell_key)
        if msg_type == "stream":
            changed |= _add_stream(outputs, content)
        else:
            outputs.append(_BUILDERS[msg_type](content))
            self._register(cell_key, len(outputs) - 1, content)
            changed = True
        return {cell_key} if changed else set()

    def _register(self, cell_key: str, index: int, content: dict[str, Any]) -> None:
        display_id = _display_id(content)
        if display_id is None:
            return
        data = copy.deepcopy(content.get("data", {}))
        self._displays.setdefault(display_id, []).append(_Display(cell_key, index, data))

    def _update_display(self, content: dict[str, Any]) -> set[str]:
        """Update every output shown under the display id, in any cell; never append."""
        display_id = _display_id(content)
        if display_id is None:
            return set()
        displays = self._displays.pop(display_id, [])
        changed: set[str] = set()
        taken: set[tuple[str, int]] = set()
        kept: list[_Display] = []
        for display in displays:
            outputs = self._outputs_of(display.cell_key)
            index = None if outputs is None else _locate(display, outputs, taken)
            if outputs is None or index is None:
                continue  # the output is gone: forget where it was
            outputs[index] = _with_bundle(outputs[index], content)
            display.index, display.data = index, copy.deepcopy(content.get("data", {}))
            taken.add((display.cell_key, index))
            changed.add(display.cell_key)
            kept.append(display)
        if kept:
            self._displays[display_id] = kept
        return changed


# ---------------------------------------------------------------- helpers


def _add_stream(outputs: list[dict[str, Any]], content: dict[str, Any]) -> bool:
    name = content.get("name", "stdout")
    text = _joined(content.get("text", ""))
    if not text:
        return False
    last = outputs[-1] if outputs else None
    # A marker and the kernel's stderr never merge, either way: the writer replaces or strips
    # markers, which would take the kernel's text with them, and a marker after a `\r`
    # progress line would overwrite it.
    merges = last is not None and _is_stream(last, name) and not nb.is_marker(last)
    if merges and not (name == "stderr" and str(text).startswith(nb.MARKER_PREFIX)):
        return _merge_into(last, text)
    text = merge_stream_text("", text)
    if not text:  # e.g. a lone "\r": nothing to show, and no state worth keeping
        return False
    outputs.append({"output_type": "stream", "name": name, "text": text})
    return True


def _merge_into(output: dict[str, Any], new: str) -> bool:
    """Merge `new` into a stream output, in place: its index (and registrations) stay."""
    before = output.get("text", "")
    if isinstance(before, str) and _extends(before, new):
        # A chatty cell sends thousands of one-line messages. Copying the whole text for
        # each would be quadratic; a str that only this local refers to is grown in place
        # by CPython's `+=`, so the dict lets go of it first. (Elsewhere it is just a copy.)
        del output["text"]
        before += new
        output["text"] = before
        return True
    before = _joined(before)
    merged = merge_stream_text(before, new)
    output["text"] = merged
    return merged != before


def _with_bundle(output: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    # Type and execution_count stay: an updated execute_result is still one.
    return {
        **output,
        "data": copy.deepcopy(content.get("data", {})),
        "metadata": copy.deepcopy(content.get("metadata", {})),
    }


def _display_output(content: dict[str, Any]) -> dict[str, Any]:
    # `transient` (the display id) is deliberately left out: it is never saved.
    return {
        "output_type": "display_data",
        "data": copy.deepcopy(content.get("data", {})),
        "metadata": copy.deepcopy(content.get("metadata", {})),
    }


def _execute_result(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "output_type": "execute_result",
        "data": copy.deepcopy(content.get("data", {})),
        "metadata": copy.deepcopy(content.get("metadata", {})),
        "execution_count": content.get("execution_count"),
    }


def _error(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "output_type": "error",
        "ename": str(content.get("ename", "")),
        "evalue": str(content.get("evalue", "")),
        "traceback": [str(line) for line in content.get("traceback", [])],
    }


_BUILDERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "display_data": _display_output,
    "execute_result": _execute_result,
    "error": _error,
}


def _locate(
    display: _Display, outputs: list[dict[str, Any]], taken: set[tuple[str, int]]
) -> int | None:
    """The index of the registered output: where we left it, else the nearest one holding the
    data we last put there (the owner may have inserted outputs, e.g. a marker, above it)."""
    key = display.cell_key

    def holds_ours(i: int) -> bool:
        output = outputs[i]
        return (
            (key, i) not in taken
            and output.get("output_type") in _DISPLAY_TYPES
            and _same_bundle(output.get("data", {}), display.data)
        )

    if display.index < len(outputs) and holds_ours(display.index):
        return display.index
    found = [i for i in range(len(outputs)) if holds_ours(i)]
    return min(found, key=lambda i: abs(i - display.index), default=None)


def _same_bundle(a: dict[str, Any], b: dict[str, Any]) -> bool:
    # A bundle reloaded from disk may hold its text as a list of lines.
    return a.keys() == b.keys() and all(_joined(a[k]) == _joined(b[k]) for k in a)


def _display_id(content: dict[str, Any]) -> str | None:
    transient = content.get("transient") or {}
    display_id = transient.get("display_id")
    return display_id if isinstance(display_id, str) and display_id else None


def _is_stream(output: dict[str, Any], name: str) -> bool:
    return output.get("output_type") == "stream" and output.get("name") == name


def _joined(value: Any) -> Any:
    """nbformat's multiline strings: a list of lines stands for their concatenation."""
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return "".join(value)
    return value
