"""Fixtures for the tests of sessions and project environments: the projects (real venvs,
made once per test run) and a daemon shared by a test's fronts, stopped when the test ends."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.envs import Projects, make_projects
from tests.helpers import NB, server_env


@pytest.fixture(scope="session")
def projects(tmp_path_factory: pytest.TempPathFactory) -> Projects:
    return make_projects(tmp_path_factory.mktemp("projects"))


@pytest.fixture
def daemon_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The settings every client of this test's daemon shares (its state dir, its log)."""
    environment = server_env(tmp_path)
    yield environment
    subprocess.run([NB, "stop"], env=environment, capture_output=True, timeout=90)
    subprocess.run([NB, "cleanup"], env=environment, capture_output=True, timeout=30)
