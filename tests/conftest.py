"""Fixtures shared by every test.

Every test gets its own event log and state dir (through the environment, so spawned servers
inherit them), and every event any of them wrote is validated against ops/events.schema.json
when the test ends: an event outside the contract fails the test that produced it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest

from tests.helpers import SCHEMA_PATH, McpServer, read_events, server_env

_VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The tests marked slow go first: with workers sharing the run (`make test`), one of them
    # started last would run on alone while the other workers have nothing left to do.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def schema_errors(events: list[dict]) -> list[str]:
    problems = []
    for event in events:
        for error in _VALIDATOR.iter_errors(event):
            problems.append(f"{event.get('event')}: {error.message}\n    {json.dumps(event)[:400]}")
    return problems


def validate_logs(folder: Path) -> int:
    count = 0
    problems: list[str] = []
    for log in sorted(folder.rglob("*.log")):
        if log.parent.name == "kernels":
            continue  # a kernel's own stdout/stderr, not events
        events = read_events(log)
        count += len(events)
        problems.extend(schema_errors(events))
    assert not problems, "events outside ops/events.schema.json:\n" + "\n".join(problems)
    return count


@pytest.fixture(autouse=True)
def event_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Route this test's events and state into tmp_path, then hold them to the schema."""
    monkeypatch.setenv("NB_MCP_LOG_PATH", str(tmp_path / "events.log"))
    monkeypatch.setenv("NB_MCP_STATE_DIR", str(tmp_path / "state"))
    yield tmp_path
    validate_logs(tmp_path)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def server(tmp_path: Path, workdir: Path) -> Iterator[McpServer]:
    """A fresh `nb mcp` in `workdir`, driven by the real MCP SDK client over stdio."""
    with McpServer(workdir, server_env(tmp_path), tmp_path / "server.stderr") as running:
        yield running


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpServer]:
    """One `nb mcp` for a module of tests that each use their own notebook files."""
    tmp = tmp_path_factory.mktemp("shared")
    workdir = tmp / "work"
    workdir.mkdir()
    with McpServer(workdir, server_env(tmp), tmp / "server.stderr") as running:
        yield running
    validate_logs(tmp)


class ReadOnlyFolder:
    """A folder that can be made read-only for real, even for root (a tmpfs remounted ro)."""

    def __init__(self, path: Path, mounted: bool) -> None:
        self.path = path
        self.mounted = mounted

    def make_read_only(self) -> None:
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)
        else:
            os.chmod(self.path, 0o555)

    def make_writable(self) -> None:
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,rw", str(self.path)], check=True)
        else:
            os.chmod(self.path, 0o755)

    def release(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
        else:
            os.chmod(self.path, 0o755)


@pytest.fixture
def read_only_folder() -> Iterator[Callable[[Path], ReadOnlyFolder]]:
    made: list[ReadOnlyFolder] = []

    def make(path: Path) -> ReadOnlyFolder:
        path.mkdir()
        if os.geteuid() != 0:
            folder = ReadOnlyFolder(path, mounted=False)
        else:
            mounted = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)], capture_output=True
            )
            if mounted.returncode != 0:
                pytest.skip(
                    "running as root without the right to mount: root ignores file modes, so "
                    "there is no way to make a folder read-only here "
                    f"({mounted.stderr.decode().strip()})"
                )
            folder = ReadOnlyFolder(path, mounted=True)
        made.append(folder)
        return folder

    yield make
    for folder in made:
        folder.release()
