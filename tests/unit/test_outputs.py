"""iopub messages become the outputs JupyterLab would save.

Where an expectation is not obvious, the comment names its source: JupyterLab's
`OutputAreaModel` (stream merging, `clear(wait)`), its `removeOverwrittenChars`
(`fixBackspace` then `fixCarriageReturn`, ported below as `jupyterlab_remove_overwritten`),
the classic notebook (display ids across cells), or a recording of a real ipykernel
(tests/unit/recorded/*.json, replayed as [msg_type, content] pairs).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nb_mcp.actors import outputs as outputs_module
from nb_mcp.actors.outputs import Applied, OutputBuilder, last_line, merge_stream_text

RECORDED = Path(__file__).parent / "recorded"


# ---------------------------------------------------------------- helpers


class Cells:
    """The owner side: cell key -> outputs list, as the WriterActor keeps them."""

    def __init__(self, *keys: str) -> None:
        self.outputs: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
        self.builder = OutputBuilder(self.outputs.get)

    def apply(self, key: str, msg_type: str, content: dict[str, Any]) -> Applied:
        return self.builder.apply(key, msg_type, content)

    def stream(self, key: str, text: str, name: str = "stdout") -> Applied:
        return self.apply(key, "stream", {"name": name, "text": text})

    def replay(self, key: str, recording: str) -> list[Applied]:
        messages = json.loads((RECORDED / f"{recording}.json").read_text())
        return [self.apply(key, msg_type, content) for msg_type, content in messages]


def display(data: str, display_id: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"data": {"text/plain": data}, "metadata": {}}
    if display_id is not None:
        content["transient"] = {"display_id": display_id}
    return content


def texts(outputs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(o["name"], o["text"]) for o in outputs if o["output_type"] == "stream"]


def merged(*chunks: str) -> str:
    text = ""
    for chunk in chunks:
        text = merge_stream_text(text, chunk)
    return text


def validate(outputs: list[dict[str, Any]]) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.nbformat_minor = 5
    notebook.cells.append(nbformat.v4.new_code_cell("x", outputs=outputs, execution_count=1))
    nbformat.validate(nbformat.from_dict(json.loads(json.dumps(notebook))))


# A faithful port of JupyterLab's removeOverwrittenChars (packages/outputarea model.ts,
# JupyterLab 1-4.0). JavaScript regexes differ from Python's: `.` also excludes `\r`, and
# in multiline mode `^`/`$` also match around `\r`; both are spelled out here.
_LT = "\n\r\u2028\u2029"
_DOT = f"[^{_LT}]"
_BOL = f"(?:\\A|(?<=[{_LT}]))"
_EOL = f"(?=[{_LT}]|\\Z)"


def jupyterlab_remove_overwritten(text: str) -> str:
    while True:  # fixBackspace
        shorter = re.sub("[^\n]\x08", "", text)
        if len(shorter) == len(text):
            break
        text = shorter
    text = re.sub("\r+\n", "\n", text)  # fixCarriageReturn
    while re.search("\r[^$]", text):
        base = re.search(f"{_BOL}({_DOT}*)\r+", text).group(1)  # type: ignore[union-attr]
        insert = re.search(f"\r+({_DOT}*){_EOL}", text).group(1)  # type: ignore[union-attr]
        insert = insert + base[len(insert) :]
        text = re.sub(f"\r+{_DOT}*{_EOL}", "\r", text, count=1)
        text = re.sub(f"{_BOL}{_DOT}*\r", lambda _, insert=insert: insert, text, count=1)
    return text


# ---------------------------------------------------------------- merging streams


def test_contiguous_chunks_of_one_stream_merge_into_one_output() -> None:
    cells = Cells("a")
    for chunk in ["one\n", "two", " still two\n"]:
        assert cells.stream("a", chunk) == Applied({"a"}, None)
    assert cells.outputs["a"] == [
        {"output_type": "stream", "name": "stdout", "text": "one\ntwo still two\n"}
    ]


def test_interleaved_stdout_and_stderr_stay_separate_outputs_in_order() -> None:
    # OutputAreaModel only merges with the *last* output, when it has the same name.
    cells = Cells("a")
    cells.stream("a", "out 1\n")
    cells.stream("a", "err 1\n", name="stderr")
    cells.stream("a", "err 2\n", name="stderr")
    cells.stream("a", "out 2\n")
    assert texts(cells.outputs["a"]) == [
        ("stdout", "out 1\n"),
        ("stderr", "err 1\nerr 2\n"),
        ("stdout", "out 2\n"),
    ]


def test_a_display_between_two_prints_splits_the_stream() -> None:
    cells = Cells("a")
    cells.stream("a", "before\n")
    cells.apply("a", "display_data", display("'x'"))
    cells.stream("a", "after\n")
    assert [o["output_type"] for o in cells.outputs["a"]] == ["stream", "display_data", "stream"]


def test_a_carriage_return_overwrites_the_line_from_column_zero() -> None:
    # fixCarriageReturn: the text after \r replaces the start of the line, the rest remains.
    assert merge_stream_text("", "abcdef\rxy\n") == "xycdef\n"
    assert merge_stream_text("", "first\nabc\rX\rYZ\nlast\n") == "first\nYZc\nlast\n"


def test_a_carriage_return_at_the_end_of_a_chunk_applies_to_the_next_chunk() -> None:
    assert merged("abc\r", "def") == "def"
    assert merged("abc", "\r", "d", "\n") == "dbc\n"


def test_a_trailing_carriage_return_is_kept_because_more_text_may_come() -> None:
    assert merge_stream_text("", "abc\r") == "abc\r"
    assert merge_stream_text("", "abc\r\r\r") == "abc\r"
    assert last_line("abc\r") == "abc"


def test_an_unfinished_overwrite_keeps_its_cursor_for_the_next_chunk() -> None:
    # "abcdef\rxy" shows "xycdef"; the cursor is after "xy", so a later "z" must give
    # "xyzdef", as it would if it had come in the same chunk. The text keeps just enough
    # ("\rxy") to say where the cursor is; once the line ends, only "xyzdef" is left.
    shown = merge_stream_text("", "abcdef\rxy")
    assert shown == "xycdef\rxy"
    assert jupyterlab_remove_overwritten(shown) == "xycdef"  # what a front end shows
    assert last_line(shown) == "xycdef"
    assert merged(shown, "z") == merge_stream_text("", "abcdef\rxyz") == "xyzdef\rxyz"
    assert merged(shown, "z", "\n") == "xyzdef\n"


def test_a_carriage_return_before_a_newline_is_a_plain_newline() -> None:
    # fixCarriageReturn's first step: \r+\n -> \n (Windows line ends, "\r\n" from libraries).
    assert merge_stream_text("", "a\r\nb\r\r\nc") == "a\nb\nc"
    assert merged("abc\r", "\n", "def\n") == "abc\ndef\n"


def test_a_backspace_deletes_the_character_before_it() -> None:
    # fixBackspace removes any non-newline character followed by \b.
    assert merge_stream_text("", "abc\bd\n") == "abd\n"
    assert merged("ab", "\b") == "a"
    assert merged("ab", "\b", "\b", "c") == "c"


def test_n_backspaces_delete_n_characters() -> None:
    # JupyterLab >= 4.1 (concatenateText) counts a run of backspaces and deletes that many
    # characters. The older regex paired "\b\b" with each other and left "ab" here: an
    # artefact we do not copy, since it would depend on where the kernel split the text.
    assert merge_stream_text("", "abc\b\b\bx") == "x"


def test_a_backspace_never_crosses_a_newline_and_stays_at_a_line_start() -> None:
    # fixBackspace's [^\n]\x08: a backspace after a newline (or at the very start) stays.
    assert merge_stream_text("", "a\n\bb") == "a\n\bb"
    assert merged("a\n", "\b") == "a\n\b"
    assert merge_stream_text("", "\bx") == "\bx"
    assert last_line("a\n\bb") == "b"


def test_a_backspace_can_delete_a_stray_backspace_at_a_line_start() -> None:
    # fixBackspace: the stray \b is itself a non-newline character followed by \b.
    assert merge_stream_text("", "\b\b") == ""
    assert merged("\b", "\b", "\b") == "\b"


def test_a_backspace_right_after_a_carriage_return_cancels_it() -> None:
    # fixBackspace runs first, so "\r\b" loses the \r: "abc\r\bd" is "abcd" in JupyterLab.
    assert merge_stream_text("", "abc\r\bd") == jupyterlab_remove_overwritten("abc\r\bd")
    assert merged("abc\r", "\b", "d") == "abcd"


def test_a_backspace_in_the_middle_of_an_overwrite_moves_back_without_restoring() -> None:
    # A documented difference: JupyterLab deletes "c\b" from the raw text and shows "ab";
    # we no longer have the overwritten "a", so the cursor just moves back, as in a terminal.
    # Followed by text (the case that occurs), the two agree: "ab\rc\bd" is "db" in both.
    assert merge_stream_text("", "ab\rc\b\n") == "cb\n"
    assert merge_stream_text("", "ab\rc\bd\n") == jupyterlab_remove_overwritten("ab\rc\bd\n")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab\r\n", max_size=40))
def test_finished_text_without_backspaces_is_exactly_what_jupyterlab_saves(text: str) -> None:
    assert merge_stream_text("", text + "\n") == jupyterlab_remove_overwritten(text + "\n")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab\b\n", max_size=40).filter(lambda t: "\b\b" not in t))
def test_single_backspaces_are_exactly_what_jupyterlab_saves(text: str) -> None:
    assert merge_stream_text("", text) == jupyterlab_remove_overwritten(text)


@st.composite
def chunked_text(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(st.text(alphabet="ab\n\r\b", max_size=60))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    return text, [text[i:j] for i, j in itertools.pairwise(bounds)]


@settings(max_examples=500, deadline=None)
@given(chunked_text())
def test_where_the_kernel_splits_the_text_never_changes_the_result(
    case: tuple[str, list[str]],
) -> None:
    text, chunks = case
    whole = merge_stream_text("", text)
    assert merged(*chunks) == whole
    assert merge_stream_text("", whole) == whole  # normalized text is a fixed point
    assert last_line(whole) == last_line(text)
    cells = Cells("a")
    for chunk in chunks:
        cells.stream("a", chunk)
    # One output at most (a chunk that shows nothing adds none; text may empty it again).
    assert len(cells.outputs["a"]) <= 1
    assert "".join(o["text"] for o in cells.outputs["a"]) == whole


# ---------------------------------------------------------------- progress bars and scale


def tqdm_update(i: int, total: int) -> str:
    done = i * 10 // total
    bar = "█" * done + ("▋" if done < 10 else "") + " " * (9 - done)
    return f"\r{i * 100 // total:3d}%|{bar}| {i}/{total} [00:01<00:02, 5000.00it/s]"


def test_a_tqdm_bar_of_ten_thousand_updates_ends_as_one_line() -> None:
    cells = Cells("a")
    cells.stream("a", "training\n")
    for i in range(10_001):
        cells.stream("a", tqdm_update(i, 10_000), name="stderr")
    cells.stream("a", "\n", name="stderr")
    [_, bar] = cells.outputs["a"]
    assert bar["text"] == tqdm_update(10_000, 10_000)[1:] + "\n"
    assert bar["text"].count("\n") == 1 and "\r" not in bar["text"]
    assert len(bar["text"]) < 200


def test_a_progress_line_is_readable_while_it_runs() -> None:
    text = merged("epoch 1\n", tqdm_update(1, 4), tqdm_update(2, 4))
    assert text == "epoch 1\n" + tqdm_update(2, 4)[1:]
    assert last_line(text) == tqdm_update(2, 4)[1:].strip()


def test_a_shorter_update_overwrites_only_the_start_of_the_line() -> None:
    # Terminal (and fixCarriageReturn) semantics; tqdm pads its lines for this reason.
    assert merged("\rlong long", "\rshort", "\n") == "shortlong\n"


def test_a_merge_reads_only_the_last_line_of_the_previous_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read: list[int] = []
    normalize = outputs_module._normalize

    def spy(text: str) -> str:
        read.append(len(text))
        return normalize(text)

    monkeypatch.setattr(outputs_module, "_normalize", spy)
    previous = "a line of output\n" * 100_000 + " 37%|███▋      |"
    chunk = "\r 38%|███▊      |"
    result = merge_stream_text(previous, chunk)
    assert result == "a line of output\n" * 100_000 + " 38%|███▊      |"
    assert read == [len(" 37%|███▋      |") + len(chunk)]
    read.clear()
    merge_stream_text(result, "more\nlines\n")  # no \r or \b at all: not even that
    assert read == []


def test_a_hundred_thousand_small_chunks_are_merged() -> None:
    text = ""
    for i in range(100_000):
        text = merge_stream_text(text, f"\rstep {i}")
    assert merge_stream_text(text, "\n") == "step 99999\n"


def test_a_hundred_thousand_line_print_is_kept_whole() -> None:
    cells = Cells("a")
    lines = [f"line {i}\n" for i in range(100_000)]
    for start in range(0, len(lines), 1000):
        cells.stream("a", "".join(lines[start : start + 1000]))
    [output] = cells.outputs["a"]
    assert output["text"] == "".join(lines)
    assert last_line(output["text"]) == "line 99999"


def test_a_hundred_thousand_one_line_messages_merge_into_one_output() -> None:
    # A logging handler flushes after every record: one message per line. Merging must not
    # copy the whole text each time (that took ~40 s here before it grew the text in place).
    cells = Cells("a")
    for i in range(100_000):
        cells.stream("a", f"epoch {i} loss 0.1234\n")
    [output] = cells.outputs["a"]
    assert output["text"].count("\n") == 100_000
    assert last_line(output["text"]) == "epoch 99999 loss 0.1234"


def test_the_last_line_skips_trailing_blank_lines_and_is_empty_without_text() -> None:
    assert last_line("loss 0.5\n\n  \n") == "loss 0.5"
    assert last_line("") == ""
    assert last_line("\n\n") == ""
    assert last_line("a\nb\rc\bd") == "d"


# ---------------------------------------------------------------- clearing


def test_clear_output_with_wait_keeps_the_old_outputs_until_the_next_output() -> None:
    # OutputAreaModel.clear(wait=True) sets clearNext; add() clears before adding.
    cells = Cells("a")
    cells.stream("a", "old\n")
    assert cells.apply("a", "clear_output", {"wait": True}) == Applied(set(), None)
    assert texts(cells.outputs["a"]) == [("stdout", "old\n")]
    assert cells.stream("a", "new\n") == Applied({"a"}, None)
    assert texts(cells.outputs["a"]) == [("stdout", "new\n")]


@pytest.mark.parametrize(
    ("msg_type", "content"),
    [
        ("stream", {"name": "stderr", "text": "x"}),
        ("display_data", display("'x'")),
        ("execute_result", {**display("'x'"), "execution_count": 3}),
        ("error", {"ename": "E", "evalue": "v", "traceback": ["E: v"]}),
    ],
)
def test_every_kind_of_output_triggers_a_deferred_clear(
    msg_type: str, content: dict[str, Any]
) -> None:
    cells = Cells("a")
    cells.stream("a", "old\n")
    cells.apply("a", "clear_output", {"wait": True})
    cells.apply("a", msg_type, content)
    assert [o["output_type"] for o in cells.outputs["a"]] == [msg_type]


def test_a_display_update_does_not_trigger_a_deferred_clear() -> None:
    # JupyterLab applies update_display_data with model.set(), not add(): no clearNext.
    cells = Cells("a")
    cells.apply("a", "display_data", display("'v1'", "d"))
    cells.apply("a", "clear_output", {"wait": True})
    assert cells.apply("a", "update_display_data", display("'v2'", "d")) == Applied({"a"}, None)
    assert cells.outputs["a"][0]["data"] == {"text/plain": "'v2'"}
    cells.stream("a", "after\n")
    assert texts(cells.outputs["a"]) == [("stdout", "after\n")]


def test_clear_output_without_wait_clears_at_once_and_forgets_display_ids() -> None:
    cells = Cells("a")
    cells.apply("a", "display_data", display("'v1'", "d"))
    assert cells.apply("a", "clear_output", {"wait": False}) == Applied({"a"}, None)
    assert cells.outputs["a"] == []
    cells.stream("a", "text\n")
    assert cells.apply("a", "update_display_data", display("'v2'", "d")) == Applied(set(), None)
    assert texts(cells.outputs["a"]) == [("stdout", "text\n")]


def test_clearing_an_empty_cell_changes_nothing() -> None:
    cells = Cells("a")
    assert cells.apply("a", "clear_output", {"wait": False}) == Applied(set(), None)


def test_a_deferred_clear_forgets_the_display_ids_it_cleared() -> None:
    cells = Cells("a")
    cells.apply("a", "display_data", display("'v1'", "d"))
    cells.apply("a", "clear_output", {"wait": True})
    cells.apply("a", "display_data", display("'other'"))
    assert cells.apply("a", "update_display_data", display("'v2'", "d")) == Applied(set(), None)
    assert cells.outputs["a"][0]["data"] == {"text/plain": "'other'"}


def test_a_clear_output_loop_ends_with_only_the_last_step() -> None:
    cells = Cells("a")
    messages = json.loads((RECORDED / "clear_wait_loop.json").read_text())
    for msg_type, content in messages:
        before = list(cells.outputs["a"])
        cells.apply("a", msg_type, content)
        if msg_type == "clear_output":
            assert cells.outputs["a"] == before  # no flicker: old step stays until the next
    assert texts(cells.outputs["a"]) == [("stdout", "step 4\n")]


def test_clear_empties_the_same_list_and_forget_drops_a_pending_clear() -> None:
    cells = Cells("a")
    the_list = cells.outputs["a"]
    cells.apply("a", "display_data", display("'v1'", "d"))
    cells.builder.clear("a")
    assert cells.outputs["a"] is the_list and the_list == []
    cells.stream("a", "kept\n")
    cells.apply("a", "clear_output", {"wait": True})
    cells.builder.forget("a")
    cells.stream("a", "more\n")
    assert texts(cells.outputs["a"]) == [("stdout", "kept\nmore\n")]


def test_forget_drops_the_display_ids_of_that_cell_only() -> None:
    cells = Cells("a", "b")
    cells.apply("a", "display_data", display("'a1'", "d"))
    cells.apply("b", "display_data", display("'b1'", "d"))
    cells.builder.forget("a")
    assert cells.apply("b", "update_display_data", display("'v2'", "d")) == Applied({"b"}, None)
    assert cells.outputs["a"][0]["data"] == {"text/plain": "'a1'"}


# ---------------------------------------------------------------- display ids


def test_a_display_handle_is_updated_in_place_in_its_cell() -> None:
    cells = Cells("a")
    applied = cells.replay("a", "display_handle")
    assert [a.execution_count for a in applied if a.execution_count is not None] == [4, 4]
    assert cells.outputs["a"] == [
        {"output_type": "display_data", "data": {"text/plain": "'third'"}, "metadata": {}},
        {"output_type": "stream", "name": "stdout", "text": "between\n"},
        {
            "output_type": "execute_result",
            "data": {"text/plain": "42"},
            "metadata": {},
            "execution_count": 4,
        },
    ]


def test_a_display_update_from_another_cell_updates_the_first_cell() -> None:
    # Classic notebook behaviour: display ids are notebook-wide (h.update in a later cell).
    cells = Cells("a", "b")
    cells.replay("a", "display_cell_a")
    applied = cells.replay("b", "display_cell_b")
    assert Applied({"a"}, None) in applied
    assert cells.outputs["a"] == [
        {"output_type": "display_data", "data": {"text/plain": "'shared v2'"}, "metadata": {}}
    ]
    assert texts(cells.outputs["b"]) == [("stdout", "cell b runs\n")]


def test_a_display_update_reaches_every_output_with_that_id() -> None:
    cells = Cells("a", "b")
    cells.apply("a", "display_data", display("'v1'", "d"))
    cells.apply("a", "display_data", display("'v1'", "d"))
    cells.apply("b", "display_data", display("'v1'", "d"))
    cells.apply("b", "display_data", display("'unrelated'", "e"))
    update = {
        "data": {"text/plain": "'v2'"},
        "metadata": {"m": 1},
        "transient": {"display_id": "d"},
    }
    assert cells.apply("b", "update_display_data", update) == Applied({"a", "b"}, None)
    for output in [*cells.outputs["a"], cells.outputs["b"][0]]:
        assert output == {
            "output_type": "display_data",
            "data": {"text/plain": "'v2'"},
            "metadata": {"m": 1},
        }
    assert cells.outputs["b"][1]["data"] == {"text/plain": "'unrelated'"}


def test_an_execute_result_with_a_display_id_keeps_its_type_when_updated() -> None:
    cells = Cells("a")
    cells.apply("a", "execute_result", {**display("'v1'", "d"), "execution_count": 7})
    cells.apply("a", "update_display_data", display("'v2'", "d"))
    assert cells.outputs["a"] == [
        {
            "output_type": "execute_result",
            "data": {"text/plain": "'v2'"},
            "metadata": {},
            "execution_count": 7,
        }
    ]


def test_an_update_with_an_unknown_display_id_changes_nothing() -> None:
    cells = Cells("a")
    cells.apply("a", "display_data", display("'v1'", "d"))
    before = json.dumps(cells.outputs)
    assert cells.apply("a", "update_display_data", display("'v2'", "nope")) == Applied(set(), None)
    assert cells.apply("a", "update_display_data", display("'v2'")) == Applied(set(), None)
    assert json.dumps(cells.outputs) == before


def test_stream_merges_and_appends_keep_display_registrations() -> None:
    cells = Cells("a")
    cells.stream("a", "a")
    cells.apply("a", "display_data", display("'v1'", "d"))
    cells.stream("a", "b")
    cells.stream("a", "c\n")
    cells.apply("a", "error", {"ename": "E", "evalue": "v", "traceback": []})
    cells.apply("a", "update_display_data", display("'v2'", "d"))
    assert cells.outputs["a"][1]["data"] == {"text/plain": "'v2'"}
    assert texts(cells.outputs["a"]) == [("stdout", "a"), ("stdout", "bc\n")]


def test_a_new_list_object_from_outputs_of_is_still_updated() -> None:
    # The owner may rebuild lists and dicts (e.g. after reloading the file from disk).
    cells = Cells("a")
    cells.apply("a", "display_data", display("'v1'", "d"))
    cells.stream("a", "abc\r")
    cells.outputs["a"] = json.loads(json.dumps(cells.outputs["a"]))
    cells.apply("a", "update_display_data", display("'v2'", "d"))
    cells.stream("a", "X\n")
    assert cells.outputs["a"][0]["data"] == {"text/plain": "'v2'"}
    assert texts(cells.outputs["a"]) == [("stdout", "Xbc\n")]


def test_text_reloaded_as_a_list_of_lines_still_merges_and_updates() -> None:
    # On disk nbformat stores multiline strings as lists of lines; both forms are accepted.
    cells = Cells("a")
    cells.apply("a", "display_data", display("one\ntwo\n", "d"))
    cells.stream("a", "x\ny")
    cells.outputs["a"] = [
        {**cells.outputs["a"][0], "data": {"text/plain": ["one\n", "two\n"]}},
        {**cells.outputs["a"][1], "text": ["x\n", "y"]},
    ]
    cells.stream("a", "z\n")
    cells.outputs["a"].insert(0, {"output_type": "stream", "name": "stderr", "text": "above"})
    cells.apply("a", "update_display_data", display("three\n", "d"))
    assert cells.outputs["a"][1]["data"] == {"text/plain": "three\n"}
    assert cells.outputs["a"][2]["text"] == "x\nyz\n"


def test_a_display_is_found_again_after_the_owner_inserts_an_output_above_it() -> None:
    # Markers are put above a cell's outputs (DESIGN.md); the update must not hit the
    # output that slid into the registered index.
    cells = Cells("a")
    cells.apply("a", "display_data", display("'first'"))
    cells.apply("a", "display_data", display("'v1'", "d"))
    marker = {"output_type": "stream", "name": "stderr", "text": "[nb mcp] ⊘ Skipped\n"}
    cells.outputs["a"].insert(0, marker)
    assert cells.apply("a", "update_display_data", display("'v2'", "d")) == Applied({"a"}, None)
    assert [o.get("data") for o in cells.outputs["a"]] == [
        None,
        {"text/plain": "'first'"},
        {"text/plain": "'v2'"},
    ]


def test_a_display_whose_output_is_gone_is_forgotten() -> None:
    cells = Cells("a")
    cells.apply("a", "display_data", display("'v1'", "d"))
    cells.outputs["a"] = [{"output_type": "stream", "name": "stdout", "text": "replaced\n"}]
    assert cells.apply("a", "update_display_data", display("'v2'", "d")) == Applied(set(), None)
    assert cells.builder._displays == {}


# ---------------------------------------------------------------- the other messages


def test_execute_input_reports_the_execution_count_without_an_output() -> None:
    cells = Cells("a")
    assert cells.apply("a", "execute_input", {"code": "1", "execution_count": 12}) == Applied(
        set(), 12
    )
    assert cells.outputs["a"] == []


def test_an_execute_result_is_appended_and_reports_its_execution_count() -> None:
    cells = Cells("a")
    content = {"data": {"text/plain": "42"}, "metadata": {}, "execution_count": 3}
    assert cells.apply("a", "execute_result", content) == Applied({"a"}, 3)
    assert cells.outputs["a"] == [{"output_type": "execute_result", **content}]


def test_an_error_is_appended_with_its_name_value_and_traceback() -> None:
    cells = Cells("a")
    cells.replay("a", "error")
    [stream, error] = cells.outputs["a"]
    assert stream["text"] == "before\n"
    assert set(error) == {"output_type", "ename", "evalue", "traceback"}
    assert (error["ename"], error["evalue"]) == ("ZeroDivisionError", "division by zero")
    assert any("ZeroDivisionError" in line for line in error["traceback"])


@pytest.mark.parametrize(
    ("msg_type", "content"),
    [
        ("status", {"execution_state": "busy"}),
        ("execute_reply", {"status": "ok", "execution_count": 1}),
        ("comm_open", {"comm_id": "c", "target_name": "t", "data": {}}),
        ("comm_msg", {"comm_id": "c", "data": {}}),
        ("comm_close", {"comm_id": "c", "data": {}}),
        ("shutdown_reply", {"restart": False}),
        ("stream", {"name": "stdout", "text": ""}),
    ],
)
def test_messages_that_show_nothing_change_nothing(msg_type: str, content: dict[str, Any]) -> None:
    cells = Cells("a")
    cells.stream("a", "kept\n")
    assert cells.apply("a", msg_type, content) == Applied(set(), None)
    assert texts(cells.outputs["a"]) == [("stdout", "kept\n")]


def test_a_cell_that_vanished_is_skipped_silently() -> None:
    cells = Cells("a", "b")
    cells.apply("a", "display_data", display("'v1'", "d"))
    cells.apply("b", "display_data", display("'v1'", "d"))
    del cells.outputs["a"]
    assert cells.stream("a", "lost\n") == Applied(set(), None)
    assert cells.apply("a", "execute_input", {"execution_count": 5}) == Applied(set(), 5)
    assert cells.apply("a", "clear_output", {"wait": False}) == Applied(set(), None)
    assert cells.apply("a", "clear_output", {"wait": True}) == Applied(set(), None)
    assert cells.apply("b", "update_display_data", display("'v2'", "d")) == Applied({"b"}, None)
    cells.builder.clear("a")
    assert cells.outputs == {
        "b": [{"output_type": "display_data", "data": {"text/plain": "'v2'"}, "metadata": {}}]
    }


def test_kernel_stderr_is_never_merged_into_a_marker() -> None:
    # A marker is a stderr stream the writer later replaces or strips (DESIGN.md, markers);
    # merged into it, the kernel's text would go with it.
    cells = Cells("a")
    marker = {
        "output_type": "stream",
        "name": "stderr",
        "text": "[nb mcp] ✓ Done at 10:18:27 UTC\n",
    }
    cells.outputs["a"].append(marker)
    cells.stream("a", "late warning\n", name="stderr")
    assert texts(cells.outputs["a"]) == [
        ("stderr", marker["text"]),
        ("stderr", "late warning\n"),
    ]


def test_a_marker_after_a_progress_line_leaves_the_line_and_takes_its_own_output() -> None:
    # nb's own warnings (kernel unresponsive, stream lost) arrive as stderr with a marker's
    # text; merged, the marker would overwrite a tqdm line that ends in "\r".
    cells = Cells("a")
    cells.stream("a", " 50%|#####     | 5/10\r", name="stderr")
    cells.stream("a", "[nb mcp] ⚠ The kernel stopped answering at 10:18:27 UTC\n", name="stderr")
    cells.stream("a", "100%|##########| 10/10\n", name="stderr")
    assert texts(cells.outputs["a"]) == [
        ("stderr", " 50%|#####     | 5/10\r"),
        ("stderr", "[nb mcp] ⚠ The kernel stopped answering at 10:18:27 UTC\n"),
        ("stderr", "100%|##########| 10/10\n"),
    ]


# ---------------------------------------------------------------- saved form


def test_transient_is_never_saved() -> None:
    cells = Cells("a")
    cells.apply("a", "display_data", display("'v1'", "d"))
    cells.apply("a", "execute_result", {**display("'r'", "e"), "execution_count": 1})
    cells.apply("a", "update_display_data", display("'v2'", "d"))
    assert "transient" not in json.dumps(cells.outputs)


def test_every_recorded_cell_validates_as_an_nbformat_4_5_notebook() -> None:
    for recording in sorted(RECORDED.glob("*.json")):
        cells = Cells("a")
        cells.replay("a", recording.stem)
        validate(cells.outputs["a"])


def test_outputs_of_every_kind_validate_with_nbformat() -> None:
    cells = Cells("a")
    cells.stream("a", "out\r\bx\n")
    cells.stream("a", "err\n", name="stderr")
    cells.apply("a", "display_data", display("'v1'", "d"))
    cells.apply("a", "update_display_data", display("'v2'", "d"))
    cells.apply("a", "execute_result", {**display("1"), "execution_count": 1})
    cells.apply("a", "error", {"ename": "E", "evalue": "v", "traceback": ["t"]})
    assert len(cells.outputs["a"]) == 5
    validate(cells.outputs["a"])


def test_a_recorded_print_heavy_cell_is_saved_as_jupyterlab_saves_it() -> None:
    cells = Cells("a")
    applied = cells.replay("a", "print_heavy")
    assert applied[1] == Applied(set(), 1)  # execute_input
    assert texts(cells.outputs["a"]) == [
        ("stdout", "".join(f"line {i}\n" for i in range(200))),
        ("stderr", "to stderr\n"),
        ("stdout", "back to stdout\nmore stdout\n"),
    ]


def test_a_recorded_tqdm_loop_is_saved_as_one_line() -> None:
    cells = Cells("a")
    messages = json.loads((RECORDED / "tqdm_loop.json").read_text())
    cells.replay("a", "tqdm_loop")
    final = [c["text"] for t, c in messages if t == "stream" and c["text"] != "\n"][-1]
    assert texts(cells.outputs["a"]) == [("stderr", final.lstrip("\r") + "\n")]
    assert "25/25" in cells.outputs["a"][0]["text"]
