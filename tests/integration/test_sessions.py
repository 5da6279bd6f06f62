"""Each project is its own world: one daemon serves many clients, each a session with its own
folder, roots, environment and settings; each sees only its own projects."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import uuid
from pathlib import Path

from nb_mcp.supervisor.facade import VERSION

from tests.envs import (
    PROBE,
    Projects,
    fresh,
    front,
    printed,
)
from tests.helpers import (
    NB,
    events_named,
    gate,
    notebook,
    read_events,
)


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


def test_a_session_whose_cells_run_in_a_kernel_it_would_not_choose_is_told_so_in_the_reply(
    projects: Projects, daemon_env, tmp_path
):
    # Started in a subfolder, the first client's root stops the walk below the project's
    # .venv, so its kernel is the generic python3; a client started at the project's root
    # would choose the .venv, and its cells must not run elsewhere without a word.
    sub = projects.alpha / fresh("notebooks").removesuffix(".ipynb")
    sub.mkdir()
    name = fresh("elsewhere")
    with (
        front(sub, daemon_env, tmp_path, "sub") as narrow,
        front(projects.alpha, daemon_env, tmp_path, "root") as wide,
    ):
        notebook(narrow, name, PROBE)
        first = narrow.call("exec_cell", path=name, index=0)
        assert printed(first.text, "prefix") != str(projects.alpha / ".venv"), first.text
        assert "restart_kernel" not in first.text
        # ...but the reply says which environment lies just outside its root, and how to use it.
        assert f"{projects.alpha / '.venv'} lies above that root" in first.text, first.text
        assert f"kernel_name='{projects.alpha / '.venv'}'" in first.text
        relative = f"{sub.name}/{name}"
        other = wide.call("exec_cell", path=relative, index=0)
        assert not other.is_error, other.text
        assert printed(other.text, "prefix") != str(projects.alpha / ".venv")
        assert "started by another session" in other.text, other.text
        assert f"would start the venv {projects.alpha / '.venv'}" in other.text
        assert "call restart_kernel to switch" in other.text
        wide.call("restart_kernel", path=relative)
        after = wide.call("exec_cell", path=relative, index=0)
        assert printed(after.text, "prefix") == str(projects.alpha / ".venv"), after.text
        assert "restart_kernel" not in after.text
