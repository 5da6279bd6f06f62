"""Latency workloads: the trivial round trip, kernel death to the job's error, kernel start."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from ops.bench.common import Context, Outcome, Row, alternate, median, p95
from ops.bench.driver import BenchError, wait_until
from ops.bench.mcp_client import read_events

# ---------------------------------------------------------------- 1. trivial round trip


def round_trip(ctx: Context) -> Outcome:
    sizes = ctx.sizes
    out = Outcome(
        "round_trip",
        "Trivial cell round trip",
        f"`x = 1`, {sizes.round_trip_runs} runs: exec_cell(block_for=30) over MCP, timed at "
        "the client from request to result, vs raw jupyter_client execute -> iopub idle; "
        "interleaved call by call (ABBA), after warm-up runs on both.",
    )
    server, raw = ctx.shared(), ctx.raw()
    path = server.notebook("round_trip.ipynb", "x = 1")
    nb_times: list[float] = []
    raw_times: list[float] = []

    def nb_side(record: bool = True) -> None:
        _, took = server.run_job("exec_cell", path=path.name, index=0)
        if record:
            nb_times.append(took)

    def raw_side(record: bool = True) -> None:
        took = raw.timed("x = 1")
        if record:
            raw_times.append(took)

    for _ in range(sizes.warmup):
        nb_side(False)
        raw_side(False)
    alternate(sizes.round_trip_runs, nb_side, raw_side)
    server.ok("shutdown_kernel", path=path.name)

    nb_ms = [t * 1000 for t in nb_times]
    raw_ms = [t * 1000 for t in raw_times]
    med_nb, med_raw = median(nb_ms), median(raw_ms)
    p95_nb, p95_raw = p95(nb_ms), p95(raw_ms)
    out.rows = [
        # The target of issue 14: at most twice raw jupyter_client, in the same run.
        Row("median", "ms", med_nb, med_raw, "≤ 2× baseline", med_nb <= 2 * med_raw),
        Row("p95", "ms", p95_nb, p95_raw, "≤ baseline + 10 ms", p95_nb <= p95_raw + 10),
    ]
    out.raw = {
        "nb_ms": nb_ms,
        "raw_ms": raw_ms,
        "overhead_median_ms": med_nb - med_raw,
        "overhead_p95_ms": p95_nb - p95_raw,
    }
    return out


# ---------------------------------------------------------------- 2. print-heavy cell

# ---------------------------------------------------------------- 5. kernel death


class _DeathTimedClient(NotebookClient):
    """nbclient, noting when its once-a-second liveness poll first sees the kernel dead."""

    died_at: float | None = None

    async def _async_check_alive(self) -> None:
        try:
            await super()._async_check_alive()
        except DeadKernelError:
            if self.died_at is None:
                self.died_at = time.monotonic()
            raise


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def kernel_death(ctx: Context) -> Outcome:
    trials = ctx.sizes.death_trials
    out = Outcome(
        "kernel_death",
        "Kernel death detection",
        f"{trials} trials each, alternating; each on a fresh notebook (five deaths a minute "
        "would trip the notebook's restart intensity). The cell touches a flag file and "
        "sleeps; once the flag exists, exec_status(job_id, block_for=30) is already waiting, "
        "then SIGKILL goes to the kernel pid (from kernel.ready). Figure: kill -> that "
        "exec_status reply (what the agent sees); the job.finished event's timestamp is "
        "recorded too. nbclient: the same cell under NotebookClient.execute() in a thread, "
        "kill -> its liveness poll raising DeadKernelError.",
    )
    server = ctx.server("death")
    nb_reply: list[float] = []
    nb_event: list[float] = []
    nb_died_event: list[float] = []
    nbc: list[float] = []
    count = iter(range(10_000))

    def cell(flag: Path) -> str:
        return f"import pathlib, time\npathlib.Path({str(flag)!r}).touch()\ntime.sleep(120)"

    def nb_side() -> None:
        i = next(count)
        flag = server.folder / f"flag-nb-{i}"
        path = server.notebook(f"death_{i}.ipynb", cell(flag))
        before = len(server.events())
        reply = server.ok("exec_cell", path=path.name, index=0, timeout=0, block_for=0)
        job_id = reply.job_id
        if job_id is None:
            raise BenchError(f"no job id in {reply.text[:300]}")
        wait_until(flag.exists, 60, "the death cell to start")
        pid = wait_until(lambda: server.kernel_pid(path, before), 10, "kernel.ready")
        waiting, _ = server.start_call("exec_status", job_id=job_id, block_for=30)
        time.sleep(0.2)
        killed_wall, killed = time.time(), time.monotonic()
        os.kill(pid, signal.SIGKILL)
        finished = waiting.result(timeout=60)
        if finished.state != "error" or "NbMcpKernelDied" not in finished.text:
            raise BenchError(f"the killed job did not end in NbMcpKernelDied: {finished.text}")
        nb_reply.append(finished.received - killed)
        events = wait_until(
            lambda: [
                e
                for e in read_events(server.log_path)
                if e.get("job_id") == job_id and e["event"] in ("job.finished", "kernel.died")
            ],
            10,
            "job.finished",
        )
        for event in events:
            latency = _epoch(event["timestamp"]) - killed_wall
            (nb_event if event["event"] == "job.finished" else nb_died_event).append(latency)

    def nbclient_side() -> None:
        i = next(count)
        flag = ctx.raw_dir / f"flag-nbc-{i}"
        document = nbformat.v4.new_notebook()
        document.cells = [nbformat.v4.new_code_cell(cell(flag))]
        client = _DeathTimedClient(
            document, kernel_name="python3", resources={"metadata": {"path": str(ctx.raw_dir)}}
        )
        raised: list[float] = []

        def run() -> None:
            try:
                client.execute(**ctx.quiet_kernel())
            except DeadKernelError:
                raised.append(time.monotonic())

        thread = threading.Thread(target=run, name="bench-nbclient", daemon=True)
        thread.start()
        wait_until(flag.exists, 60, "the nbclient death cell to start")
        pid = int(client.km.provisioner.pid)  # type: ignore[union-attr]
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        thread.join(30)
        seen = client.died_at or (raised[0] if raised else None)
        if seen is None:
            raise BenchError("nbclient did not report the dead kernel")
        nbc.append(seen - killed)

    alternate(trials, nb_side, nbclient_side)

    target = 0.5
    out.rows = [
        Row(
            "p95 kill->error", "s", p95(nb_reply), p95(nbc), "p95 ≤ 0.5 s", p95(nb_reply) <= target
        ),
        Row("median kill->error", "s", median(nb_reply), median(nbc), "(info)", None),
    ]
    out.raw = {
        "nb_reply_s": nb_reply,
        "nb_job_finished_event_s": nb_event,
        "nb_kernel_died_event_s": nb_died_event,
        "nbclient_s": nbc,
    }
    return out


# ---------------------------------------------------------------- 6. concurrency


def kernel_start(ctx: Context, repeat: int | None) -> Outcome:
    reps = repeat or ctx.sizes.kernel_start_repeat
    out = Outcome(
        "kernel_start",
        "Kernel start",
        f"{reps} runs each, alternating: the first exec_cell (`x = 1`) on a new notebook "
        "(opening it, starting its kernel, running the cell, replying) vs raw "
        "start_new_kernel() plus the same execute -> idle. Shutdowns are not timed.",
    )
    server = ctx.shared()
    nb_times: list[float] = []
    raw_times: list[float] = []
    count = iter(range(10_000))

    def nb_side() -> None:
        path = server.notebook(f"kernel_start_{next(count)}.ipynb", "x = 1")
        _, took = server.run_job("exec_cell", path=path.name, index=0)
        nb_times.append(took)
        server.ok("shutdown_kernel", path=path.name)

    def raw_side() -> None:
        started = time.monotonic()
        kernel = ctx.raw_kernel()
        try:
            kernel.timed("x = 1")
            raw_times.append(time.monotonic() - started)
        finally:
            kernel.close()

    alternate(reps, nb_side, raw_side)
    med_nb, med_raw = median(nb_times), median(raw_times)
    out.rows = [Row("first exec", "s", med_nb, med_raw, "≤ 1.2×", med_nb <= 1.2 * med_raw)]
    out.raw = {"nb_s": nb_times, "raw_s": raw_times}
    return out


# ---------------------------------------------------------------- the list
