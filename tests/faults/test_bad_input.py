"""Bad input at scale: every tool's arguments and malformed notebook files, made by hypothesis.

One `nb mcp` serves the whole module. Every call must get an answer: a clear tool error or a
correct result, never a crash (the server keeps answering, no `error.unhandled` event). A call
that is refused changes nothing: every file under the server's folder keeps its bytes and its
mtime, and no file appears. Read tools never change anything, even when they succeed, and
neither do the kernel tools while no job runs.

Hypothesis runs derandomized with no example database, so CI sees the same examples each time.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import validate_logs
from tests.faults.writer_support import (
    alive,
    job_id_of,
    kill_processes_mentioning,
    valid_notebook,
)
from tests.helpers import McpServer, Reply, server_env, wait_for

FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# What each tool takes (the server's tools/list is checked against this below).
PARAMS: dict[str, list[str]] = {
    "list_cells": ["path"],
    "read_cell": ["path", "index", "cell_id"],
    "insert_cell": ["path", "source", "cell_type", "index", "after_cell_id"],
    "set_cell": ["path", "index", "cell_id", "source", "cell_type"],
    "delete_cell": ["path", "index", "cell_id"],
    "move_cell": ["path", "to", "index", "cell_id"],
    "clear_outputs": ["path", "index", "cell_id", "all"],
    "exec_cell": ["path", "index", "cell_id", "timeout", "block_for", "kernel_name"],
    "exec_range": ["path", "start", "end", "timeout", "block_for", "kernel_name"],
    "exec_all": ["path", "timeout", "block_for", "kernel_name"],
    "insert_and_exec": [
        "path",
        "source",
        "index",
        "after_cell_id",
        "timeout",
        "block_for",
        "kernel_name",
    ],
    "run_scratch": ["path", "code", "timeout", "block_for", "kernel_name"],
    "exec_status": ["job_id", "block_for"],
    "cancel_job": ["job_id"],
    "status": [],
    "interrupt": ["path"],
    "restart_kernel": ["path", "kernel_name"],
    "shutdown_kernel": ["path"],
    "list_kernels": ["path"],
}
READ_TOOLS = {"list_cells", "read_cell", "exec_status", "status", "list_kernels"}
EXEC_TOOLS = {"exec_cell", "exec_range", "exec_all", "insert_and_exec", "run_scratch"}
KERNEL_TOOLS = {"interrupt", "restart_kernel", "shutdown_kernel"}
EDIT_TOOLS = {"insert_cell", "set_cell", "delete_cell", "move_cell", "clear_outputs"}
EDIT_CELLS = ["x = 1", "# notes", "y = 2"]
RUN_CELLS = ["a = 1", "print('b')", "c = a + 1"]


# ---------------------------------------------------------------- the module's server


class Bench:
    """The module's server, its folder, and how far its event log has been read."""

    def __init__(self, server: McpServer, work: Path, tmp: Path) -> None:
        self.server = server
        self.work = work
        self.tmp = tmp
        self.log_offset = 0
        self.job_ids: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Bench({self.work})"

    def new_events(self) -> list[dict[str, Any]]:
        with open(self.server.log_path, "rb") as handle:
            handle.seek(self.log_offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.log_offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


def write_cells(path: Path, sources: list[str]) -> None:
    document = nbformat.v4.new_notebook()
    document.cells = [
        nbformat.v4.new_markdown_cell(s) if s.startswith("#") else nbformat.v4.new_code_cell(s)
        for s in sources
    ]
    temp = path.with_name(f".~{path.name}")
    nbformat.write(document, temp)
    os.replace(temp, path)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    tmp = tmp_path_factory.mktemp("bad_input")
    work = tmp / "work"
    work.mkdir()
    write_cells(work / "t.ipynb", EDIT_CELLS)
    write_cells(work / "run.ipynb", RUN_CELLS)
    (work / "a_dir.ipynb").mkdir()
    (work / "notes.txt").write_text("not a notebook\n")
    (work / "broken.ipynb").write_text('{"cells": [')
    env = server_env(
        tmp,
        NB_MCP_BLOCK_FOR_SEC="2",
        NB_MCP_MAX_BLOCK_FOR_SEC="2",
        NB_MCP_DEFAULT_TIMEOUT_SEC="5",
    )
    try:
        with McpServer(work, env, tmp / "server.stderr") as server:
            yield Bench(server, work, tmp)
    finally:
        # Kernels nb lost track of (see test_client_faults' restart burst) must not outlive us.
        kill_processes_mentioning(str(tmp / "state"))
    validate_logs(tmp)


def snapshot(folder: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry under `folder`: its kind, mtime and content hash (files)."""
    seen = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            seen[os.path.join(root, name)] = ("dir", 0, "")
        for name in files:
            full = os.path.join(root, name)
            stat = os.stat(full)
            digest = hashlib.blake2b(Path(full).read_bytes(), digest_size=16).hexdigest()
            seen[full] = ("file", stat.st_mtime_ns, digest)
    return seen


def without_kernel(seen: dict[str, tuple[str, int, str]]) -> dict[str, tuple[str, int, str]]:
    """A snapshot with each notebook's kernel metadata (kernelspec, nb) left out."""
    kept = {}
    for name, (kind, mtime, digest) in seen.items():
        if kind == "file" and name.endswith(".ipynb"):
            try:
                document = json.loads(Path(name).read_text())
                for key in ("kernelspec", "nb"):
                    document.get("metadata", {}).pop(key, None)
                text = json.dumps(document, sort_keys=True)
                kept[name] = (kind, 0, hashlib.blake2b(text.encode(), digest_size=16).hexdigest())
                continue
            except (OSError, ValueError, AttributeError, TypeError):
                pass  # not a notebook's shape (its metadata a list, say): compared as it is
        kept[name] = (kind, mtime, digest)
    return kept


def changes(before: dict, after: dict) -> list[str]:
    return sorted(
        f"{name}: {before.get(name)} -> {after.get(name)}"
        for name in set(before) | set(after)
        if before.get(name) != after.get(name)
    )


def settle(bench: Bench) -> None:
    """Wait until no job runs, so a late write cannot be blamed on the next call."""

    def idle() -> bool:
        reply = bench.server.call("status")
        assert not reply.is_error, reply.text
        return "Active jobs: none" in reply.text

    wait_for(idle, timeout=60, what="every job to finish")


def keep_usable(bench: Bench) -> None:
    """Put back the cells the fuzzing deleted (as a person would), while nothing runs."""
    for name, cells in (("t.ipynb", EDIT_CELLS), ("run.ipynb", RUN_CELLS)):
        path = bench.work / name
        try:
            count = len(json.loads(path.read_text())["cells"])
        except (OSError, ValueError, KeyError):
            count = 0
        if not 2 <= count <= 25:
            write_cells(path, cells)


def call(bench: Bench, tool: str, arguments: dict[str, Any]) -> Reply:
    future, _ = bench.server.start_call(tool, **arguments)
    return future.result(timeout=90)


def check_call(bench: Bench, tool: str, arguments: dict[str, Any]) -> Reply:
    """Make one call and hold it to the contract; return the reply."""
    settle(bench)
    keep_usable(bench)
    bench.new_events()
    before = snapshot(bench.work)
    before_cells = without_kernel(before)
    reply = call(bench, tool, arguments)
    shown = repr(arguments)[:300]
    assert isinstance(reply.text, str) and reply.text.strip(), (tool, shown)
    crashes = [e for e in bench.new_events() if e["event"] == "error.unhandled"]
    assert not crashes, (tool, shown, crashes[0]["error"])
    assert "internal error" not in reply.text, (tool, shown, reply.text)
    unknown = sorted(set(arguments) - set(PARAMS[tool]))
    if unknown:
        assert reply.is_error and f"{tool} does not take {unknown[0]!r}" in reply.text, reply.text
    optional_path = tool == "list_kernels" and arguments.get("path") is None
    if "path" in PARAMS[tool] and not optional_path and not isinstance(arguments.get("path"), str):
        assert reply.is_error and "path" in reply.text, (tool, shown, reply.text)
    if reply.is_error or tool in READ_TOOLS:  # (nothing runs: see settle)
        settle(bench)
        assert not changes(before, snapshot(bench.work)), (tool, shown, reply.text)
    elif tool in KERNEL_TOOLS:
        # Restarting a kernel chooses one: the notebook's kernel metadata may be written,
        # nothing else.
        settle(bench)
        after = snapshot(bench.work)
        assert not changes(before_cells, without_kernel(after)), (tool, shown, reply.text)
    if not reply.is_error and tool in EXEC_TOOLS | {"exec_status"} and "j-" in reply.text:
        bench.job_ids = (*bench.job_ids, job_id_of(reply.text))
    return reply


# ---------------------------------------------------------------- strategies

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
indices = st.integers(-6, 6) | st.integers() | json_values
PATHS = [
    "t.ipynb",
    "run.ipynb",
    "missing.ipynb",
    "a_dir.ipynb",
    "notes.txt",
    "broken.ipynb",
    "sub/none.ipynb",
    "../outside.ipynb",
    "/etc/passwd",
    "~/x.ipynb",
    "",
    "   ",
    "t.IPYNB",
    "a\x00b.ipynb",
    "x" * 300 + ".ipynb",
]


def path_values(may_create: bool) -> st.SearchStrategy[Any]:
    usable = st.sampled_from(["t.ipynb", "run.ipynb"])
    options = st.one_of(usable, usable, usable, st.sampled_from(PATHS), st.text(max_size=30))
    options = options | json_values
    if may_create:  # a new notebook in the folder is a correct result of insert_cell
        options = options | st.text(
            st.characters(whitelist_categories=("Ll", "Nd")), min_size=1, max_size=8
        ).map(lambda s: f"new_{s}.ipynb")
    return options


def argument_values(tool: str, name: str, bench: Bench) -> st.SearchStrategy[Any]:
    if name == "path":
        return path_values(may_create=tool == "insert_cell")
    if name in ("index", "to", "start", "end"):
        return indices
    if name in ("cell_id", "after_cell_id"):
        return st.sampled_from(["nope", "", "a" * 65, "bad id!"]) | st.text(max_size=10)
    if name in ("source", "code"):
        return st.sampled_from(["z = 3", "print('hi')", "1/0", ""]) | st.text(max_size=40)
    if name == "cell_type":
        return st.sampled_from(["code", "markdown", "raw", "Code", "", "heading"]) | json_values
    if name in ("timeout", "block_for"):
        return st.sampled_from([0, 0.5, -1, 1e308]) | st.integers() | json_values
    if name == "kernel_name":
        return st.sampled_from(["python3", "no-such-kernel", ""]) | json_values
    if name == "job_id":
        return st.sampled_from(["j-00000000", "", "j-xyz"]) | recent_job(bench) | json_values
    if name == "all":
        return st.booleans() | json_values
    raise AssertionError(f"no strategy for {name}")


def current_ids(bench: Bench) -> list[str]:
    ids = []
    for name in ("t.ipynb", "run.ipynb"):
        try:
            ids += [cell["id"] for cell in json.loads((bench.work / name).read_text())["cells"]]
        except (OSError, ValueError, KeyError):
            continue
    return ids or ["none"]


def pick(options: list[str], position: int) -> str:
    return options[position % len(options)]


def recent_job(bench: Bench) -> st.SearchStrategy[str]:
    return st.integers(0, 4).map(lambda i: pick(list(bench.job_ids[-5:]) or ["j-00000000"], i))


def plausible_values(tool: str, name: str, bench: Bench) -> st.SearchStrategy[Any]:
    """Values of the right type and mostly in range: calls that have a chance to succeed."""
    if name == "path":
        return st.sampled_from(["run.ipynb"] if tool in EXEC_TOOLS else ["t.ipynb", "run.ipynb"])
    if name in ("index", "to", "start", "end"):
        return st.integers(-3, 3)
    if name in ("cell_id", "after_cell_id"):
        # Pick by position, so what hypothesis draws does not depend on the files' state.
        return st.integers(0, 9).map(lambda i: pick(current_ids(bench), i))
    if name in ("source", "code"):
        return st.sampled_from(["z = 3", "print('hi')", "# a note", "1/0", ""])
    if name == "cell_type":
        return st.sampled_from(["code", "markdown", "raw"])
    if name == "timeout":
        return st.sampled_from([0, 5, 0.001])
    if name == "block_for":
        return st.sampled_from([0, 0.2, 2])
    if name == "kernel_name":
        return st.just("python3")
    if name == "job_id":
        return recent_job(bench)
    if name == "all":
        return st.booleans()
    raise AssertionError(f"no strategy for {name}")


UNKNOWN = st.sampled_from(["ctx", "idx", "cell", "timeout_sec", "paths", "all_cells", "extra"])


@st.composite
def tool_arguments(draw: st.DrawFn, tool: str, bench: Bench) -> dict[str, Any]:
    plausible = draw(st.booleans())
    values = plausible_values if plausible else argument_values
    arguments = {}
    for name in PARAMS[tool]:
        if draw(st.booleans()) or (name == "path" and draw(st.integers(0, 4)) > 0):
            arguments[name] = draw(values(tool, name, bench))
    if draw(st.integers(0, 7)) == 0:
        unknown = draw(UNKNOWN)
        if unknown not in PARAMS[tool]:
            arguments[unknown] = draw(json_values)
    return arguments


# ---------------------------------------------------------------- the tests


def test_the_fuzzed_argument_lists_are_the_tools_the_server_lists(bench: Bench):
    listed = bench.server.portal.call(bench.server.client.list_tools)
    tools = {tool.name: sorted(tool.input_schema.get("properties", {})) for tool in listed.tools}
    assert tools == {name: sorted(params) for name, params in PARAMS.items()}


@pytest.mark.parametrize("tool", sorted(PARAMS))
@FUZZ
@given(data=st.data())
def test_random_arguments_get_a_clear_error_or_a_correct_result_and_never_a_crash(
    bench: Bench, tool: str, data: st.DataObject
):
    arguments = data.draw(tool_arguments(tool, bench), label="arguments")
    reply = check_call(bench, tool, arguments)
    event("refused" if reply.is_error else "answered")
    if reply.is_error:
        return
    path = arguments.get("path")
    target = bench.work / path if isinstance(path, str) and path.endswith(".ipynb") else None
    if tool in EDIT_TOOLS and target is not None:
        valid_notebook(target)  # an edit that succeeded left a valid notebook
    if tool == "list_cells" and target is not None:
        cells = len(valid_notebook(target)["cells"])
        assert f"{target.name} · {cells} cell" in reply.text, reply.text
    if tool == "read_cell" and target is not None:
        assert f"of {len(valid_notebook(target)['cells'])} · id " in reply.text, reply.text


def test_the_server_is_still_up_and_answering_after_the_fuzzing(bench: Bench):
    assert alive(bench.server.pid)
    reply = bench.server.call("list_cells", path="run.ipynb")
    assert not reply.is_error, reply.text
    events = [e["event"] for e in bench.new_events()]
    assert "error.unhandled" not in events


def test_insert_and_exec_with_an_unknown_kernel_is_refused_without_touching_the_file(
    bench: Bench,
):
    settle(bench)
    before = snapshot(bench.work)
    reply = call(
        bench, "insert_and_exec", {"path": "run.ipynb", "source": "q = 1", "kernel_name": "nope"}
    )
    assert reply.is_error and "no kernel named 'nope'" in reply.text, reply.text
    assert not changes(before, snapshot(bench.work))


@pytest.mark.parametrize(
    "arguments",
    [{"index": 5}, {"after_cell_id": "nope"}, {"cell_type": "heading"}],
    ids=["an index out of range", "an unknown after_cell_id", "an unknown cell type"],
)
def test_an_insert_refused_on_a_missing_notebook_creates_no_file(
    bench: Bench, arguments: dict[str, Any]
):
    name = f"not_yet_{'_'.join(arguments)}.ipynb"
    before = snapshot(bench.work)
    reply = call(bench, "insert_cell", {"path": name, "source": "q = 1", **arguments})
    assert reply.is_error, reply.text
    assert not (bench.work / name).exists()
    assert not changes(before, snapshot(bench.work))


@pytest.mark.parametrize(
    "raw",
    ["a\x00b.ipynb", "x" * 300 + ".ipynb"],
    ids=["a NUL byte", "a name too long for the filesystem"],
)
def test_a_path_the_filesystem_cannot_take_is_a_clear_error_not_an_internal_one(
    bench: Bench, raw: str
):
    bench.new_events()
    before = snapshot(bench.work)
    reply = call(bench, "list_cells", {"path": raw})
    assert reply.is_error, reply.text
    assert "internal error" not in reply.text, reply.text
    assert not [e for e in bench.new_events() if e["event"] == "error.unhandled"]
    assert not changes(before, snapshot(bench.work))


# ---------------------------------------------------------------- malformed notebook files


@pytest.mark.parametrize("cell_type", [None, 5, ["code"], {"a": 1}], ids=repr)
def test_a_notebook_whose_cell_type_is_not_text_is_refused_clearly_and_left_untouched(
    bench: Bench, cell_type: Any
):
    document = _base_notebook()
    document["cells"][0]["cell_type"] = cell_type
    path = bench.work / f"cell_type_{type(cell_type).__name__}.ipynb"
    path.write_text(json.dumps(document, indent=1))
    before = snapshot(bench.work)
    bench.new_events()
    reply = call(bench, "list_cells", {"path": path.name})
    assert reply.is_error and "not a valid notebook" in reply.text, reply.text
    assert "internal error" not in reply.text, reply.text
    assert not [e for e in bench.new_events() if e["event"] == "error.unhandled"]
    assert not changes(before, snapshot(bench.work))


def _base_notebook() -> dict[str, Any]:
    document = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("print('hi')")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    code.execution_count = 1
    document.cells = [code, nbformat.v4.new_markdown_cell("# title")]
    return json.loads(nbformat.writes(document))


def _set(*keys: Any, value: Any):
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def _drop(*keys: Any):
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return mutate


MUTATIONS = [
    _set("cells", value={}),
    _set("cells", value="cells"),
    _set("cells", value=None),
    _set("cells", 0, value=1),
    _set("cells", 0, value=[]),
    _set("cells", 0, "cell_type", value="heading"),
    _set("cells", 0, "cell_type", value=None),
    _set("cells", 0, "source", value=5),
    _set("cells", 0, "source", value={"a": 1}),
    _set("cells", 0, "outputs", value="hi"),
    _set("cells", 0, "outputs", 0, "output_type", value="bogus"),
    _drop("cells", 0, "outputs", 0, "name"),
    _set("cells", 0, "execution_count", value="one"),
    _drop("cells", 0, "metadata"),
    _set("cells", 1, "outputs", value=[]),
    _set("nbformat", value=3),
    _set("nbformat", value=5),
    _set("nbformat", value="4"),
    _drop("nbformat"),
    _set("nbformat_minor", value="5"),
    _set("nbformat_minor", value=True),
    _set("metadata", value=[]),
    _drop("metadata"),
]


def random_json_text() -> st.SearchStrategy[bytes]:
    return json_values.map(lambda value: json.dumps(value).encode())


@st.composite
def truncated_notebook(draw: st.DrawFn) -> bytes:
    text = json.dumps(_base_notebook(), indent=1).encode()
    cut = draw(st.integers(0, len(text.rstrip()) - 1))
    return text[:cut]


@st.composite
def misshapen_notebook(draw: st.DrawFn) -> bytes:
    document = _base_notebook()
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=2)):
        # (an earlier mutation may already have taken the shape away)
        with contextlib.suppress(KeyError, IndexError, TypeError):
            mutation(document)
    return json.dumps(document, indent=1).encode()


malformed_files = (
    random_json_text()
    | truncated_notebook()
    | misshapen_notebook()
    | st.sampled_from([b"", b"\xff\xfe{}", b"\x00" * 8, b"null", b"[]", b"{}"])
    | st.binary(max_size=40)
)

FILE_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("list_cells", {}),
    ("read_cell", {"index": 0}),
    ("insert_cell", {"source": "z = 1"}),
    ("set_cell", {"index": 0, "source": "changed"}),
    ("delete_cell", {"index": 0}),
    ("move_cell", {"index": 0, "to": -1}),
    ("clear_outputs", {"all": True}),
]
_names = itertools.count()


def nbformat_accepts(data: bytes) -> bool:
    """The oracle: nbformat's own validator, on nbformat 4 (what nb reads)."""
    try:
        document = json.loads(data)
    except ValueError:
        return False
    if not isinstance(document, dict) or document.get("nbformat") != 4:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            nbformat.validate(copy.deepcopy(document))
        except Exception:
            return False
    return True


CLEAR_REASONS = (
    "not valid JSON",
    "not a Jupyter notebook",
    "not a valid notebook",
    "nbformat",
    "not UTF-8",
)


@settings(FUZZ, max_examples=60)
@given(content=malformed_files, which=st.sampled_from(FILE_CALLS))
def test_a_malformed_notebook_file_is_refused_clearly_and_never_rewritten(
    bench: Bench, content: bytes, which: tuple[str, dict[str, Any]]
):
    tool, extra = which
    path = bench.work / f"bad_{next(_names)}.ipynb"
    path.write_bytes(content)
    reply = check_call(bench, tool, {"path": path.name, **extra})
    if nbformat_accepts(content):
        return  # a valid notebook: either answer may be right; check_call held the rest
    assert reply.is_error, (content[:200], tool, reply.text)
    assert any(reason in reply.text for reason in CLEAR_REASONS), reply.text
    assert path.read_bytes() == content
