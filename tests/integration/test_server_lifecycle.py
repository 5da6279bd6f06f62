"""Start-up and shutdown of `nb mcp`: every way it can be told to stop ends cleanly."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.helpers import McpServer, read_events, server_env, wait_for


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); its state in /proc tells.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_closing_stdin_stops_the_server_with_server_stopped_as_the_last_line(
    tmp_path: Path, workdir: Path
):
    server = McpServer(workdir, server_env(tmp_path), tmp_path / "stderr")
    server.call("insert_cell", path="a.ipynb", source="x = 1")
    pid = server.pid
    server.close()
    wait_for(lambda: _gone(pid), what="the server to exit")
    events = read_events(tmp_path / "events.log")
    assert events[0]["event"] == "server.started"
    assert events[-1]["event"] == "server.stopped"
    assert events[-1]["reason"] == "stdin closed"
    assert not list((tmp_path / "state" / "servers").glob("*.json"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_cleanly(tmp_path: Path, workdir: Path, signum: int):
    server = McpServer(workdir, server_env(tmp_path), tmp_path / "stderr")
    try:
        server.call("insert_cell", path="a.ipynb", source="x = 1")
        assert (tmp_path / "state" / "servers" / f"{server.pid}.json").exists()
        os.kill(server.pid, signum)
        wait_for(lambda: _gone(server.pid), what="the server to exit")
    finally:
        server.close()
    events = read_events(tmp_path / "events.log")
    assert events[-1]["event"] == "server.stopped"
    assert events[-1]["reason"] == signal.Signals(signum).name
    assert not list((tmp_path / "state" / "servers").glob("*.json"))


def test_an_unwritable_event_log_sends_events_to_stderr_and_never_to_stdout(
    tmp_path: Path, workdir: Path
):
    blocked = tmp_path / "not-a-file"
    blocked.mkdir()
    env = server_env(tmp_path, NB_MCP_LOG_PATH=str(blocked))
    stderr = tmp_path / "stderr"
    with _spawn_without_log(workdir, env, stderr) as client_reply:
        assert not client_reply.is_error, client_reply.text
    text = stderr.read_text()
    assert "nb: warning: cannot write the event log" in text
    assert '"event": "server.started"' in text and '"event": "server.stopped"' in text


def _spawn_without_log(workdir: Path, env: dict, stderr: Path):
    import contextlib

    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from tests.helpers import NB, Reply

    @contextlib.contextmanager
    def run():
        async def go() -> Reply:
            with open(stderr, "w") as errlog:
                params = StdioServerParameters(
                    command=NB, args=["mcp", "--in-process"], cwd=str(workdir), env=env
                )
                async with Client(stdio_client(params, errlog=errlog)) as client:
                    result = await client.call_tool("insert_cell", {"path": "a.ipynb"})
                    text = "".join(c.text for c in result.content if c.type == "text")
                    return Reply(text, bool(result.is_error))

        yield anyio.run(go)

    return run()
