"""The built wheel installs one import package, `nb_mcp`, beside PyPI's `supervisor`
(supervisord) and `ops` (Juju's charm framework) in one environment: all three keep working,
whichever is installed last, and `nb run` runs a notebook from there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from tests.envs import UV
from tests.helpers import load, server_env

ROOT = Path(__file__).resolve().parents[2]
OTHERS = ["supervisor", "ops"]  # PyPI's packages whose names nb's folders share


def run(*argv: str | Path, cwd: Path) -> str:
    """Run a command from `cwd`: never from the checkout, whose own `supervisor/` and `ops/`
    folders would shadow the installed packages for `python -c`."""
    argv_text = [str(a) for a in argv]
    result = subprocess.run(argv_text, capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, f"{argv_text}\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(UV, "build", "--quiet", "--wheel", "--out-dir", out, ROOT, cwd=out)
    (built,) = out.glob("nb_mcp-*.whl")
    return built


def test_the_wheel_holds_one_top_level_package_and_no_benchmark(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"nb_mcp"}, sorted(top)
    assert not [n for n in names if "/bench/" in n], "the benchmark ships inside the package"


@pytest.mark.parametrize("order", ["nb last", "others last"])
def test_nb_installs_beside_pypi_supervisor_and_ops_and_runs_a_notebook(
    wheel: Path, tmp_path: Path, order: str
):
    venv = tmp_path / "venv"
    run(UV, "venv", "--quiet", "--python", sys.executable, venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    batches = [[str(wheel)], OTHERS] if order == "others last" else [OTHERS, [str(wheel)]]
    for batch in batches:
        run(UV, "pip", "install", "--quiet", "--python", python, *batch, cwd=tmp_path)

    # PyPI's packages are theirs, untouched: supervisord's module and the charm framework.
    run(python, "-c", "import supervisor.supervisord, supervisor.xmlrpc", cwd=tmp_path)
    run(python, "-c", "import ops; ops.CharmBase; import ops.model", cwd=tmp_path)

    notebook = tmp_path / "wheel.ipynb"
    document = nbformat.v4.new_notebook()
    document.cells = [nbformat.v4.new_code_cell("import nb_mcp, sys\nprint('ran in', sys.prefix)")]
    document.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(document, notebook)
    env = server_env(tmp_path, VIRTUAL_ENV=str(venv))
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        [str(venv / "bin" / "nb"), "run", str(notebook)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = load(notebook)["cells"][0]["outputs"]
    assert outputs and f"ran in {venv}" in "".join(outputs[0]["text"]), json.dumps(outputs)
