"""The project's Python: a notebook's kernel runs in its project's environment (a real venv
made by the tests), found by the rules, remembered in the notebook, with a clear error and the
fix when the environment lacks ipykernel, and the same limits and takeover as any kernel."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from tests.envs import (
    PROBE,
    Projects,
    fresh,
    front,
    in_process,
    kernel_starting,
    printed,
)
from tests.helpers import (
    NB,
    events_named,
    load,
    notebook,
    process_alive,
    wait_for,
)


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
        remembered = load(path)["metadata"]["nb"]
        assert remembered["kernelspec"] == "python3", remembered
        assert remembered["kernel_rule"] == "kernel_name given by the call", remembered
        assert "environment" not in remembered, remembered  # a kernelspec, not a venv
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
