"""The read and edit tools, through the real MCP client against a spawned `nb mcp`."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import nbformat
import pytest

from tests.helpers import McpServer, cell_texts, events_named, load

PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="  # noqa: E501


def make(server: McpServer, name: str, *sources: str) -> Path:
    for source in sources:
        reply = server.call("insert_cell", path=name, source=source)
        assert not reply.is_error, reply.text
    return server.cwd / name


def ids_on_disk(path: Path) -> list[str]:
    return [cell["id"] for cell in load(path)["cells"]]


def test_insert_cell_creates_a_missing_notebook_and_appends_by_default(shared_server: McpServer):
    path = make(shared_server, "created.ipynb", "a = 1", "b = 2")
    notebook = load(path)
    assert cell_texts(notebook) == ["a = 1", "b = 2"]
    assert notebook["nbformat"] == 4 and notebook["nbformat_minor"] == 5
    nbformat.validate(nbformat.reads(path.read_text(), as_version=4))
    assert path.read_text().endswith("}\n")


def test_insert_cell_places_the_cell_at_an_index_or_after_a_cell_id(shared_server: McpServer):
    path = make(shared_server, "insert.ipynb", "first", "last")
    first, _last = ids_on_disk(path)
    shared_server.call("insert_cell", path="insert.ipynb", source="top", index=0)
    shared_server.call("insert_cell", path="insert.ipynb", source="before last", index=-2)
    reply = shared_server.call(
        "insert_cell",
        path="insert.ipynb",
        source="# after first",
        cell_type="markdown",
        after_cell_id=first,
    )
    assert not reply.is_error, reply.text
    assert cell_texts(load(path)) == ["top", "first", "# after first", "before last", "last"]
    assert load(path)["cells"][2]["cell_type"] == "markdown"
    assert "cell 2" in reply.text and "5 cells" in reply.text


def test_list_cells_shows_one_line_per_cell_with_index_id_type_count_and_outputs(
    shared_server: McpServer,
):
    path = shared_server.cwd / "listed.ipynb"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Results\nmore text"),
        nbformat.v4.new_code_cell(
            "print('hi')\nprint('there')",
            execution_count=3,
            outputs=[nbformat.v4.new_output("stream", name="stdout", text="hi\nthere\n")],
        ),
        nbformat.v4.new_code_cell(
            "plot()",
            outputs=[nbformat.v4.new_output("display_data", data={"image/png": PNG_1PX})],
        ),
    ]
    nbformat.write(notebook, path)
    ids = ids_on_disk(path)
    reply = shared_server.call("list_cells", path="listed.ipynb")
    assert not reply.is_error
    lines = reply.text.splitlines()
    assert "3 cells" in lines[0]
    assert len(lines) == 4
    assert lines[1].split()[:3] == ["0", ids[0], "markdown"] and "# Results (+1 lines)" in lines[1]
    assert lines[2].split()[:4] == ["1", ids[1], "code", "[3]"] and "stdout 2 lines" in lines[2]
    assert "image/png" in lines[3] and "[ ]" in lines[3]


def test_list_cells_marks_a_result_once(shared_server: McpServer):
    path = shared_server.cwd / "result.ipynb"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "print('x'); 40 + 2",
            execution_count=1,
            outputs=[
                nbformat.v4.new_output("stream", name="stdout", text="x\n"),
                nbformat.v4.new_output(
                    "execute_result", data={"text/plain": "42"}, execution_count=1
                ),
            ],
        )
    ]
    nbformat.write(notebook, path)
    line = shared_server.call("list_cells", path="result.ipynb").text.splitlines()[1]
    assert line.endswith("  → stdout 1 line · result: 42"), line
    assert line.count("→") == 1


def test_read_cell_returns_source_outputs_and_images_with_ansi_stripped(shared_server: McpServer):
    path = shared_server.cwd / "read.ipynb"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "1/0",
            outputs=[
                nbformat.v4.new_output(
                    "display_data", data={"image/png": PNG_1PX, "text/plain": "<Figure>"}
                ),
                nbformat.v4.new_output(
                    "error",
                    ename="ZeroDivisionError",
                    evalue="division by zero",
                    traceback=["\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"],
                ),
            ],
        )
    ]
    nbformat.write(notebook, path)
    reply = shared_server.call("read_cell", path="read.ipynb", index=0)
    assert not reply.is_error
    assert "1/0" in reply.text
    assert "[error] ZeroDivisionError: division by zero" in reply.text
    assert "\x1b" not in reply.text
    assert len(reply.images) == 1 and reply.images[0].mime_type == "image/png"
    assert base64.b64decode(reply.images[0].data).startswith(b"\x89PNG")


def test_read_cell_cuts_long_output_and_says_how_much(shared_server: McpServer):
    path = shared_server.cwd / "long.ipynb"
    notebook = nbformat.v4.new_notebook()
    text = "".join(f"line {n}\n" for n in range(100_000))
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "loop()", outputs=[nbformat.v4.new_output("stream", name="stdout", text=text)]
        )
    ]
    nbformat.write(notebook, path)
    reply = shared_server.call("read_cell", path="long.ipynb", cell_id=notebook.cells[0].id)
    assert not reply.is_error
    assert len(reply.text) < 25_000
    assert "line 0\n" in reply.text and "line 99999" in reply.text
    assert "[cut " in reply.text and "characters" in reply.text


def test_read_cell_leaves_an_oversized_image_out_with_a_note(tmp_path: Path, workdir: Path):
    from tests.helpers import server_env

    big = base64.b64encode(os.urandom(20_000)).decode()
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "show()", outputs=[nbformat.v4.new_output("display_data", data={"image/png": big})]
        )
    ]
    nbformat.write(notebook, workdir / "img.ipynb")
    env = server_env(tmp_path, NB_MCP_MAX_IMAGE_BYTES="10000")
    with McpServer(workdir, env, tmp_path / "stderr") as server:
        reply = server.call("read_cell", path="img.ipynb", index=0)
    assert not reply.images
    assert "not attached, larger than the 10 KB limit" in reply.text


def test_set_cell_changes_source_and_type_both_ways_keeping_the_id(shared_server: McpServer):
    path = make(shared_server, "set.ipynb", "x = 1")
    (cell_id,) = ids_on_disk(path)
    reply = shared_server.call(
        "set_cell", path="set.ipynb", cell_id=cell_id, source="# Now prose", cell_type="markdown"
    )
    assert not reply.is_error, reply.text
    cell = load(path)["cells"][0]
    assert (cell["id"], cell["cell_type"], "".join(cell["source"])) == (
        cell_id,
        "markdown",
        "# Now prose",
    )
    assert "outputs" not in cell
    shared_server.call("set_cell", path="set.ipynb", index=0, cell_type="code")
    cell = load(path)["cells"][0]
    assert (cell["id"], cell["cell_type"], cell["outputs"]) == (cell_id, "code", [])
    assert "".join(cell["source"]) == "# Now prose"


def test_delete_and_move_cell_by_index_and_id(shared_server: McpServer):
    path = make(shared_server, "move.ipynb", "a", "b", "c", "d")
    a, b, c, d = ids_on_disk(path)
    assert not shared_server.call("move_cell", path="move.ipynb", cell_id=d, to=0).is_error
    assert ids_on_disk(path) == [d, a, b, c]
    assert not shared_server.call("move_cell", path="move.ipynb", index=1, to=-1).is_error
    assert ids_on_disk(path) == [d, b, c, a]
    reply = shared_server.call("delete_cell", path="move.ipynb", index=-2)
    assert not reply.is_error and c in reply.text
    assert not shared_server.call("delete_cell", path="move.ipynb", cell_id=d).is_error
    assert ids_on_disk(path) == [b, a]


def test_clear_outputs_of_one_cell_or_of_all(shared_server: McpServer):
    path = shared_server.cwd / "clear.ipynb"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            f"print({n})",
            execution_count=n,
            outputs=[nbformat.v4.new_output("stream", name="stdout", text=f"{n}\n")],
        )
        for n in (1, 2, 3)
    ]
    nbformat.write(notebook, path)
    shared_server.call("clear_outputs", path="clear.ipynb", index=1)
    cells = load(path)["cells"]
    assert [len(c["outputs"]) for c in cells] == [1, 0, 1]
    assert cells[1]["execution_count"] is None
    shared_server.call("clear_outputs", path="clear.ipynb", all=True)
    assert [c["outputs"] for c in load(path)["cells"]] == [[], [], []]


BAD_CALLS = [
    ("read_cell", {"index": 5}, "out of range"),
    ("read_cell", {"index": -6}, "out of range"),
    ("read_cell", {"cell_id": "no-such-id"}, "no cell has id"),
    ("read_cell", {"index": 0, "cell_id": "x"}, "not both"),
    ("read_cell", {}, "give index or cell_id"),
    ("read_cell", {"index": "first"}, "valid integer"),
    ("read_cell", {"index": 0, "cel_id": "x"}, "does not take 'cel_id'"),
    ("set_cell", {"index": 9, "source": "y"}, "out of range"),
    ("set_cell", {"index": 0}, "nothing to change"),
    ("set_cell", {"index": 0, "cell_type": "python"}, "cell_type must be one of"),
    ("set_cell", {"cell_id": "nope", "source": "y"}, "no cell has id"),
    ("delete_cell", {"index": 3}, "out of range"),
    ("delete_cell", {}, "give index or cell_id"),
    ("delete_cell", {"index": 0, "cell_id": "x"}, "not both"),
    ("move_cell", {"index": 0, "to": 7}, "out of range"),
    ("move_cell", {"index": 7, "to": 0}, "out of range"),
    ("move_cell", {"cell_id": "nope", "to": 0}, "no cell has id"),
    ("clear_outputs", {}, "all=true"),
    ("clear_outputs", {"index": 0, "all": True}, "not both"),
    ("clear_outputs", {"index": -4}, "out of range"),
    ("insert_cell", {"index": 9, "source": "z"}, "out of range"),
    ("insert_cell", {"cell_type": "sql", "source": "z"}, "cell_type must be one of"),
    ("insert_cell", {"index": 0, "after_cell_id": "x"}, "not both"),
    ("insert_cell", {"after_cell_id": "nope"}, "no cell has id"),
]


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    BAD_CALLS,
    ids=[f"{t}-{'-'.join(a) or 'none'}" for t, a, _ in BAD_CALLS],
)
def test_a_bad_argument_is_a_clear_error_and_leaves_the_file_byte_identical(
    shared_server: McpServer, tool: str, arguments: dict, expected: str
):
    name = f"bad-{tool}.ipynb"
    path = shared_server.cwd / name
    if not path.exists():
        make(shared_server, name, "one", "two", "three")
    before, mtime = path.read_bytes(), os.stat(path).st_mtime_ns
    reply = shared_server.call(tool, path=name, **arguments)
    assert reply.is_error
    assert expected in reply.text
    assert path.read_bytes() == before
    assert os.stat(path).st_mtime_ns == mtime


@pytest.mark.parametrize("path", ["notes.txt", "folder.ipynb", "", "missing/deep/x.ipynb"])
def test_a_path_that_is_not_a_notebook_is_refused_and_nothing_is_created(
    shared_server: McpServer, path: str
):
    (shared_server.cwd / "folder.ipynb").mkdir(exist_ok=True)
    listing_before = sorted(p.name for p in shared_server.cwd.rglob("*"))
    for tool, arguments in [
        ("list_cells", {}),
        ("insert_cell", {"source": "x"}),
        ("read_cell", {"index": 0}),
    ]:
        reply = shared_server.call(tool, path=path, **arguments)
        assert reply.is_error, (tool, reply.text)
        assert any(word in reply.text for word in (".ipynb", "directory", "empty", "folder"))
    assert sorted(p.name for p in shared_server.cwd.rglob("*")) == listing_before


def test_read_tools_never_create_a_file(shared_server: McpServer):
    for tool, arguments in [("list_cells", {}), ("read_cell", {"index": 0})]:
        reply = shared_server.call(tool, path="ghost.ipynb", **arguments)
        assert reply.is_error and "no notebook at" in reply.text
    assert not (shared_server.cwd / "ghost.ipynb").exists()


def test_a_notebook_without_cell_ids_gets_ids_and_is_upgraded_to_4_5(server: McpServer):
    path = server.cwd / "old.ipynb"
    path.write_text(
        json.dumps(
            {
                "cells": [
                    {"cell_type": "markdown", "metadata": {}, "source": ["# Old"]},
                    {
                        "cell_type": "code",
                        "execution_count": 1,
                        "metadata": {},
                        "outputs": [],
                        "source": ["x = 41\n", "x + 1"],
                    },
                ],
                "metadata": {
                    "kernelspec": {
                        "name": "python3",
                        "display_name": "Python 3",
                        "language": "python",
                    }
                },
                "nbformat": 4,
                "nbformat_minor": 2,
            }
        )
    )
    reply = server.call("list_cells", path="old.ipynb")
    assert not reply.is_error, reply.text
    notebook = load(path)
    assert notebook["nbformat_minor"] == 5
    ids = [cell["id"] for cell in notebook["cells"]]
    assert len(set(ids)) == 2 and all(ids)
    assert all(cell_id in reply.text for cell_id in ids)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    read = server.call("read_cell", path="old.ipynb", cell_id=ids[1])
    assert "x = 41" in read.text
    upgraded = events_named(server.events(), "notebook.upgraded")
    assert upgraded and upgraded[0]["ids_added"] == 2 and upgraded[0]["from_version"] == "4.2"


def test_a_hand_edit_between_two_tool_calls_survives_with_the_tools_edit(server: McpServer):
    path = make(server, "shared.ipynb", "a = 1", "b = 2")
    a, _b = ids_on_disk(path)
    by_hand = nbformat.read(path, as_version=4)
    by_hand.cells.insert(0, nbformat.v4.new_markdown_cell("# Added by a person"))
    by_hand.cells[2].source = "b = 20  # edited by hand"
    nbformat.write(by_hand, path)
    reply = server.call("set_cell", path="shared.ipynb", cell_id=a, source="a = 100")
    assert not reply.is_error, reply.text
    assert "cell 1" in reply.text
    assert cell_texts(load(path)) == ["# Added by a person", "a = 100", "b = 20  # edited by hand"]
    assert events_named(server.events(), "writer.external_change_merged")


@pytest.mark.parametrize(
    "content",
    [
        '{"cells": [',
        '{"not": "a notebook"}',
        '{"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
    ],
    ids=["truncated-json", "json-not-notebook", "invalid-cell"],
)
def test_a_malformed_notebook_is_reported_and_never_rewritten(server: McpServer, content: str):
    path = server.cwd / "broken.ipynb"
    path.write_text(content)
    mtime = os.stat(path).st_mtime_ns
    for tool, arguments in [
        ("list_cells", {}),
        ("insert_cell", {"source": "x"}),
        ("clear_outputs", {"all": True}),
    ]:
        reply = server.call(tool, path="broken.ipynb", **arguments)
        assert reply.is_error
        assert "not valid JSON" in reply.text or "not a" in reply.text
    assert path.read_text() == content and os.stat(path).st_mtime_ns == mtime


def test_an_edit_in_a_read_only_folder_is_a_clear_error_and_the_old_file_stays(
    server: McpServer, read_only_folder
):
    folder = read_only_folder(server.cwd / "ro")
    path = folder.path / "ro.ipynb"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("keep = True")]
    nbformat.write(notebook, path)
    before = path.read_bytes()
    folder.make_read_only()
    reply = server.call("insert_cell", path="ro/ro.ipynb", source="lost?")
    assert reply.is_error
    assert "could NOT be written" in reply.text and "not writable" in reply.text
    assert path.read_bytes() == before
    assert [p.name for p in folder.path.iterdir()] == ["ro.ipynb"]
    failed = events_named(server.events(), "writer.flush_failed")
    assert failed and "not writable" in failed[0]["error"]


def test_file_mode_is_preserved_across_writes(shared_server: McpServer):
    path = make(shared_server, "mode.ipynb", "x")
    os.chmod(path, 0o640)
    shared_server.call("insert_cell", path="mode.ipynb", source="y")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert cell_texts(load(path)) == ["x", "y"]
