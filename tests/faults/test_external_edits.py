"""A person edits the notebook by hand while a job streams output into it.

The person is this test, saving the whole file the way JupyterLab does (write, then rename),
from a copy read off the disk: outputs must land in the running cell by id wherever it went,
the person's changes must survive, and a running cell deleted by hand must cost a warning,
never an exception.

Most tests here are about merging by cell id, so the person saves while the streaming cell
holds its breath (it prints, pauses, the test saves, it goes on printing): nb is not writing at
that moment, and the next flush must merge. When exactly a save may land relative to nb's own
write is the subject of the last test, which saves at the worst moments on purpose.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat

from tests.faults.writer_support import (
    cell_by_id,
    events_of,
    job_id_of,
    markers_of,
    save_as_person,
    stdout_of,
    ticks_of,
    valid_notebook,
)
from tests.helpers import McpServer, load, notebook, server_env, wait_for


class Stream:
    """A cell printing `tick N` lines, which can pause on request and then go on."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.stop = tmp_path / f"{name}.stop"
        self.pause = tmp_path / f"{name}.pause"
        self.resume = tmp_path / f"{name}.resume"

    @property
    def code(self) -> str:
        return (
            "import os, time\n"
            "n = 0\n"
            "said = False\n"
            f"while not os.path.exists({str(self.stop)!r}):\n"
            f"    if os.path.exists({str(self.pause)!r}) and "
            f"not os.path.exists({str(self.resume)!r}):\n"
            "        if not said:\n"
            "            print(f'paused at {n}', flush=True)\n"
            "            said = True\n"
            "        time.sleep(0.01)\n"
            "        continue\n"
            "    print(f'tick {n}', flush=True)\n"
            "    n += 1\n"
            "    time.sleep(0.02)\n"
            "print(f'final {n}')\n"
        )

    def hold(self, server: McpServer, path: Path, cell_id: str) -> list[int]:
        """Pause the cell; return once nb has written its last output and is idle."""
        self.pause.touch()
        wait_for(
            lambda: "paused at" in stdout_of(cell_by_id(path, cell_id) or {}),
            timeout=20,
            what="the pause to reach the file",
        )
        # A reply on this notebook: the writer has finished that write (one mailbox).
        assert not server.call("list_cells", path=path.name).is_error
        return ticks_of(cell_by_id(path, cell_id) or {})

    def go_on(self) -> None:
        self.resume.touch()


def start(server: McpServer, name: str, tool: str = "exec_cell", **arguments) -> str:
    reply = server.call(tool, path=name, block_for=0, **arguments)
    assert not reply.is_error, reply.text
    return job_id_of(reply.text)


def wait_for_ticks(path: Path, cell_id: str, at_least: int) -> list[int]:
    def enough() -> list[int] | None:
        cell = cell_by_id(path, cell_id)
        ticks = ticks_of(cell) if cell is not None else []
        return ticks if len(ticks) >= at_least else None

    return wait_for(enough, timeout=30, what=f"{at_least} ticks of cell {cell_id} on disk")


def newer_ticks_on_disk(path: Path, cell_id: str, than: list[int]) -> bool:
    """The running cell on disk has ticks printed after the person's save."""
    cell = cell_by_id(path, cell_id)
    return cell is not None and max(ticks_of(cell), default=-1) > max(than, default=-1) + 3


def finish(server: McpServer, stop: Path, job_id: str) -> str:
    stop.touch()
    reply = server.call("exec_status", job_id=job_id, block_for=25)
    assert not reply.is_error, reply.text
    assert f"Job {job_id}" in reply.text, reply.text
    return reply.text


def assert_every_tick_in_order(cell: dict) -> None:
    ticks = ticks_of(cell)
    assert ticks == list(range(len(ticks))), ticks
    assert stdout_of(cell).endswith(f"final {len(ticks)}\n")
    assert "✓ Done" in markers_of(cell)[-1], markers_of(cell)


def sources(saved: dict) -> list[str]:
    return ["".join(cell["source"]) for cell in saved["cells"]]


def test_cells_a_person_adds_above_the_running_cell_survive_and_its_outputs_stay_in_it(
    shared_server, tmp_path
):
    stream = Stream(tmp_path, "above")
    path = notebook(shared_server, "above.ipynb", stream.code, "after = 1")
    running = valid_notebook(path)["cells"][0]["id"]
    job_id = start(shared_server, "above.ipynb", index=0)
    wait_for_ticks(path, running, 3)
    seen = stream.hold(shared_server, path, running)
    document = nbformat.read(path, as_version=4)
    document.cells.insert(0, nbformat.v4.new_markdown_cell("# Notes a person added"))
    document.cells.insert(1, nbformat.v4.new_code_cell("added_by_hand = True"))
    save_as_person(path, document)
    stream.go_on()

    def merged() -> bool:
        saved = valid_notebook(path)
        return sources(saved)[:2] == ["# Notes a person added", "added_by_hand = True"] and (
            newer_ticks_on_disk(path, running, seen)
        )

    wait_for(merged, timeout=20, what="the person's cells and newer ticks in the file")
    assert "▶ Running" in markers_of(cell_by_id(path, running))[0]  # still pinned on top
    reply = finish(shared_server, stream.stop, job_id)
    assert ": ok" in reply and f"[2] {running}" in reply, reply  # its index now
    saved = valid_notebook(path)
    assert sources(saved) == [
        "# Notes a person added",
        "added_by_hand = True",
        stream.code,
        "after = 1",
    ]
    assert saved["cells"][2]["id"] == running
    assert_every_tick_in_order(saved["cells"][2])
    assert saved["cells"][1]["outputs"] == [] and saved["cells"][1]["execution_count"] is None
    assert saved["cells"][3]["outputs"] == []
    assert events_of(shared_server, "writer.external_change_merged", notebook=str(path))
    assert not events_of(shared_server, "writer.output_dropped", notebook=str(path))


def test_a_running_cell_moved_by_hand_keeps_receiving_its_outputs_where_it_went(
    shared_server, tmp_path
):
    stream = Stream(tmp_path, "move")
    path = notebook(shared_server, "move.ipynb", stream.code, "b = 2", "c = 3")
    running = valid_notebook(path)["cells"][0]["id"]
    job_id = start(shared_server, "move.ipynb", index=0)
    wait_for_ticks(path, running, 3)
    seen = stream.hold(shared_server, path, running)
    document = nbformat.read(path, as_version=4)
    document.cells.append(document.cells.pop(0))
    save_as_person(path, document)
    stream.go_on()

    def merged() -> bool:
        saved = valid_notebook(path)
        return saved["cells"][2]["id"] == running and newer_ticks_on_disk(path, running, seen)

    wait_for(merged, timeout=20, what="the moved cell to keep receiving ticks")
    reply = finish(shared_server, stream.stop, job_id)
    assert ": ok" in reply and f"[2] {running}" in reply, reply
    saved = valid_notebook(path)
    assert sources(saved) == ["b = 2", "c = 3", stream.code]
    assert_every_tick_in_order(saved["cells"][2])
    assert saved["cells"][0]["outputs"] == [] and saved["cells"][1]["outputs"] == []
    assert not events_of(shared_server, "writer.output_dropped", notebook=str(path))


def test_sources_a_person_edits_during_a_job_survive_and_a_queued_cell_runs_the_edited_source(
    shared_server, tmp_path
):
    stream = Stream(tmp_path, "edit")
    path = notebook(shared_server, "edit.ipynb", stream.code, "print('queued cell: old source')")
    document = nbformat.read(path, as_version=4)
    document.cells.append(nbformat.v4.new_markdown_cell("old notes"))
    nbformat.write(document, path)
    running, queued, _ = [c["id"] for c in valid_notebook(path)["cells"]]
    job_id = start(shared_server, "edit.ipynb", tool="exec_all")
    wait_for_ticks(path, running, 3)
    wait_for(
        lambda: any("⏳ Queued" in m for m in markers_of(cell_by_id(path, queued))),
        timeout=10,
        what="the second cell's Queued marker",
    )
    seen = stream.hold(shared_server, path, running)
    document = nbformat.read(path, as_version=4)
    document.cells[1].source = "print('queued cell: new source, edited by hand')"
    document.cells[2].source = "new notes, longer than the old ones"
    save_as_person(path, document)
    stream.go_on()

    def merged() -> bool:
        saved = valid_notebook(path)
        return sources(saved)[1:] == [
            "print('queued cell: new source, edited by hand')",
            "new notes, longer than the old ones",
        ] and newer_ticks_on_disk(path, running, seen)

    wait_for(merged, timeout=20, what="the person's edits and newer ticks in the file")
    reply = finish(shared_server, stream.stop, job_id)
    assert ": ok" in reply and "queued cell: new source, edited by hand" in reply, reply
    saved = valid_notebook(path)
    assert sources(saved) == [
        stream.code,
        "print('queued cell: new source, edited by hand')",
        "new notes, longer than the old ones",
    ]
    assert_every_tick_in_order(saved["cells"][0])
    assert stdout_of(saved["cells"][1]) == "queued cell: new source, edited by hand\n"
    assert not events_of(shared_server, "writer.output_dropped", notebook=str(path))


def test_a_running_cell_deleted_by_hand_is_reported_and_its_outputs_come_back_in_the_reply(
    shared_server, tmp_path
):
    stream = Stream(tmp_path, "delete")
    path = notebook(shared_server, "delete.ipynb", stream.code, "kept = 1")
    running, kept = [c["id"] for c in valid_notebook(path)["cells"]]
    job_id = start(shared_server, "delete.ipynb", index=0)
    wait_for_ticks(path, running, 3)
    stream.hold(shared_server, path, running)
    document = nbformat.read(path, as_version=4)
    del document.cells[0]
    save_as_person(path, document)
    stream.go_on()
    dropped = wait_for(
        lambda: events_of(
            shared_server, "writer.output_dropped", notebook=str(path), cell_id=running
        ),
        timeout=20,
        what="writer.output_dropped for the deleted cell",
    )
    assert "deleted" in dropped[0]["reason"]
    listing = shared_server.call("list_cells", path="delete.ipynb")
    assert not listing.is_error, listing.text
    assert f"cell {running} was deleted from the file while it ran" in listing.text, listing.text
    assert f"0  {kept}" in listing.text and running not in listing.text.splitlines()[1]
    reply = finish(shared_server, stream.stop, job_id)
    assert ": ok" in reply, reply
    assert "deleted from the file while it ran; outputs shown here only" in reply, reply
    assert "tick 0" in reply and "final " in reply, reply
    saved = valid_notebook(path)
    assert [c["id"] for c in saved["cells"]] == [kept]
    assert sources(saved) == ["kept = 1"] and saved["cells"][0]["outputs"] == []
    assert not events_of(shared_server, "error.unhandled")
    finished = events_of(shared_server, "job.finished", job_id=job_id)
    assert [e["status"] for e in finished] == ["ok"]


def test_a_half_saved_file_is_never_overwritten_and_the_next_valid_save_is_merged(
    shared_server, tmp_path
):
    stream = Stream(tmp_path, "half")
    path = notebook(shared_server, "half.ipynb", stream.code)
    running = valid_notebook(path)["cells"][0]["id"]
    job_id = start(shared_server, "half.ipynb", index=0)
    wait_for_ticks(path, running, 3)
    stream.hold(shared_server, path, running)
    document = nbformat.read(path, as_version=4)
    whole = path.read_bytes()
    half = whole[: len(whole) // 2]
    failures_before = len(events_of(shared_server, "writer.flush_failed", notebook=str(path)))
    path.write_bytes(half)  # an editor caught in the middle of saving, in place
    stream.go_on()
    wait_for(
        lambda: (
            len(events_of(shared_server, "writer.flush_failed", notebook=str(path)))
            >= failures_before + 2
        ),
        timeout=20,
        what="writes refused twice while the file is broken",
    )
    assert path.read_bytes() == half
    listing = shared_server.call("list_cells", path="half.ipynb")
    assert not listing.is_error, listing.text  # nb's copy is still there to read
    assert "not a valid notebook right now" in listing.text, listing.text
    assert path.read_bytes() == half
    document.cells.append(nbformat.v4.new_markdown_cell("saved properly this time"))
    save_as_person(path, document)  # nb does not write while the file is broken: no race
    wait_for(
        lambda: events_of(shared_server, "writer.flush_recovered", notebook=str(path)),
        timeout=30,
        what="writer.flush_recovered after the valid save",
    )
    reply = finish(shared_server, stream.stop, job_id)
    assert ": ok" in reply, reply
    saved = valid_notebook(path)
    assert sources(saved) == [stream.code, "saved properly this time"]
    assert_every_tick_in_order(saved["cells"][0])


def until(condition, what: str) -> None:
    """Spin (no sleep: the moment lasts milliseconds) until `condition()`; fail after 10 s."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"


def inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def test_a_person_saving_while_nb_writes_the_file_never_loses_the_save(tmp_path, workdir):
    # The person's editor has its temp file ready and renames it over the notebook at the
    # worst moments: while nb writes its own temp file (nb has already looked at the disk),
    # and right after nb's rename (before nb has looked at what it wrote). Such a save must be
    # merged like any other, never overwritten.
    env = server_env(tmp_path, NB_MCP_FLUSH_INTERVAL_SEC="0.01")
    stop = tmp_path / "race.stop"
    code = (
        "import os, time\n"
        "n = 0\n"
        f"while not os.path.exists({str(stop)!r}):\n"
        "    print(f'\\rtick {n}', end='', flush=True)\n"
        "    n += 1\n"
        "    time.sleep(0.002)\n"
        "print(f'\\rfinal {n}')\n"
    )
    with McpServer(workdir, env, tmp_path / "stderr") as server:
        path = notebook(server, "race.ipynb", code)
        job_id = start(server, "race.ipynb", index=0)
        wait_for(lambda: "tick" in stdout_of(load(path)["cells"][0]), what="the cell to print")
        ours = f".{path.name}."
        notes = [f"note {k} saved by hand" for k in range(12)]
        for k, note in enumerate(notes):
            document = nbformat.read(path, as_version=4)
            document.cells.insert(0, nbformat.v4.new_markdown_cell(note))
            ready = path.with_name(f".~{path.name}")
            nbformat.write(document, ready)
            if k % 2 == 0:
                until(
                    lambda: any(p.name.startswith(ours) for p in path.parent.iterdir()),
                    "nb's temp file",
                )
            else:
                before = inode(path)
                until(lambda before=before: inode(path) != before, "nb's next rename")
            os.replace(ready, path)
        reply = finish(server, stop, job_id)
        assert ": ok" in reply, reply
    saved = valid_notebook(path)
    assert sources(saved) == [*reversed(notes), code], "a save by hand was lost"
    assert re.fullmatch(r"final \d+\n", stdout_of(saved["cells"][-1]))


def test_an_editor_that_rereads_and_saves_25_times_while_a_cell_streams_loses_nothing(
    tmp_path, workdir
):
    # An editor that reloads the file whenever it changes and saves after each of the
    # person's edits (a cell added at the end), replacing the file atomically, 25 times, while
    # a cell prints a line every 2 ms. Each save waits for nb's next write, so every one of
    # them meets a file nb has just written, and nb meets a save in the middle of its writes.
    env = server_env(tmp_path, NB_MCP_FLUSH_INTERVAL_SEC="0.01")
    stop = tmp_path / "lines.stop"
    code = (
        "import os, time\n"
        "n = 0\n"
        f"while not os.path.exists({str(stop)!r}):\n"
        "    print(f'line {n}', flush=True)\n"
        "    n += 1\n"
        "    time.sleep(0.002)\n"
        "print(f'final {n}')\n"
    )
    with McpServer(workdir, env, tmp_path / "stderr") as server:
        path = notebook(server, "editor.ipynb", code)
        job_id = start(server, "editor.ipynb", index=0)
        wait_for(lambda: "line 0" in stdout_of(load(path)["cells"][0]), what="the first line")
        for k in range(25):
            document = nbformat.read(path, as_version=4)
            document.cells.append(nbformat.v4.new_markdown_cell(f"save {k}"))
            save_as_person(path, document)
            ours = inode(path)
            until(lambda ours=ours: inode(path) != ours, "nb's next write after the save")
        reply = finish(server, stop, job_id)
        assert ": ok" in reply, reply
    saved = valid_notebook(path)
    assert sources(saved) == [code, *(f"save {k}" for k in range(25))], "a save was lost"
    printed = stdout_of(saved["cells"][0]).splitlines()
    assert printed[-1].startswith("final "), printed[-3:]
    count = int(printed[-1].split()[1])
    assert printed == [*(f"line {n}" for n in range(count)), f"final {count}"], "output lost"
