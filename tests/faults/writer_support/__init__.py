"""What the writer/edit/server fault tests share: real mounts, a file watcher, a person's save.

Nothing here fakes nb: the faults are made for real (a small tmpfs filled up, a folder
remounted read-only, RLIMIT_FSIZE on the server process, a file replaced by a folder), and the
checks read what a user would read: the file, the reply text, the event lines, /proc.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.helpers import McpServer, events_named, load


def job_id_of(text: str) -> str:
    found = re.search(r"j-[0-9a-f]{8}", text)
    assert found, f"no job id in the reply: {text}"
    return found.group(0)


def alive(pid: int) -> bool:
    """True while `pid` is a live process (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def ticker(stop_flag: Path, before: str = "", period: float = 0.02) -> str:
    """Cell code printing `tick N` lines until `stop_flag` exists, then `final N`."""
    return (
        "import os, time\n"
        f"{before}\n"
        "n = 0\n"
        f"while not os.path.exists({str(stop_flag)!r}):\n"
        "    print(f'tick {n}', flush=True)\n"
        "    n += 1\n"
        f"    time.sleep({period})\n"
        "print(f'final {n}')\n"
    )


def ticks_of(cell: dict[str, Any]) -> list[int]:
    """The tick numbers a ticker cell printed, in the order they are in the outputs."""
    text = "".join(
        "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )
    return [int(n) for n in re.findall(r"^tick (\d+)$", text, re.M)]


def stdout_of(cell: dict[str, Any]) -> str:
    return "".join(
        "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )


def markers_of(cell: dict[str, Any]) -> list[str]:
    return [
        "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream"
        and o.get("name") == "stderr"
        and "".join(o["text"]).startswith("[nb mcp]")
    ]


def cell_by_id(path: Path, cell_id: str) -> dict[str, Any] | None:
    return next((c for c in load(path)["cells"] if c["id"] == cell_id), None)


def valid_notebook(path: Path) -> dict[str, Any]:
    """The file parsed as JSON and validated by nbformat (raises if it is not a notebook)."""
    data = json.loads(path.read_bytes())
    nbformat.validate(nbformat.from_dict(data))
    return data


def leftover_temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.nbtmp")) + sorted(folder.glob(".*.nbtmp"))


def save_as_person(path: Path, document: Any) -> None:
    """Save like JupyterLab does: the whole notebook to a temp file, then rename over it."""
    temp = path.with_name(f".~{path.name}")
    nbformat.write(document, temp)
    os.replace(temp, path)


def events_of(server: McpServer, name: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in events_named(server.events(), name)
        if all(e.get(key) == value for key, value in fields.items())
    ]


class FileWatcher:
    """Reads a notebook over and over in a thread; every read must be a valid notebook.

    `allow_missing`/`allow_directory`: what may also be at the path during the fault (a
    directory a person put there, nothing between a delete and a re-create), never a
    partial file.
    """

    def __init__(
        self, path: Path, allow_missing: bool = False, allow_directory: bool = False
    ) -> None:
        self.path = path
        self.allow_missing = allow_missing
        self.allow_directory = allow_directory
        self.reads = 0
        self.problems: list[str] = []
        self.contents: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="file-watcher")

    def __enter__(self) -> FileWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check_once()
            self._stop.wait(0.005)

    def check_once(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            if not self.allow_missing:
                self.problems.append("the notebook file was missing")
            return
        except IsADirectoryError:
            if not self.allow_directory:
                self.problems.append("the notebook path was a directory")
            return
        self.reads += 1
        try:
            nbformat.validate(nbformat.from_dict(json.loads(data)))
        except Exception as error:  # any failure is what we are looking for
            self.problems.append(f"{type(error).__name__}: {str(error)[:200]} ({len(data)} bytes)")
            return
        if not self.contents or self.contents[-1] != data:
            self.contents.append(data)


class Mounts:
    """Small tmpfs mounts made for one test, each lazily unmounted at the end."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def tmpfs(self, path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root; there is no other way to fill a disk")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(
                "running as root without the right to mount: no small filesystem to fill "
                f"({done.stderr.strip()})"
            )
        self.mounted.append(path)
        return path

    def release(self) -> None:
        for path in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
        self.mounted.clear()


@contextlib.contextmanager
def mounts() -> Iterator[Mounts]:
    made = Mounts()
    try:
        yield made
    finally:
        made.release()


def fill_disk(folder: Path, name: str = "filler.bin") -> Path:
    """Write a file until the filesystem under `folder` is full (ENOSPC); return it."""
    filler = folder / name
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
    # Prove it: not even one more byte fits.
    probe = folder / ".probe"
    try:
        with open(probe, "wb", buffering=0) as handle:
            handle.write(chunk)
    except OSError as error:
        assert error.errno == errno.ENOSPC, error
    else:
        raise AssertionError(f"{folder} is not full after writing {filler}")
    finally:
        probe.unlink(missing_ok=True)
    return filler


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (e.g. a test's own state dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def kill_processes_mentioning(text: str) -> list[int]:
    """Kill what a test's servers left behind (cleanup, not an assertion); return the pids."""
    pids = processes_mentioning(text)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, 9)
    return pids
