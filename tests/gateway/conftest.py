"""Fixtures for the gateway backend's tests: real gateways, a proxy, an actor that records.

The gateways' venvs are built (or found in the cache) once collection is over, before any test
runs, so their build time never eats into a test's timeout; how long it took is printed at
the end of the run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.cells import Recorder
from tests.gateway.support import RunningGateway, TcpProxy, start_gateway
from tests.gateway.venvs import enterprise_gateway_venv, kernel_gateway_venv

_BUILDS: dict[str, str] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = {
        item.nodeid.split("::")[0] for item in session.items if "tests/gateway/" in item.nodeid
    }
    if not wanted:
        return
    builds = [("Kernel Gateway", kernel_gateway_venv)]
    if any("enterprise" in path for path in wanted):
        builds.append(("Enterprise Gateway", enterprise_gateway_venv))
    for name, build in builds:
        began = time.monotonic()
        venv = build()
        _BUILDS[name] = (
            f"found in the cache ({time.monotonic() - began:.1f}s): {venv.path}"
            if venv.build_sec is None
            else f"built in {venv.build_sec:.1f}s: {venv.path}"
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name, what in _BUILDS.items():
        terminalreporter.write_line(f"{name} venv {what}")


@pytest.fixture(scope="session")
def kernel_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """One Kernel Gateway for the whole run: each test starts kernels of its own on it."""
    gateway = start_gateway(
        "kernel",
        kernel_gateway_venv(),
        tmp_path_factory.mktemp("kernel-gateway"),
        "--KernelGatewayApp.list_kernels=True",
    )
    gateway.add_kernelspec(
        "broken", ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    )
    yield gateway
    gateway.stop()


@pytest.fixture
def own_kernel_gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    """A Kernel Gateway for one test that kills it."""
    gateway = start_gateway("kernel", kernel_gateway_venv(), tmp_path / "own-gateway")
    yield gateway
    gateway.stop()


@pytest.fixture(scope="session")
def enterprise_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    gateway = start_gateway(
        "enterprise", enterprise_gateway_venv(), tmp_path_factory.mktemp("enterprise-gateway")
    )
    yield gateway
    gateway.stop()


@pytest.fixture
def proxy(kernel_gateway: RunningGateway) -> Iterator[TcpProxy]:
    running = TcpProxy(kernel_gateway.port)
    yield running
    running.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    actor = Recorder()
    yield actor
    actor.stop()
