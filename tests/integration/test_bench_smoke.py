"""`make bench` keeps working: a --quick run measures every workload and prints its row.

No timing assertions: the figures of a tiny run on a shared CI machine mean nothing, only
that every workload still runs end to end (a spawned `nb mcp`, the real MCP client, real
kernels) and reports numbers. Its servers' event logs live under tmp_path, so the autouse
fixture holds them to the event schema like any other test's.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = (
    "round_trip",
    "print_heavy",
    "tqdm",
    "notebook",
    "kernel_death",
    "concurrency",
    "footprint",
    "kernel_start",
    "big_notebook_stream",
    "big_notebook_round_trip",
    "big_notebook_reads",
    "gateway",
)


@pytest.mark.slow
def test_quick_bench_measures_every_workload_and_prints_the_table(tmp_path: Path) -> None:
    results = tmp_path / "results" / "bench-results.json"
    workdir = tmp_path / "bench"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ops.bench",
            "--quick",
            "--json",
            str(results),
            "--workdir",
            str(workdir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr[-4000:]}"

    report = json.loads(results.read_text())
    assert report["meta"]["quick"] is True
    assert list(report["workloads"]) == list(WORKLOADS)
    for name, workload in report["workloads"].items():
        assert workload["error"] is None, f"{name}: {workload['error']}"
        assert workload["rows"], name
        for row in workload["rows"]:
            assert isinstance(row["nb"], int | float) and math.isfinite(row["nb"]), (name, row)
            assert row["target"], (name, row)
            assert row["met"] in (True, False, None), (name, row)
        assert workload["raw"], name

    table = run.stdout
    for name in WORKLOADS:
        assert f"\n{name} " in table, f"{name} missing from the table:\n{table}"
    assert "target" in table and ("met" in table or "MISSED" in table)

    # Every server wrote its event log under tmp_path: the fixture validates them at teardown.
    logs = sorted(workdir.rglob("events.log"))
    assert len(logs) >= 4, logs
    assert all(log.stat().st_size > 0 for log in logs)
