"""`nb serve --http`: the same tools over MCP streamable HTTP, for agents on another machine."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.helpers import NB, roots_callback, server_env, wait_for


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def http_daemon(tmp_path: Path, workdir: Path) -> Iterator[tuple[int, dict[str, str]]]:
    port = free_port()
    env = server_env(tmp_path, NB_MCP_ROOTS=str(workdir))
    daemon = subprocess.Popen(
        [NB, "serve", "--http", f"127.0.0.1:{port}"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: answers(port) or daemon.poll() is not None,
            timeout=30,
            what="the HTTP front to listen",
        )
        assert daemon.poll() is None, daemon.stderr.read()
        yield port, env
    finally:
        subprocess.run([NB, "stop"], env=env, capture_output=True, timeout=60)
        daemon.wait(timeout=30)


async def call(
    port: int, token: str, tool: str, arguments: dict, roots: list[Path] | None = None
) -> tuple[bool, str]:
    """(is_error, text) of one tool call; `roots`: the client declares them (legacy protocol)."""
    headers = {"Authorization": f"Bearer {token}"}
    extra: dict = {}
    if roots is not None:
        extra = {"list_roots_callback": roots_callback(roots), "mode": "legacy"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(
            streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http), **extra
        ) as client,
    ):
        result = await client.call_tool(tool, arguments)
        return bool(result.is_error), "".join(c.text for c in result.content if c.type == "text")


def test_an_agent_with_the_token_runs_cells_over_http(http_daemon, tmp_path, workdir):
    port, _ = http_daemon
    token_file = tmp_path / "state" / "http.token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    token = token_file.read_text().strip()
    failed, reply = anyio.run(
        call, port, token, "insert_and_exec", {"path": "remote.ipynb", "source": "print(6 * 7)"}
    )
    assert not failed, reply
    assert "42" in reply
    assert (workdir / "remote.ipynb").exists()  # relative paths start at the first root
    elsewhere = {"path": str(tmp_path / "elsewhere.ipynb"), "source": "x"}
    failed, outside = anyio.run(call, port, token, "insert_cell", elsewhere)
    assert failed and "outside the folders nb may touch" in outside


def test_a_remote_clients_roots_do_not_widen_the_servers(http_daemon, tmp_path):
    port, _ = http_daemon
    token = (tmp_path / "state" / "http.token").read_text().strip()
    target = tmp_path / "elsewhere.ipynb"
    failed, reply = anyio.run(
        call, port, token, "insert_cell", {"path": str(target), "source": "x"}, [Path("/")]
    )
    assert failed and "outside the folders nb may touch" in reply
    assert not target.exists()


def test_a_request_without_the_token_is_refused(http_daemon):
    port, _ = http_daemon
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/mcp",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json", **headers},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 401


def test_serving_beyond_loopback_without_a_token_is_refused(tmp_path, workdir):
    env = server_env(tmp_path, NB_MCP_ROOTS=str(workdir))
    result = subprocess.run(
        [NB, "serve", "--http", "0.0.0.0:0", "--no-token"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to serve 0.0.0.0 without a token" in result.stderr


def test_http_needs_roots_since_remote_agents_have_no_folder_here(tmp_path):
    env = server_env(tmp_path)
    env.pop("NB_MCP_ROOTS", None)
    result = subprocess.run(
        [NB, "serve", "--http", "127.0.0.1:0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "NB_MCP_ROOTS" in result.stderr
