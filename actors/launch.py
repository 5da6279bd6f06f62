"""How a kernel is launched for a session: its command, its environment, and why it failed.

A kernel runs with its session's environment (the client's variables, never the daemon's own
or another client's) and, for a project's Python environment, with that environment's
interpreter (`<env>/bin/python -m ipykernel_launcher -f {connection_file}`) and `VIRTUAL_ENV`
(or `CONDA_PREFIX`) and `PATH` set as activating it would.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from nb_mcp.actors.environment import KernelChoice
from nb_mcp.supervisor import statedir


@dataclass(frozen=True)
class KernelLaunch:
    """What one start needs: the choice, and the session whose environment the kernel gets."""

    choice: KernelChoice
    # The client's environment can hold secrets: never in a repr, an event or a reply.
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    session_id: str = ""
    start_timeout: float = 60.0

    @property
    def label(self) -> str:
        return self.choice.label

    def again(self, choice: KernelChoice | None) -> KernelLaunch:
        """This session's launch of the kernel `choice` (the one that ran, if known)."""
        return self if choice is None else replace(self, choice=choice)

    def described(self) -> dict[str, str | None]:
        """What `kernel.starting` says: the environment, interpreter, rule, session; no values
        of the environment's variables."""
        choice = self.choice
        return {
            "environment": None if choice.environment is None else str(choice.environment),
            "interpreter": None if choice.interpreter is None else str(choice.interpreter),
            "rule": choice.rule,
            "session_id": self.session_id or None,
        }

    def kernel_env(self) -> dict[str, str]:
        """The kernel's environment variables: the session's, activated for its Python."""
        env = dict(self.env)
        env.setdefault("PATH", os.defpath)
        prefix = self.choice.environment
        if prefix is None:
            return env
        env.pop("PYTHONHOME", None)  # it would point the interpreter at another stdlib
        bin_dir = str(prefix / "bin")
        rest = [part for part in env["PATH"].split(os.pathsep) if part and part != bin_dir]
        env["PATH"] = os.pathsep.join([bin_dir, *rest])
        if self.choice.kind == "conda":
            env["CONDA_PREFIX"] = str(prefix)
            env["CONDA_DEFAULT_ENV"] = prefix.name
        else:
            env["VIRTUAL_ENV"] = str(prefix)
        return env


def private_kernelspec(state_dir: Path, choice: KernelChoice) -> tuple[str, Path]:
    """Write a kernelspec for an environment's interpreter in nb's own state dir; return its
    name and the folder of kernelspecs it is in (never the user's Jupyter folders)."""
    assert choice.environment is not None and choice.interpreter is not None
    digest = hashlib.sha256(str(choice.environment).encode()).hexdigest()[:12]
    name = f"nb-env-{digest}"
    folder = state_dir / "kernelspecs"
    spec_dir = folder / name
    spec_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    spec = {
        "argv": [str(choice.interpreter), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": choice.display_name,
        "language": "python",
        "metadata": {"nb": {"environment": str(choice.environment)}},
    }
    path = spec_dir / "kernel.json"
    try:
        if json.loads(path.read_text()) == spec:
            return name, folder
    except (OSError, ValueError):
        pass
    statedir.write_record(path, spec)
    return name, folder


def launch_problem(choice: KernelChoice) -> str | None:
    """Why an environment's kernel cannot start, found without starting it (None: no reason
    known; the start itself may still fail, and `explain_exit` reads why)."""
    prefix = choice.environment
    if prefix is None or choice.interpreter is None:
        return None
    if not os.access(choice.interpreter, os.X_OK):
        return (
            f"the Python environment {prefix} has no interpreter at {choice.interpreter} "
            "(a broken or half-made environment?); recreate it, or pass kernel_name to choose "
            "another kernel (list_kernels shows them)"
        )
    if ipykernel_installed(prefix) is False:
        return missing_ipykernel(choice)
    return None


def ipykernel_installed(prefix: Path) -> bool | None:
    """True or False if the environment's own site-packages tell; None if they cannot (it
    also sees the system's packages, or its packages come through .pth files)."""
    try:
        config = (prefix / "pyvenv.cfg").read_text(errors="replace").lower()
    except OSError:
        config = ""
    system_too = re.search(r"include-system-site-packages\s*=\s*true", config)
    if system_too or not (prefix / "pyvenv.cfg").exists():
        return None  # a conda env or a venv over the system's packages: ipykernel may be there
    folders = [
        *prefix.glob("lib/python3*/site-packages"),
        *prefix.glob("lib64/python3*/site-packages"),
    ]
    for folder in folders:
        if (folder / "ipykernel_launcher.py").exists() or any(folder.glob("ipykernel-*.dist-info")):
            return True
    for folder in folders:
        if any(p.name not in _STANDARD_PTH for p in folder.glob("*.pth")):
            return None  # packages linked in from elsewhere: let the start tell
    return False


# What setuptools and virtualenv put in every environment; any other .pth may add packages.
_STANDARD_PTH = frozenset({"distutils-precedence.pth", "_virtualenv.pth"})


def missing_ipykernel(choice: KernelChoice) -> str:
    prefix = choice.environment
    assert prefix is not None
    python = shlex.quote(str(prefix / "bin" / "python"))
    pip = f"{python} -m pip install ipykernel"
    uv = f"uv pip install --python {shlex.quote(str(prefix))} ipykernel"
    if choice.kind == "conda":
        fixes = f"`conda install -p {shlex.quote(str(prefix))} ipykernel` (or `{pip}`)"
    elif (prefix / "bin" / "pip").exists():
        fixes = f"`{pip}` (or `{uv}`)"
    else:
        fixes = f"`{uv}` (it has no pip; or `{pip}` once pip is there)"
    return (
        f"the Python environment {prefix} ({choice.rule}) has no ipykernel, so no kernel can "
        f"run in it. Install it with {fixes}, then run the cell again; or pass kernel_name "
        "to use another kernel (list_kernels shows them)"
    )


def startup_exit(code: int | None, log_tail: str, choice: KernelChoice) -> str:
    """Why a kernel exited at start-up, from its exit code and its own last words."""
    exited = f"the kernel process exited during start-up (exit code {code})"
    if choice.environment is not None and (
        "No module named ipykernel" in log_tail or "No module named 'ipykernel" in log_tail
    ):
        return f"{exited}: {missing_ipykernel(choice)}"
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    said = f" and ends with: {lines[-1][:300]}" if lines else ""
    return f"{exited}; its log is in the state dir's kernels/ folder{said}"
