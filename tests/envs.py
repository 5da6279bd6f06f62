"""Real Python environments for tests: venvs made with uv (fast, from its cache) or the
standard library's `python -m venv`, with ipykernel or without, and a marker module only that
environment has, so a kernel's cell can prove where it runs; and the projects that hold them,
served by real `nb mcp` fronts."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from tests.helpers import McpServer, events_named, server_env, wait_for

UV = Path(sys.executable).with_name("uv")  # installed by the test extra
IPYKERNEL = f"ipykernel=={version('ipykernel')}"  # the same one nb's own environment has


def site_packages(prefix: Path) -> Path:
    return prefix / "lib" / f"python{sysconfig.get_python_version()}" / "site-packages"


def venv_with_ipykernel(prefix: Path, marker: str) -> Path:
    """A venv (made by uv) with ipykernel and a module `marker` whose WHERE is its name."""
    subprocess.run(
        [str(UV), "venv", "--quiet", "--python", sys.executable, str(prefix)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            str(UV),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(prefix / "bin" / "python"),
            IPYKERNEL,
        ],
        check=True,
        capture_output=True,
    )
    add_marker(prefix, marker)
    return prefix


def venv_without_ipykernel(prefix: Path, linked: Path | None = None) -> Path:
    """A bare venv (the standard library's, no pip). With `linked`, a .pth file adds that folder
    to its path, as an editable install would: nb cannot tell from its files whether ipykernel is
    there, and must find out when the kernel starts."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(prefix)],
        check=True,
        capture_output=True,
    )
    if linked is not None:
        linked.mkdir(parents=True, exist_ok=True)
        (site_packages(prefix) / "linked.pth").write_text(f"{linked}\n")
    return prefix


def add_marker(prefix: Path, marker: str) -> None:
    (site_packages(prefix) / f"{marker}.py").write_text(f"WHERE = {marker!r}\n")


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


def make_projects(base: Path) -> Projects:
    made = Projects(
        base, base / "alpha", base / "beta", base / "bare", base / "linked", base / "plain"
    )
    venv_with_ipykernel(made.alpha / ".venv", "marker_alpha")
    venv_with_ipykernel(made.beta / ".venv", "marker_beta")
    venv_without_ipykernel(made.bare / ".venv")
    venv_without_ipykernel(made.linked / "venv", linked=base / "nothing-here")
    made.plain.mkdir()
    return made


# A cell that says where it runs: its Python, its folder, a variable only some clients set.
PROBE = (
    "import os, sys\n"
    "print('prefix=' + sys.prefix)\n"
    "print('cwd=' + os.getcwd())\n"
    "print('token=' + os.environ.get('MY_PROJECT_TOKEN', 'unset'))\n"
)


def printed(reply_text: str, key: str) -> str:
    """The value a PROBE printed for `key`."""
    found = re.search(rf"^{key}=(.*)$", reply_text, re.MULTILINE)
    assert found, reply_text
    return found.group(1)


def front(cwd: Path, env: dict[str, str], tmp_path: Path, name: str, **kw) -> McpServer:
    """A real `nb mcp` front (not in-process) started in `cwd` with its own environment."""
    return McpServer(cwd, env, tmp_path / f"{name}.stderr", in_process=False, **kw)


def in_process(cwd: Path, tmp_path: Path, **overrides: str) -> McpServer:
    return McpServer(cwd, server_env(tmp_path, **overrides), tmp_path / "server.stderr")


def fresh(stem: str) -> str:
    """A notebook name no other test uses (the projects are shared by the whole run)."""
    return f"{stem}-{uuid.uuid4().hex[:6]}.ipynb"


def kernel_starting(server: McpServer, path: Path) -> dict:
    def found() -> list[dict]:
        starting = events_named(server.events(), "kernel.starting")
        return [e for e in starting if e["notebook"] == str(path)]

    return wait_for(found, what=f"kernel.starting for {path.name}")[-1]
