"""The security model: who can reach a kernel, which files the tools may touch, what is logged."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from pathlib import Path

import nbformat
import pytest

from tests.helpers import (
    NB,
    McpServer,
    events_named,
    notebook,
    read_events,
    server_env,
    wait_for,
)

NOBODY = 65534


def connects_as(uid: int, address: str | tuple[str, int]) -> bool:
    """Whether a process running as `uid` can connect to a Unix or TCP socket."""
    pid = os.fork()
    if pid == 0:  # the child: drop to `uid`, try, report through the exit status
        code = 2
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(address)
            code = 0
        except PermissionError:
            code = 1
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 1), f"the probe as uid {uid} failed unexpectedly (exit {code})"
    return code == 0


def connection_file(server: McpServer) -> dict:
    (path,) = (server.env_path("NB_MCP_STATE_DIR") / "runtime").glob("kernel-*.json")
    return {"path": path, **json.loads(path.read_text())}


@pytest.fixture
def as_root():
    if os.geteuid() != 0:
        pytest.skip("switching to another uid needs root; this run is not root")


def test_kernel_sockets_are_files_only_their_owner_can_reach(server, as_root):
    notebook(server, "k.ipynb", "x = 1")
    assert "ok" in server.call("exec_cell", path="k.ipynb", index=0).text
    info = connection_file(server)
    assert info["transport"] == "ipc"
    assert stat.S_IMODE(os.stat(info["path"]).st_mode) == 0o600
    socket_path = f"{info['ip']}-{info['iopub_port']}"
    folder = Path(socket_path).parent
    assert stat.S_IMODE(os.stat(folder).st_mode) & 0o777 == 0o700
    assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
    assert connects_as(os.getuid(), socket_path)  # the path is right: the owner gets in
    assert not connects_as(NOBODY, socket_path)
    assert not connects_as(NOBODY, f"{info['ip']}-{info['shell_port']}")


def test_tcp_transport_is_opt_in_warned_about_and_reachable_by_anyone(tmp_path, workdir, as_root):
    env = server_env(tmp_path, NB_MCP_KERNEL_TRANSPORT="tcp")
    with McpServer(workdir, env, tmp_path / "stderr") as server:
        notebook(server, "t.ipynb", "x = 1")
        assert "ok" in server.call("exec_cell", path="t.ipynb", index=0).text
        info = connection_file(server)
        assert info["transport"] == "tcp"
        assert connects_as(NOBODY, (info["ip"], info["iopub_port"]))
        (warning,) = events_named(server.events(), "config.warning")
        assert warning["setting"] == "NB_MCP_KERNEL_TRANSPORT=tcp"


def test_the_event_log_is_private_and_never_holds_the_kernel_key(server):
    notebook(server, "key.ipynb", "print('hello')")
    server.call("exec_cell", path="key.ipynb", index=0)
    key = connection_file(server)["key"]
    assert len(key) >= 16
    assert stat.S_IMODE(os.stat(server.log_path).st_mode) == 0o600
    assert key not in server.log_path.read_text()
    state = server.env_path("NB_MCP_STATE_DIR")
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    document = nbformat.v4.new_notebook()
    document.cells = [nbformat.v4.new_code_cell("secret = 1")]
    nbformat.write(document, folder / "secret.ipynb")
    return folder / "secret.ipynb"


def escapes(workdir: Path, outside: Path) -> list[str]:
    (workdir / "link.ipynb").symlink_to(outside)
    (workdir / "linked-folder").symlink_to(outside.parent)
    return [
        "../outside/secret.ipynb",
        str(outside),
        "link.ipynb",
        "linked-folder/secret.ipynb",
        "sub/../../outside/secret.ipynb",
    ]


def test_paths_outside_the_roots_are_refused_and_the_file_is_untouched(server, outside):
    before, mtime = outside.read_bytes(), os.stat(outside).st_mtime_ns
    for path in escapes(server.cwd, outside):
        for tool, arguments in [
            ("list_cells", {}),
            ("insert_cell", {"source": "x"}),
            ("set_cell", {"index": 0, "source": "stolen"}),
            ("exec_cell", {"index": 0}),
            ("run_scratch", {"code": "1"}),
            ("clear_outputs", {"all": True}),
        ]:
            reply = server.call(tool, path=path, **arguments)
            assert reply.is_error, (tool, path, reply.text)
            assert "outside the folders nb may touch" in reply.text
            assert str(server.cwd) in reply.text  # names the allowed roots
    assert outside.read_bytes() == before and os.stat(outside).st_mtime_ns == mtime
    assert not events_named(server.events(), "kernel.starting")


def test_nb_mcp_roots_widens_what_is_allowed(tmp_path, workdir, outside):
    env = server_env(tmp_path, NB_MCP_ROOTS=os.pathsep.join([str(workdir), str(outside.parent)]))
    with McpServer(workdir, env, tmp_path / "stderr") as server:
        assert not server.call("list_cells", path=str(outside)).is_error
        notebook(server, "inside.ipynb", "x = 1")
        assert not server.call("list_cells", path="inside.ipynb").is_error
    env = server_env(tmp_path, NB_MCP_ROOTS="/")
    with McpServer(workdir, env, tmp_path / "stderr2") as server:
        assert not server.call(
            "list_cells", path="link.ipynb" if (workdir / "link.ipynb").exists() else str(outside)
        ).is_error


def test_the_clients_roots_confine_the_tools_when_it_declares_them(tmp_path, workdir):
    allowed = workdir / "project"
    allowed.mkdir()
    env = server_env(tmp_path)
    # The 2025-11-25 protocol (what Claude Code speaks) lets the server ask for roots.
    with McpServer(workdir, env, tmp_path / "stderr", roots=[allowed], mode="legacy") as server:
        reply = server.call("insert_cell", path="elsewhere.ipynb", source="x")
        assert reply.is_error and str(allowed) in reply.text
        assert not (workdir / "elsewhere.ipynb").exists()
        assert not server.call("insert_cell", path="project/ok.ipynb", source="x").is_error


def test_the_client_is_asked_for_its_roots_once_per_connection(tmp_path, workdir):
    env = server_env(tmp_path)
    with McpServer(workdir, env, tmp_path / "stderr", roots=[workdir], mode="legacy") as server:
        for n in range(3):
            assert not server.call("insert_cell", path="a.ipynb", source=f"{n}").is_error
        assert len(server.roots_asked) == 1


def test_nb_run_always_allows_its_argument_and_nb_watch_refuses_paths_outside(tmp_path, outside):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    env = server_env(tmp_path)
    result = subprocess.run(
        [NB, "run", str(outside)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "✓ Done" in outside.read_text()
    watched = subprocess.run(
        [NB, "watch", "--job", "j-00000000", "--path", str(outside)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert watched.returncode == 5 and "outside the allowed roots" in watched.stderr


def test_a_memory_limited_kernel_that_allocates_past_its_limit_reports_the_limit(tmp_path, workdir):
    env = server_env(tmp_path, NB_MCP_KERNEL_MEMORY_MB="400")
    with McpServer(workdir, env, tmp_path / "stderr") as server:
        notebook(server, "mem.ipynb", "big = bytearray(2_000_000_000)", "print('after')")
        reply = server.call("exec_all", path="mem.ipynb", block_for=30)
        assert "MemoryError" in reply.text
        assert "memory limit (400 MB, NB_MCP_KERNEL_MEMORY_MB)" in reply.text
        assert "skipped" in reply.text
        alive = server.call("run_scratch", path="mem.ipynb", code="print('still here')")
        assert "still here" in alive.text


def test_a_cpu_limited_kernel_that_spins_past_its_limit_dies_with_the_limit_named(
    tmp_path, workdir
):
    env = server_env(tmp_path, NB_MCP_KERNEL_CPU_SEC="3")
    with McpServer(workdir, env, tmp_path / "stderr") as server:
        notebook(server, "cpu.ipynb", "while True:\n    pass")
        reply = server.call("exec_cell", path="cpu.ipynb", index=0, block_for=30)
        assert "NbMcpKernelDied" in reply.text
        assert "CPU time limit (3s, NB_MCP_KERNEL_CPU_SEC)" in reply.text
        died = wait_for(
            lambda: events_named(read_events(server.log_path), "kernel.died"), what="kernel.died"
        )
        assert "CPU time limit" in died[0]["reason"]
