"""Which kernel a notebook gets: the rules in order, over real folders (an environment is a
folder with pyvenv.cfg or conda-meta/, exactly what the rules look at), and how a launch
activates the chosen environment."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.environment import (
    ChoiceError,
    KernelChoice,
    KernelMetadata,
    choose,
    metadata_for,
)
from nb_mcp.actors.launch import KernelLaunch, ipykernel_installed, launch_problem


def venv(folder: Path, version: str = "3.12.4") -> Path:
    folder.mkdir(parents=True)
    (folder / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {version}\n")
    return folder


def conda(folder: Path) -> Path:
    (folder / "conda-meta").mkdir(parents=True)
    (folder / "conda-meta" / "python-3.10.14-h955ad1f_1.json").write_text("{}")
    return folder


def pick(
    notebook: Path,
    roots: list[Path],
    requested: str | None = None,
    metadata: dict | None = None,
    **env: str,
) -> KernelChoice:
    env.setdefault("HOME", "/nonexistent-home")
    return choose(
        requested, KernelMetadata.of(metadata or {}), notebook, roots, env, notebook.parent
    )


def test_the_nearest_venv_above_the_notebook_is_chosen_up_to_the_sessions_root(tmp_path):
    project = tmp_path / "project"
    deep = project / "reports" / "2026"
    deep.mkdir(parents=True)
    outer = venv(tmp_path / ".venv")
    choice = pick(deep / "q1.ipynb", [project])
    assert choice.kernelspec == "python3" and choice.environment is None  # not above the root
    assert choice.rule == "no project environment was found"
    assert f"{outer} lies above that root: kernel_name='{outer}' uses it" in choice.hint
    inner = venv(project / ".venv")
    choice = pick(deep / "q1.ipynb", [project])
    assert choice.environment == inner and choice.kind == "venv"
    assert choice.rule == f"the nearest .venv/ above the notebook, in {project}"
    assert choice.display_name == "Python 3.12 (project/.venv)"
    assert pick(deep / "q1.ipynb", [tmp_path]).environment == inner  # nearest wins
    assert pick(tmp_path / "top.ipynb", [tmp_path]).environment == outer


def test_a_venv_folder_counts_and_dot_venv_comes_first_in_the_same_folder(tmp_path):
    plain = venv(tmp_path / "venv")
    assert pick(tmp_path / "a.ipynb", [tmp_path]).environment == plain
    dotted = venv(tmp_path / ".venv")
    choice = pick(tmp_path / "a.ipynb", [tmp_path])
    assert choice.environment == dotted
    assert choice.rule == "the nearest .venv/ above the notebook, in the notebook's folder"


def test_the_walk_never_goes_above_the_home_folder(tmp_path):
    home = tmp_path / "home"
    notebook = home / "code" / "a.ipynb"
    notebook.parent.mkdir(parents=True)
    venv(tmp_path / ".venv")  # above home: never
    assert pick(notebook, [Path("/")], HOME=str(home)).environment is None
    assert pick(notebook, [home / "code"], HOME=str(home)).hint == ""  # not even as a hint
    at_home = venv(home / ".venv")  # home itself: yes
    assert pick(notebook, [Path("/")], HOME=str(home)).environment == at_home


def test_the_clients_virtual_env_then_conda_prefix_when_the_project_has_none(tmp_path):
    notebook = tmp_path / "work" / "a.ipynb"
    notebook.parent.mkdir()
    active = venv(tmp_path / "envs" / "tools")
    base = conda(tmp_path / "conda")
    choice = pick(notebook, [notebook.parent], VIRTUAL_ENV=str(active), CONDA_PREFIX=str(base))
    assert choice.environment == active and choice.rule == "the client's VIRTUAL_ENV"
    choice = pick(notebook, [notebook.parent], CONDA_PREFIX=str(base))
    assert choice.environment == base and choice.kind == "conda"
    assert choice.rule == "the client's CONDA_PREFIX" and choice.display_name.startswith(
        "Python 3.10"
    )
    gone = pick(notebook, [notebook.parent], VIRTUAL_ENV=str(tmp_path / "deleted"))
    assert gone.kernelspec == "python3"  # a stale VIRTUAL_ENV names no environment
    project = venv(notebook.parent / ".venv")
    assert pick(notebook, [notebook.parent], VIRTUAL_ENV=str(active)).environment == project


def test_kernel_name_and_a_specific_kernelspec_in_the_metadata_come_before_any_environment(
    tmp_path,
):
    venv(tmp_path / ".venv")
    other = venv(tmp_path / "elsewhere" / "env")
    notebook = tmp_path / "a.ipynb"
    ir = {"kernelspec": {"name": "ir", "display_name": "R", "language": "R"}}
    choice = pick(notebook, [tmp_path], metadata=ir)
    assert (choice.kernelspec, choice.language) == ("ir", "R")
    assert choice.rule == "the notebook's metadata names the kernelspec 'ir'"
    named = pick(notebook, [tmp_path], requested="python3", metadata=ir)
    assert named.kernelspec == "python3" and named.explicit
    by_path = pick(notebook, [tmp_path], requested="elsewhere/env", metadata=ir)
    assert by_path.environment == other and by_path.rule == "kernel_name given by the call"
    generic = {"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    assert pick(notebook, [tmp_path], metadata=generic).environment == tmp_path / ".venv"
    with pytest.raises(ChoiceError, match="is not a Python environment"):
        pick(notebook, [tmp_path], requested="./nothing-here")


def test_a_remembered_environment_wins_over_the_folder_and_the_client_until_it_is_gone(
    tmp_path,
):
    venv(tmp_path / ".venv")
    remembered = venv(tmp_path / "old" / "env")
    active = venv(tmp_path / "active")
    notebook = tmp_path / "a.ipynb"
    metadata = {
        "kernelspec": {"name": "python3"},
        "nb": {"environment": str(remembered), "kernel_rule": "the client's VIRTUAL_ENV"},
    }
    choice = pick(notebook, [tmp_path], metadata=metadata, VIRTUAL_ENV=str(active))
    assert choice.environment == remembered
    assert choice.rule == "remembered in the notebook's metadata (metadata.nb)"
    (remembered / "pyvenv.cfg").unlink()
    choice = pick(notebook, [tmp_path], metadata=metadata, VIRTUAL_ENV=str(active))
    assert choice.environment == tmp_path / ".venv"
    assert f"(the remembered {remembered} no longer exists)" in choice.rule


def test_a_kernelspec_a_call_named_is_remembered_and_the_default_is_not(tmp_path):
    notebook = tmp_path / "a.ipynb"
    named = KernelChoice(
        kernelspec="python3",
        display_name="Python 3 (ipykernel)",
        rule="kernel_name given by the call",
        explicit=True,
    )
    kernelspec, ours = metadata_for(named)
    assert kernelspec == {"name": "python3", "display_name": "Python 3 (ipykernel)"} | {
        "language": "python"
    }
    assert ours == {"kernelspec": "python3", "kernel_rule": "kernel_name given by the call"}
    document = nb.new_notebook()
    nb.SetKernel(kernelspec=kernelspec, ours=ours).apply(document)
    venv(tmp_path / ".venv")  # made later: the named kernel still wins
    again = pick(notebook, [tmp_path], metadata=document["metadata"])
    assert again.kernelspec == "python3" and again.explicit
    default = KernelChoice(kernelspec="python3", display_name="Python 3 (ipykernel)", rule="x")
    assert metadata_for(default)[1] == {}


def test_the_metadata_edit_keeps_other_keys_and_is_needed_only_when_the_choice_changed():
    document = nb.new_notebook()
    document["metadata"]["nb"] = {"someone_elses": 1, "environment": "/old"}
    choice = KernelChoice(
        environment=Path("/p/.venv"), kind="venv", display_name="Python 3.12 (p/.venv)", rule="r"
    )
    assert not KernelMetadata.of(document["metadata"]).matches(choice)
    kernelspec, ours = metadata_for(choice)
    nb.SetKernel(kernelspec=kernelspec, ours=ours).apply(document)
    assert document["metadata"]["kernelspec"] == {
        "name": "python3",
        "display_name": "Python 3.12 (p/.venv)",
        "language": "python",
    }
    assert document["metadata"]["nb"] == {
        "someone_elses": 1,
        "environment": "/p/.venv",
        "kernel_rule": "r",
    }
    reworded = KernelChoice(
        environment=Path("/p/.venv"), kind="venv", display_name="Python 3.12 (p/.venv)", rule="s"
    )
    assert KernelMetadata.of(document["metadata"]).matches(reworded)  # the rule's words: no write


def test_a_non_python_notebook_is_not_given_a_python_environment(tmp_path):
    venv(tmp_path / ".venv")
    julia = {"kernelspec": {"name": "python3", "language": "julia"}}
    choice = pick(tmp_path / "a.ipynb", [tmp_path], metadata=julia)
    assert choice.environment is None and "julia" in choice.rule


def test_a_launch_activates_the_chosen_environment_over_the_clients_variables(tmp_path):
    session = {"PATH": "/usr/bin:/bin", "PYTHONHOME": "/x", "TOKEN": "t", "VIRTUAL_ENV": "/a"}
    project = KernelChoice(environment=tmp_path / ".venv", kind="venv")
    env = KernelLaunch(project, session).kernel_env()
    assert env["VIRTUAL_ENV"] == str(tmp_path / ".venv") and env["TOKEN"] == "t"
    assert env["PATH"].split(os.pathsep) == [str(tmp_path / ".venv" / "bin"), "/usr/bin", "/bin"]
    assert "PYTHONHOME" not in env
    base = KernelChoice(environment=tmp_path / "conda", kind="conda")
    env = KernelLaunch(base, session).kernel_env()
    assert env["CONDA_PREFIX"] == str(tmp_path / "conda") and env["VIRTUAL_ENV"] == "/a"
    spec = KernelChoice(kernelspec="python3")
    assert KernelLaunch(spec, session).kernel_env() == session
    assert "TOKEN" not in repr(KernelLaunch(spec, session))  # secrets never in a repr


def test_whether_an_environment_has_ipykernel_is_told_from_its_files_only_when_they_can_tell(
    tmp_path,
):
    prefix = venv(tmp_path / ".venv")
    site = prefix / "lib" / "python3.12" / "site-packages"
    site.mkdir(parents=True)
    (site / "distutils-precedence.pth").write_text("")
    assert ipykernel_installed(prefix) is False
    (site / "ipykernel-7.0.0.dist-info").mkdir()
    assert ipykernel_installed(prefix) is True
    (site / "ipykernel-7.0.0.dist-info").rmdir()
    (site / "editable.pth").write_text("/somewhere\n")
    assert ipykernel_installed(prefix) is None  # linked packages: only the start can tell
    (site / "editable.pth").unlink()
    (prefix / "pyvenv.cfg").write_text("include-system-site-packages = true\n")
    assert ipykernel_installed(prefix) is None
    assert ipykernel_installed(conda(tmp_path / "c")) is None


def test_the_fix_for_a_missing_ipykernel_fits_the_environment(tmp_path):
    prefix = venv(tmp_path / "with pip" / ".venv")
    (prefix / "lib" / "python3.12" / "site-packages").mkdir(parents=True)
    (prefix / "bin").mkdir()
    (prefix / "bin" / "python").write_text("#!/bin/sh\n")
    (prefix / "bin" / "python").chmod(0o755)
    choice = KernelChoice(environment=prefix, kind="venv", rule="the nearest .venv/")
    (prefix / "bin" / "pip").write_text("")
    problem = launch_problem(choice)
    assert problem is not None and problem.index("-m pip install") < problem.index("uv pip")
    python = shlex.quote(str(prefix / "bin" / "python"))  # the path has a space: quoted
    assert f"`{python} -m pip install ipykernel`" in problem
    assert f"`uv pip install --python {shlex.quote(str(prefix))} ipykernel`" in problem
    assert "kernel_name" in problem and "(the nearest .venv/)" in problem
    (prefix / "bin" / "pip").unlink()
    problem = launch_problem(choice)
    assert problem is not None and problem.index("uv pip") < problem.index("-m pip install")
    (prefix / "bin" / "python").unlink()
    problem = launch_problem(choice)
    assert problem is not None and "has no interpreter" in problem
