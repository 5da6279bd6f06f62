"""Each project is its own world: the kernel runs in the project's Python environment, with the
client's variables and settings, and each client sees only its own projects.

The environments are real: venvs made by the tests (uv, from its cache, with ipykernel and a
marker module only that venv has; and bare standard-library venvs without ipykernel).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nb_mcp.supervisor.facade import VERSION

from tests.envs import venv_with_ipykernel, venv_without_ipykernel
from tests.helpers import (
    NB,
    McpServer,
    events_named,
    gate,
    load,
    notebook,
    process_alive,
    read_events,
    server_env,
    wait_for,
)

PROBE = (
    "import os, sys\n"
    "print('prefix=' + sys.prefix)\n"
    "print('cwd=' + os.getcwd())\n"
    "print('token=' + os.environ.get('MY_PROJECT_TOKEN', 'unset'))\n"
)


@dataclass(frozen=True)
class Projects:
    base: Path
    alpha: Path  # .venv with ipykernel and marker_alpha
    beta: Path  # .venv with ipykernel and marker_beta
    bare: Path  # .venv without ipykernel (nb can tell from its files)
    linked: Path  # venv/ without ipykernel, a .pth file in it (only the start can tell)
    plain: Path  # no environment at all

    def venv(self, project: Path) -> Path:
        return project / (".venv" if project != self.linked else "venv")


@pytest.fixture(scope="session")
def projects(tmp_path_factory: pytest.TempPathFactory) -> Projects:
    base = tmp_path_factory.mktemp("projects")
    made = Projects(
        base, base / "alpha", base / "beta", base / "bare", base / "linked", base / "plain"
    )
    venv_with_ipykernel(made.alpha / ".venv", "marker_alpha")
    venv_with_ipykernel(made.beta / ".venv", "marker_beta")
    venv_without_ipykernel(made.bare / ".venv")
    venv_without_ipykernel(made.linked / "venv", linked=base / "nothing-here")
    made.plain.mkdir()
    return made


@pytest.fixture
def daemon_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The settings every client of this test's daemon shares (its state dir, its log)."""
    environment = server_env(tmp_path)
    yield environment
    subprocess.run([NB, "stop"], env=environment, capture_output=True, timeout=90)
    subprocess.run([NB, "cleanup"], env=environment, capture_output=True, timeout=30)


def front(cwd: Path, env: dict[str, str], tmp_path: Path, name: str, **kw) -> McpServer:
    """A real `nb mcp` front (not in-process) started in `cwd` with its own environment."""
    return McpServer(cwd, env, tmp_path / f"{name}.stderr", in_process=False, **kw)


def in_process(cwd: Path, tmp_path: Path, **overrides: str) -> McpServer:
    return McpServer(cwd, server_env(tmp_path, **overrides), tmp_path / "server.stderr")


def fresh(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:6]}.ipynb"


def printed(reply_text: str, key: str) -> str:
    found = re.search(rf"^{key}=(.*)$", reply_text, re.MULTILINE)
    assert found, reply_text
    return found.group(1)


def kernel_starting(server: McpServer, path: Path) -> dict:
    return wait_for(
        lambda: [
            e
            for e in events_named(server.events(), "kernel.starting")
            if e["notebook"] == str(path)
        ],
        what=f"kernel.starting for {path.name}",
    )[-1]


# ---------------------------------------------------------------- the project's Python


def test_a_notebook_in_a_project_with_a_venv_runs_in_it_and_imports_what_only_it_has(
    projects: Projects, daemon_env, tmp_path
):
    with front(projects.alpha, daemon_env, tmp_path, "alpha") as alpha:
        path = notebook(
            alpha, fresh("analysis"), "import marker_alpha\nprint('marker=' + marker_alpha.WHERE)"
        )
        reply = alpha.call("exec_cell", path=path.name, index=0)
        assert ": ok" in reply.text and "marker=marker_alpha" in reply.text, reply.text
        probe = alpha.call("run_scratch", path=path.name, code=PROBE)
        venv = projects.alpha / ".venv"
        assert printed(probe.text, "prefix") == str(venv)
        assert printed(probe.text, "cwd") == str(projects.alpha)  # the notebook's folder

        starting = kernel_starting(alpha, path)
        assert starting["environment"] == str(venv)
        assert starting["interpreter"] == str(venv / "bin" / "python")
        assert ".venv/" in starting["rule"] and "nearest" in starting["rule"]
        assert starting["kernel_name"] == str(venv)

        metadata = load(path)["metadata"]
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        assert metadata["kernelspec"] == {
            "name": "python3",
            "display_name": f"Python {version} (alpha/.venv)",
            "language": "python",
        }
        assert metadata["nb"]["environment"] == str(venv)

        status = alpha.call("status")
        row = next(line for line in status.text.splitlines() if path.name in line)
        assert str(venv) in row, status.text


def test_a_notebook_in_nested_folders_finds_the_same_venv(projects: Projects, tmp_path):
    with in_process(projects.alpha, tmp_path) as server:
        path = notebook(server, f"reports/2026/{fresh('q1')}", PROBE)
        reply = server.call("exec_cell", path=str(path.relative_to(projects.alpha)), index=0)
        assert printed(reply.text, "prefix") == str(projects.alpha / ".venv"), reply.text
        assert printed(reply.text, "cwd") == str(path.parent)
        assert str(projects.alpha) in kernel_starting(server, path)["rule"]


def test_the_clients_virtual_env_is_honoured_when_the_project_has_none(
    projects: Projects, tmp_path
):
    beta = projects.beta / ".venv"
    with in_process(projects.plain, tmp_path, VIRTUAL_ENV=str(beta)) as server:
        path = notebook(server, fresh("plain"), PROBE)
        listed = server.call("list_kernels", path=path.name)
        assert f"nb would run it in the venv {beta}" in listed.text, listed.text
        assert "the client's VIRTUAL_ENV" in listed.text
        reply = server.call("exec_cell", path=path.name, index=0)
        assert printed(reply.text, "prefix") == str(beta), reply.text
        assert kernel_starting(server, path)["rule"] == "the client's VIRTUAL_ENV"
        # Once chosen, the notebook remembers it.
        listed = server.call("list_kernels", path=path.name)
        assert "remembered in the notebook's metadata" in listed.text, listed.text


def test_kernel_name_still_wins_over_the_project_venv(projects: Projects, tmp_path):
    with in_process(projects.alpha, tmp_path) as server:
        path = notebook(server, fresh("named"), PROBE)
        reply = server.call("exec_cell", path=path.name, index=0, kernel_name="python3")
        assert printed(reply.text, "prefix") == sys.prefix, reply.text  # nb's own python3
        assert load(path)["metadata"]["nb"] == {
            "kernelspec": "python3",
            "kernel_rule": "kernel_name given by the call",
        }
        beta = projects.beta / ".venv"
        other = server.call("exec_cell", path=path.name, index=0, kernel_name=str(beta))
        assert other.is_error and "restart_kernel" in other.text, other.text
        restarted = server.call("restart_kernel", path=path.name, kernel_name=str(beta))
        assert str(beta) in restarted.text, restarted.text
        probe = server.call("run_scratch", path=path.name, code=PROBE)
        assert printed(probe.text, "prefix") == str(beta), probe.text
        assert load(path)["metadata"]["nb"]["environment"] == str(beta)


@pytest.mark.parametrize("project", ["bare", "linked"])
def test_a_venv_without_ipykernel_gets_a_clear_error_with_the_command_that_fixes_it(
    projects: Projects, tmp_path, project
):
    folder = getattr(projects, project)
    venv = projects.venv(folder)
    with in_process(folder, tmp_path) as server:
        path = notebook(server, fresh("noipy"), "print('never')")
        reply = server.call("exec_cell", path=path.name, index=0, block_for=20)
        assert ": error" in reply.text and "NbMcpKernelStartFailed" in reply.text, reply.text
        for needed in (
            f"{venv} ",
            "has no ipykernel",
            f"{venv}/bin/python -m pip install ipykernel",
            f"uv pip install --python {venv} ipykernel",
            "kernel_name",
        ):
            assert needed in reply.text, (needed, reply.text)
        errors = [o for o in load(path)["cells"][0]["outputs"] if o["output_type"] == "error"]
        assert [e["ename"] for e in errors] == ["NbMcpKernelStartFailed"]
        assert f"uv pip install --python {venv} ipykernel" in errors[0]["evalue"]
        failed = wait_for(
            lambda: events_named(server.events(), "kernel.start_failed"), what="start_failed"
        )
        assert "has no ipykernel" in failed[0]["reason"]
        assert len(events_named(server.events(), "kernel.starting")) == 1  # no fallback, no retry
        if project == "bare":  # its files tell, before anything starts
            listed = server.call("list_kernels", path=path.name)
            assert "⚠" in listed.text and f"uv pip install --python {venv}" in listed.text


def test_after_nb_stop_the_same_environment_is_chosen_again_from_the_metadata(
    projects: Projects, daemon_env, tmp_path
):
    beta = projects.beta / ".venv"
    name = fresh("remembered")
    first_env = dict(daemon_env, VIRTUAL_ENV=str(beta))
    with front(projects.plain, first_env, tmp_path, "first") as first:
        notebook(first, name, PROBE)
        reply = first.call("exec_cell", path=name, index=0)
        assert printed(reply.text, "prefix") == str(beta), reply.text
    stopped = subprocess.run([NB, "stop"], env=daemon_env, capture_output=True, text=True)
    assert "stopped the nb daemon" in stopped.stdout, stopped
    # The next client has another VIRTUAL_ENV; the notebook remembers where it ran.
    second_env = dict(daemon_env, VIRTUAL_ENV=str(projects.alpha / ".venv"))
    with front(projects.plain, second_env, tmp_path, "second") as second:
        assert second.pid != first.pid
        reply = second.call("exec_cell", path=name, index=0)
        assert printed(reply.text, "prefix") == str(beta), reply.text
        assert "remembered" in kernel_starting(second, projects.plain / name)["rule"]


def test_list_kernels_shows_the_kernelspecs_the_choice_and_its_rule_and_what_runs(
    projects: Projects, tmp_path
):
    with in_process(projects.alpha, tmp_path) as server:
        listed = server.call("list_kernels")
        venv = projects.alpha / ".venv"
        assert f"For a new notebook in {projects.alpha}:" in listed.text, listed.text
        assert f"nb would run it in the venv {venv}" in listed.text
        assert re.search(r"^  python3 · .* · python · /", listed.text, re.MULTILINE), listed.text
        assert "Running kernels under this session's roots:\n  (none)" in listed.text
        path = notebook(server, fresh("listed"), "x = 1")
        server.call("exec_cell", path=path.name, index=0)
        listed = server.call("list_kernels", path=path.name)
        row = next(line for line in listed.text.splitlines() if str(path) + " ·" in line)
        assert str(venv) in row and "idle" in row and "this session" in row, listed.text


def test_a_project_venv_kernel_has_the_same_limits_and_death_detection_as_any_kernel(
    projects: Projects, tmp_path
):
    with in_process(projects.alpha, tmp_path, NB_MCP_KERNEL_MEMORY_MB="2048") as server:
        path = notebook(
            server,
            fresh("limited"),
            "import resource, sys\nprint('as=' + str(resource.getrlimit(resource.RLIMIT_AS)[0]))"
            "\nprint('prefix=' + sys.prefix)",
            "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        )
        reply = server.call("exec_all", path=path.name, block_for=20)
        assert printed(reply.text, "prefix") == str(projects.alpha / ".venv"), reply.text
        assert printed(reply.text, "as") == str(2048 * 1024 * 1024)
        assert "NbMcpKernelDied" in reply.text and "SIGKILL" in reply.text, reply.text
        died = wait_for(lambda: events_named(server.events(), "kernel.died"), what="kernel.died")
        assert died[0]["notebook"] == str(path)


def test_a_project_venv_kernel_is_taken_over_by_the_next_daemon_after_a_crash(
    projects: Projects, daemon_env, tmp_path
):
    name = fresh("crash")
    with front(projects.alpha, daemon_env, tmp_path, "first") as first:
        notebook(first, name, "kept = 'still here'")
        first.call("exec_cell", path=name, index=0)
        old = first.pid
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: not process_alive(old), what="the daemon to die")
    with front(projects.alpha, daemon_env, tmp_path, "second") as second:
        assert second.pid != old
        reply = second.call("run_scratch", path=name, code="import sys\nprint(kept, sys.prefix)")
        assert f"still here {projects.alpha / '.venv'}" in reply.text, reply.text
        row = next(line for line in second.call("status").text.splitlines() if name in line)
        assert str(projects.alpha / ".venv") in row, row
        cli = subprocess.run([NB, "status"], env=daemon_env, capture_output=True, text=True)
        assert re.search(rf"{re.escape(str(projects.alpha / '.venv'))}.*taken over", cli.stdout)


# ---------------------------------------------------------------- one daemon, many sessions


def test_two_projects_served_by_one_daemon_each_see_their_own_venv_and_variables(
    projects: Projects, daemon_env, tmp_path
):
    secret = f"alpha-secret-{uuid.uuid4().hex[:6]}"
    a_env = dict(daemon_env, MY_PROJECT_TOKEN=secret)
    with (
        front(projects.alpha, a_env, tmp_path, "a") as alpha,
        front(projects.beta, daemon_env, tmp_path, "b") as beta,
    ):
        assert alpha.pid == beta.pid  # one daemon
        a_path = notebook(alpha, fresh("a"), PROBE + "import marker_alpha")
        b_path = notebook(beta, fresh("b"), PROBE + "import marker_alpha")
        a_reply = alpha.call("exec_cell", path=a_path.name, index=0)
        b_reply = beta.call("exec_cell", path=b_path.name, index=0)
        assert printed(a_reply.text, "prefix") == str(projects.alpha / ".venv"), a_reply.text
        assert printed(b_reply.text, "prefix") == str(projects.beta / ".venv"), b_reply.text
        assert printed(a_reply.text, "token") == secret
        assert printed(b_reply.text, "token") == "unset"  # set only in A's client
        assert ": ok" in a_reply.text
        assert "ModuleNotFoundError" in b_reply.text  # marker_alpha is only in A's venv
        opened = events_named(alpha.events(), "session.opened")
        assert {e["cwd"] for e in opened} == {str(projects.alpha), str(projects.beta)}
    # Names and paths in events, never the client's values: the secret is nowhere in the log.
    assert secret not in (tmp_path / "events.log").read_text()
    closed = events_named(read_events(tmp_path / "events.log"), "session.closed")
    assert len(closed) == 2


def test_a_per_session_setting_applies_to_its_client_and_not_to_another_of_the_same_daemon(
    projects: Projects, daemon_env, tmp_path
):
    quick_env = dict(daemon_env, NB_MCP_DEFAULT_TIMEOUT_SEC="1")
    slow = "import time\ntime.sleep(3)\nprint('slept')"
    with (
        front(projects.plain, daemon_env, tmp_path, "patient") as patient,
        front(projects.plain, quick_env, tmp_path, "quick") as quick,
    ):
        notebook(patient, "patient.ipynb", slow)
        notebook(quick, "quick.ipynb", slow)
        calls = [
            server.start_call("exec_cell", path=name, index=0, block_for=20)
            for server, name in ((patient, "patient.ipynb"), (quick, "quick.ipynb"))
        ]
        patient_reply, quick_reply = (future.result(timeout=60) for future, _ in calls)
    assert ": ok" in patient_reply.text and "slept" in patient_reply.text, patient_reply.text
    assert "⏱ timeout" in quick_reply.text, quick_reply.text
    assert "[stdout]\nslept" not in quick_reply.text
    submitted = {
        Path(e["notebook"]).name: e["timeout_sec"]
        for e in events_named(read_events(tmp_path / "events.log"), "job.submitted")
    }
    assert submitted == {"patient.ipynb": 600.0, "quick.ipynb": 1.0}


def test_a_per_daemon_setting_that_differs_is_announced_on_stderr_and_in_the_first_reply(
    projects: Projects, daemon_env, tmp_path
):
    other_log = tmp_path / "my-own.log"
    differing = dict(daemon_env, NB_MCP_KERNEL_MEMORY_MB="4096", NB_MCP_LOG_PATH=str(other_log))
    with front(projects.plain, daemon_env, tmp_path, "first") as first:
        first.call("status")
        daemon_log = first.log_path
        with front(projects.plain, differing, tmp_path, "other", log_path=daemon_log) as other:
            reply = other.call("list_kernels")
            again = other.call("list_kernels")
            pid = other.pid
    text = reply.text
    assert "NB_MCP_KERNEL_MEMORY_MB (daemon: 0, this client: 4096)" in text, text
    assert f"NB_MCP_LOG_PATH (daemon: {daemon_log}, this client: {other_log})" in text
    assert f"pid {pid}" in text and "`nb stop`" in text and "NB_MCP_STATE_DIR" in text
    assert "NB_MCP_KERNEL_MEMORY_MB" not in again.text  # the first reply only
    lines = (tmp_path / "other.stderr").read_text().splitlines()
    said = [line for line in lines if "per-daemon settings" in line]
    assert len(said) == 1 and said[0].startswith("nb mcp: "), lines
    assert "NB_MCP_KERNEL_MEMORY_MB" in said[0] and "NB_MCP_LOG_PATH" in said[0]
    assert "per-daemon" not in (tmp_path / "first.stderr").read_text()
    assert not other_log.exists()  # not applied: the daemon's log is the daemon's
    opened = events_named(read_events(daemon_log), "session.opened")
    assert [sorted(e["differing"]) for e in opened] == [
        [],
        ["NB_MCP_KERNEL_MEMORY_MB", "NB_MCP_LOG_PATH"],
    ]


def test_status_from_a_client_rooted_in_project_b_never_names_project_a_notebooks(
    projects: Projects, daemon_env, tmp_path
):
    with (
        front(projects.alpha, daemon_env, tmp_path, "a") as alpha,
        front(projects.beta, daemon_env, tmp_path, "b") as beta,
    ):
        a_name = fresh("secret-plan")
        notebook(alpha, a_name, "print('a')")
        job = re.search(r"j-[0-9a-f]{8}", alpha.call("exec_cell", path=a_name, index=0).text)
        notebook(beta, "b-own.ipynb", "print('b')")
        beta.call("exec_cell", path="b-own.ipynb", index=0)
        b_status = beta.call("status").text
        assert "b-own.ipynb" in b_status
        assert "secret-plan" not in b_status and str(projects.alpha) not in b_status, b_status
        assert a_name in alpha.call("status").text
        unknown = beta.call("exec_status", job_id="j-00000000")
        foreign = beta.call("exec_status", job_id=job.group(0))
        assert foreign.is_error and unknown.is_error
        assert foreign.text.replace(job.group(0), "j-00000000") == unknown.text
        assert "secret-plan" not in beta.call("list_kernels").text
        cli = subprocess.run([NB, "status"], env=daemon_env, capture_output=True, text=True)
        assert a_name in cli.stdout and "b-own.ipynb" in cli.stdout  # the user's own view


def test_a_kernel_keeps_its_environment_when_another_session_uses_it_until_that_one_restarts_it(
    projects: Projects, daemon_env, tmp_path
):
    shared = projects.base / "shared"
    shared.mkdir(exist_ok=True)
    roots = {"NB_MCP_ROOTS": str(projects.base)}
    c_env = dict(daemon_env, **roots, VIRTUAL_ENV=str(projects.alpha / ".venv"))
    c_env["MY_PROJECT_TOKEN"] = "from-c"
    d_env = dict(daemon_env, **roots, VIRTUAL_ENV=str(projects.beta / ".venv"))
    d_env["MY_PROJECT_TOKEN"] = "from-d"
    name = fresh("shared")
    with (
        front(shared, c_env, tmp_path, "c") as c,
        front(shared, d_env, tmp_path, "d") as d,
    ):
        notebook(c, name, PROBE)
        first = c.call("exec_cell", path=name, index=0)
        assert printed(first.text, "token") == "from-c", first.text
        kept = d.call("run_scratch", path=name, code=PROBE)
        assert printed(kept.text, "prefix") == str(projects.alpha / ".venv"), kept.text
        assert printed(kept.text, "token") == "from-c"  # the same kernel, C's environment
        row = next(line for line in d.call("status").text.splitlines() if name in line)
        assert str(projects.alpha / ".venv") in row
        restarted = d.call("restart_kernel", path=name)
        assert not restarted.is_error, restarted.text
        after = d.call("run_scratch", path=name, code=PROBE)
        assert printed(after.text, "token") == "from-d", after.text  # D's environment now
        # The notebook remembers its environment (metadata.nb), so D's restart keeps it.
        assert printed(after.text, "prefix") == str(projects.alpha / ".venv")
        starts = [
            e["session_id"]
            for e in events_named(d.events(), "kernel.starting")
            if e["notebook"] == str(shared / name)
        ]
        assert len(starts) == 2 and starts[0] != starts[1]


def test_nb_watch_finds_a_jobs_events_wherever_the_daemon_logged_them(
    projects: Projects, daemon_env, tmp_path
):
    flag = tmp_path / "go.flag"
    with front(projects.plain, daemon_env, tmp_path, "watched") as server:
        notebook(server, "watched.ipynb", gate(flag, after="print('done')"))
        reply = server.call("exec_cell", path="watched.ipynb", index=0, block_for=0)
        job = re.search(r"j-[0-9a-f]{8}", reply.text).group(0)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        watcher_env = dict(daemon_env, NB_MCP_LOG_PATH=str(elsewhere / "mine.log"))
        watch = subprocess.Popen(
            [NB, "watch", "--job", job],
            cwd=elsewhere,
            env=watcher_env,
            stdout=subprocess.PIPE,
            text=True,
        )
        flag.touch()
        out, _ = watch.communicate(timeout=60)
    assert watch.returncode == 0, out
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["event"] == "job.finished" and events[-1]["job_id"] == job


# ---------------------------------------------------------------- bad settings


def test_a_bad_per_session_value_is_refused_for_that_session_and_the_daemon_serves_on(
    projects: Projects, daemon_env, tmp_path
):
    with front(projects.plain, daemon_env, tmp_path, "good") as good:
        record = json.loads((tmp_path / "state" / "daemon.json").read_text())
        hello = {
            "nb": "hello",
            "version": VERSION,
            "cwd": str(projects.plain),
            "roots": [],
            "env": {"NB_MCP_DEFAULT_TIMEOUT_SEC": "soon", "PATH": "/usr/bin"},
        }
        with socket.socket(socket.AF_UNIX) as connection:
            connection.connect(record["socket"])
            connection.sendall((json.dumps(hello) + "\n").encode())
            refused = json.loads(connection.makefile().readline())
        assert refused["nb"] == "refused", refused
        assert "NB_MCP_DEFAULT_TIMEOUT_SEC='soon' is not a number" in refused["reason"]
        # A front whose own environment is bad answers its client with the error.
        request = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            }
        )
        bad = subprocess.run(
            [NB, "mcp"],
            input=request + "\n",
            cwd=projects.plain,
            env=dict(daemon_env, NB_MCP_MAX_REPLY_CHARS="lots"),
            capture_output=True,
            text=True,
            timeout=30,
        )
        answer = json.loads(bad.stdout)
        assert answer["id"] == 1 and "NB_MCP_MAX_REPLY_CHARS='lots'" in answer["error"]["message"]
        assert not good.call("status").is_error  # the daemon serves on
