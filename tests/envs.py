"""Real Python environments for tests: venvs made with uv (fast, from its cache) or the
standard library's `python -m venv`, with ipykernel or without, and a marker module only that
environment has, so a kernel's cell can prove where it runs."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from importlib.metadata import version
from pathlib import Path

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
