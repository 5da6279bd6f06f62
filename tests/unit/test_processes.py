"""Who a recorded process is, whether it still runs, and stopping one: real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nb_mcp.supervisor import processes, statedir

from tests.helpers import wait_for


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process leading its own session and group, with a child of its own (as a kernel
    whose cell spawned something)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, time; subprocess.Popen(['sleep', '600']); time.sleep(600)",
        ],
        start_new_session=True,
    )
    yield process
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever a failed test left running
    process.wait(5)


def clock_ticks(pid: int) -> int:
    """The start time an earlier nb recorded: clock ticks since boot, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def children_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_process_is_known_by_its_pid_and_start_time_and_a_reused_pid_is_not_it(sleeper):
    started = processes.process_started(sleeper.pid)
    assert started is not None
    assert processes.same_process_alive(sleeper.pid, started)
    assert not processes.same_process_alive(sleeper.pid, started + 1.0)  # another process
    assert processes.same_process_alive(sleeper.pid)
    processes.stop_group(sleeper.pid, sleeper.pid, grace=0.0)
    assert not processes.same_process_alive(sleeper.pid, started)


def test_a_record_from_an_earlier_nb_with_clock_ticks_still_names_its_process(sleeper, tmp_path):
    ticks = clock_ticks(sleeper.pid)
    assert processes.same_process_alive(sleeper.pid, ticks)
    assert not processes.same_process_alive(sleeper.pid, ticks + 100)
    folder = statedir.ensure(tmp_path / "state") / "kernels"
    legacy = {
        "kernel_id": "0123456789ab",
        "pid": sleeper.pid,
        "start_ticks": ticks,
        "pgid": sleeper.pid,
        "server_pid": os.getpid(),
        "server_start_ticks": clock_ticks(os.getpid()),
        "notebook": "/tmp/n.ipynb",
        "kernel_name": "python3",
        "connection_file": "/tmp/kernel.json",
        "started_at": 1_700_000_000.5,
    }
    statedir.write_record(folder / "0123456789ab.json", legacy)
    (record,) = statedir.kernel_records(tmp_path / "state")
    assert record.alive() and record.owner_alive()
    assert (record.pid, record.pgid, record.kernel_name) == (sleeper.pid, sleeper.pid, "python3")
    record.stop(grace=0.0)
    assert not record.alive()


def test_stopping_a_kernel_stops_what_its_cells_spawned_and_asks_politely_first(sleeper):
    child = wait_for(lambda: children_of(sleeper.pid), what="the sleeper's child")[0]
    processes.stop_group(sleeper.pid, sleeper.pid, grace=5.0)
    assert sleeper.wait(5) == -signal.SIGTERM  # SIGTERM was enough: no SIGKILL needed
    wait_for(lambda: not processes.same_process_alive(child), what="the child to be gone")


def test_a_process_that_ignores_sigterm_is_killed_after_its_grace(tmp_path):
    ready = tmp_path / "ready"
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time, pathlib; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"pathlib.Path({str(ready)!r}).touch(); time.sleep(600)",
        ],
        start_new_session=True,
    )
    wait_for(ready.exists, what="the handler to be set")
    processes.stop_group(stubborn.pid, stubborn.pid, grace=0.3)
    assert stubborn.wait(5) == -signal.SIGKILL


def test_a_group_is_signalled_only_when_the_process_leads_it():
    # A process in the caller's own group: signalling the group would hit the caller too.
    inside = subprocess.Popen(["sleep", "600"])
    try:
        processes.stop_group(inside.pid, os.getpgid(0), grace=0.0)
        assert inside.wait(5) == -signal.SIGKILL  # it alone; we are still here
    finally:
        inside.kill()
