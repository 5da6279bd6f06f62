"""The bench's workloads: each runs through nb (spawned `nb mcp`, the real MCP client, the tree,
the writer) and through its baseline (raw jupyter_client or nbclient) in the same run,
alternating where it makes sense, and returns rows of figures against the issue's targets.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
from nb_mcp.ops._bench_driver import (
    BenchError,
    FileWatcher,
    Hung,
    NbServer,
    RawKernel,
    proc_status,
    read_events,
    wait_until,
)
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

MARKER_PREFIX = "[nb mcp] "


# ---------------------------------------------------------------- results


@dataclass
class Row:
    """One figure against one target. `ratio` is nb / baseline when both exist."""

    metric: str
    unit: str
    nb: float | None
    baseline: float | None
    target: str
    met: bool | None
    relative: bool = True  # False: the baseline column is context, not a comparison
    ratio: float | None = None

    def __post_init__(self) -> None:
        if self.relative and self.nb is not None and self.baseline:
            self.ratio = self.nb / self.baseline


@dataclass
class Outcome:
    name: str
    title: str
    how: str
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "how": self.how,
            "rows": [asdict(row) for row in self.rows],
            "raw": self.raw,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Sizes:
    round_trip_runs: int = 200
    warmup: int = 10
    print_lines: int = 100_000
    flushed_lines: int = 10_000
    tqdm_updates: int = 10_000
    notebook_cells: int = 100
    death_trials: int = 10
    concurrency_notebooks: int = 8
    concurrency_sleep: float = 2.0
    footprint_notebooks: int = 20
    repeat: int = 3  # print_heavy, tqdm, notebook, concurrency
    kernel_start_repeat: int = 5

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            round_trip_runs=10,
            warmup=2,
            print_lines=2_000,
            flushed_lines=200,
            tqdm_updates=200,
            notebook_cells=5,
            death_trials=1,
            concurrency_notebooks=2,
            concurrency_sleep=0.5,
            footprint_notebooks=2,
            repeat=1,
            kernel_start_repeat=1,
        )


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    """The 95th percentile, interpolated between the closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = 0.95 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def alternate(count: int, nb_side: Callable[[], None], base_side: Callable[[], None]) -> None:
    """Run both sides `count` times, ABBA: machine noise lands on both, first-mover too."""
    for i in range(count):
        first, second = (nb_side, base_side) if i % 2 == 0 else (base_side, nb_side)
        first()
        second()


def stream_text(path: Path, index: int, name: str | None = None) -> str:
    """The text of a cell's stream outputs on disk, nb's markers left out."""
    cell = nbformat.read(path, as_version=4).cells[index]
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") != "stream" or (name and output.get("name") != name):
            continue
        text = output.get("text", "")
        text = "".join(text) if isinstance(text, list) else text
        if not text.startswith(MARKER_PREFIX):
            parts.append(text)
    return "".join(parts)


# ---------------------------------------------------------------- the run's shared pieces


class Context:
    """Servers and raw kernels a run shares, and the folder everything lives in."""

    def __init__(self, folder: Path, sizes: Sizes, in_process: bool = False) -> None:
        self.folder = folder
        self.sizes = sizes
        self.in_process = in_process
        self._shared: NbServer | None = None
        self._raw: RawKernel | None = None
        self._closers: list[Callable[[], None]] = []
        self.raw_dir = folder / "raw"
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        # Not *.log: the test suite reads every *.log under its tmp_path as an event log.
        self._kernel_out = open(self.raw_dir / "kernels.out", "ab")  # noqa: SIM115
        self._closers.append(self._kernel_out.close)

    def shared(self) -> NbServer:
        """One `nb mcp` for the workloads that only need a warm kernel each."""
        if self._shared is None:
            self._shared = self.server("shared")
        return self._shared

    def quiet_kernel(self) -> dict[str, Any]:
        """start_kernel() arguments that send a baseline kernel's output to a file, as nb does."""
        return {"stdout": self._kernel_out, "stderr": self._kernel_out}

    def raw_kernel(self) -> RawKernel:
        return RawKernel(self.raw_dir, self._kernel_out)

    def raw(self) -> RawKernel:
        if self._raw is None:
            self._raw = self.raw_kernel()
            self._closers.append(self._raw.close)
        return self._raw

    def server(self, name: str) -> NbServer:
        server = NbServer(self.folder, name, in_process=self.in_process)
        self._closers.append(server.close)
        return server

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as error:  # keep closing the rest
                say(f"closing: {type(error).__name__}: {error}")
        self._closers.clear()


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
        Row("median", "ms", med_nb, med_raw, "≤ baseline + 5 ms", med_nb <= med_raw + 5),
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


def print_heavy(ctx: Context, repeat: int | None) -> Outcome:
    sizes = ctx.sizes
    lines = sizes.print_lines
    reps = repeat or sizes.repeat
    out = Outcome(
        "print_heavy",
        "Print-heavy cell",
        f"`for i in range({lines}): print(i)`, {reps} runs each, alternating: exec_cell "
        "(timeout=0, block_for=30) wall time vs raw execute -> idle. A thread stats the .ipynb "
        "every 2 ms and counts new inodes (each atomic write is one); writes during streaming "
        "= all writes minus the two the design always makes (cell start, cell end), over the "
        "cell's wall time. The file must end with every line. Then once each, the same "
        f"with `print(i, flush=True)` for {sizes.flushed_lines} lines: one iopub message per "
        "line instead of a few batches, so a reader that falls behind loses lines (info row, "
        "no target in the issue; a run still going after 30 s counts as hung).",
    )
    server, raw = ctx.shared(), ctx.raw()
    code = f"for i in range({lines}):\n    print(i)"
    path = server.notebook("print_heavy.ipynb", code)
    server.run_job("exec_cell", path=path.name, index=0)  # the kernel up, the notebook open
    raw.timed("pass")
    expected = "".join(f"{i}\n" for i in range(lines))
    nb_times: list[float] = []
    raw_times: list[float] = []
    writes: list[int] = []
    rates: list[float] = []
    complete: list[bool] = []
    gaps: list[float] = []

    def nb_side() -> None:
        with FileWatcher(path) as watcher:
            started = time.monotonic()
            _, took = server.run_job("exec_cell", path=path.name, index=0, timeout=0)
            time.sleep(0.05)  # let the watcher see the last write
        seen = [t for t, _ in watcher.changes if t >= started]
        nb_times.append(took)
        writes.append(len(seen))
        rates.append(max(0, len(seen) - 2) / took)
        gaps.extend(b - a for a, b in itertools.pairwise(seen))
        complete.append(stream_text(path, 0, "stdout") == expected)

    def raw_side() -> None:
        raw_times.append(raw.timed(code))

    alternate(reps, nb_side, raw_side)
    flushed = _flushed_prints(server, raw, sizes.flushed_lines)
    server.ok("shutdown_kernel", path=path.name)

    med_nb, med_raw = median(nb_times), median(raw_times)
    out.rows = [
        Row("wall", "s", med_nb, med_raw, "≤ 1.25×", med_nb <= 1.25 * med_raw),
        Row("writes/s streaming", "/s", max(rates), None, "≤ 5 /s", max(rates) <= 5),
        Row(
            "runs with every line in file",
            "",
            float(sum(complete)),
            float(reps),
            "all",
            all(complete),
            relative=False,
        ),
    ]
    out.raw = {
        "lines": lines,
        "nb_s": nb_times,
        "raw_s": raw_times,
        "writes_per_run": writes,
        "streaming_writes_per_s": rates,
        "min_gap_between_writes_s": min(gaps) if gaps else None,
        "file_complete": complete,
        "flushed": flushed,
    }
    out.rows += [
        Row(
            "flushed: wall",
            "s",
            flushed["nb_s"],
            flushed["raw_s"],
            "(info)",
            None,
        ),
        Row(
            "flushed: lines in file",
            "",
            float(flushed["lines_in_file"]),
            float(flushed["lines"]),
            "(info) all",
            None,
            relative=False,
        ),
    ]
    return out


def _flushed_prints(server: NbServer, raw: RawKernel, lines: int) -> dict[str, Any]:
    """One flushed print per line: as many iopub messages as lines."""
    code = f"for i in range({lines}):\n    print(i, flush=True)"
    path = server.notebook("print_flushed.ipynb", code)
    raw_s = raw.timed(code)
    result: dict[str, Any] = {"lines": lines, "raw_s": raw_s, "nb_s": None, "hung": False}
    try:
        _, result["nb_s"] = server.run_job("exec_cell", 30.0, path=path.name, index=0, timeout=0)
    except Hung:
        result["hung"] = True
        say("print_heavy: the flushed-print job hung; restarting its kernel")
        server.ok("restart_kernel", path=path.name)
        time.sleep(1.0)
    text = stream_text(path, 0, "stdout")
    wanted = {str(i) for i in range(lines)}
    result["lines_in_file"] = len(wanted.intersection(text.splitlines()))
    server.ok("shutdown_kernel", path=path.name)
    return result


# ---------------------------------------------------------------- 3. tqdm bar


def tqdm_bar(ctx: Context, repeat: int | None) -> Outcome:
    sizes = ctx.sizes
    updates = sizes.tqdm_updates
    reps = repeat or sizes.repeat
    limit = 30.0
    out = Outcome(
        "tqdm",
        "tqdm bar",
        f"tqdm over range({updates}) with mininterval=0, miniters=1 (one `\\r` update per "
        f"iteration, {updates} stream messages), {reps} runs each, alternating: exec_cell "
        "(timeout=0) wall time vs raw execute -> idle; then the size in bytes of the cell's "
        "stream output on disk (nb's markers left out). A run still going after "
        f"{limit:g}s (the raw cell takes a few) counts as hung: nb lost the end of the "
        "cell's iopub stream; restart_kernel ends it and the next run goes on.",
    )
    server, raw = ctx.shared(), ctx.raw()
    code = (
        "from tqdm import tqdm\n"
        f"for _ in tqdm(range({updates}), mininterval=0, miniters=1):\n"
        "    pass"
    )
    path = server.notebook("tqdm.ipynb", "from tqdm import tqdm", code)
    server.run_job("exec_cell", path=path.name, index=0)  # the kernel up, tqdm imported
    raw.timed("from tqdm import tqdm")
    nb_times: list[float] = []
    raw_times: list[float] = []
    sizes_on_disk: list[int] = []
    finals: list[bool] = []
    hung: list[dict[str, Any]] = []

    def nb_side() -> None:
        try:
            _, took = server.run_job("exec_cell", limit, path=path.name, index=1, timeout=0)
        except Hung as stuck:
            hung.append({"job_id": stuck.job_id, "reply": stuck.text[:1000]})
            say(f"tqdm: job {stuck.job_id} hung; restarting the kernel")
            server.ok("restart_kernel", path=path.name)
            server.run_job("exec_cell", path=path.name, index=0)
            return
        nb_times.append(took)
        text = stream_text(path, 1)
        sizes_on_disk.append(len(text.encode()))
        finals.append(f"{updates}/{updates}" in text)

    def raw_side() -> None:
        raw_times.append(raw.timed(code))

    alternate(reps, nb_side, raw_side)
    server.ok("shutdown_kernel", path=path.name)

    med_raw = median(raw_times)
    med_nb = median(nb_times) if nb_times else None
    out.rows = [
        Row(
            "wall",
            "s",
            med_nb,
            med_raw,
            "≤ 1.25×",
            med_nb is not None and med_nb <= 1.25 * med_raw,
        ),
        Row(
            "stream on disk",
            "B",
            float(max(sizes_on_disk)) if sizes_on_disk else None,
            None,
            "≤ 1024 B",
            bool(sizes_on_disk) and max(sizes_on_disk) <= 1024 and all(finals),
        ),
        Row(
            "runs that finished",
            "",
            float(len(nb_times)),
            float(reps),
            "all",
            not hung,
            relative=False,
        ),
    ]
    out.raw = {
        "updates": updates,
        "nb_s": nb_times,
        "raw_s": raw_times,
        "stream_bytes_on_disk": sizes_on_disk,
        "bar_reached_the_end": finals,
        "hung_runs": hung,
    }
    return out


# ---------------------------------------------------------------- 4. whole notebook


class _WarmClient(NotebookClient):
    """nbclient's own cell loop, timed without kernel start-up and shutdown."""

    async def run_cells(self, **kernel: Any) -> float:
        async with self.async_setup_kernel(**kernel):
            started = time.monotonic()
            for index, cell in enumerate(self.nb.cells):
                await self.async_execute_cell(cell, index)
            return time.monotonic() - started


def whole_notebook(ctx: Context, repeat: int | None) -> Outcome:
    sizes = ctx.sizes
    cells = sizes.notebook_cells
    reps = repeat or sizes.repeat
    out = Outcome(
        "notebook",
        "Whole notebook",
        f"{cells} small code cells (`v_i = i * 2`), {reps} runs each, alternating. `cold` (the "
        "target): exec_all on the notebook with its kernel shut down first, so the kernel "
        "starts inside the call, vs nbclient NotebookClient.execute() of the same file "
        "(which starts and stops its own kernel). `warm`: exec_all with the kernel already "
        "up vs nbclient's cell loop inside setup_kernel() (start-up not timed): the "
        "per-cell cost with nothing to hide it.",
    )
    server = ctx.shared()
    path = server.notebook("notebook.ipynb", *(f"v_{i} = {i} * 2" for i in range(cells)))
    pristine = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": str(path.parent)}}
    server.ok("list_cells", path=path.name)  # opened, as on every timed run
    cold_nb: list[float] = []
    cold_nbc: list[float] = []
    warm_nb: list[float] = []
    warm_nbc: list[float] = []

    def nb_cold() -> None:
        server.ok("shutdown_kernel", path=path.name)
        _, took = server.run_job("exec_all", path=path.name)
        cold_nb.append(took)

    def nbclient_cold() -> None:
        client = NotebookClient(copy.deepcopy(pristine), kernel_name="python3", resources=resources)
        started = time.monotonic()
        client.execute(**ctx.quiet_kernel())
        cold_nbc.append(time.monotonic() - started)

    def nb_warm() -> None:
        _, took = server.run_job("exec_all", path=path.name)
        warm_nb.append(took)

    def nbclient_warm() -> None:
        client = _WarmClient(copy.deepcopy(pristine), kernel_name="python3", resources=resources)
        warm_nbc.append(asyncio.run(client.run_cells(**ctx.quiet_kernel())))

    alternate(reps, nb_cold, nbclient_cold)
    server.run_job("exec_cell", path=path.name, index=0)
    alternate(reps, nb_warm, nbclient_warm)
    server.ok("shutdown_kernel", path=path.name)

    c_nb, c_nbc = median(cold_nb), median(cold_nbc)
    w_nb, w_nbc = median(warm_nb), median(warm_nbc)
    out.rows = [
        Row("cold wall", "s", c_nb, c_nbc, "≤ 1.2×", c_nb <= 1.2 * c_nbc),
        Row("warm wall", "s", w_nb, w_nbc, "≤ 1.2×", w_nb <= 1.2 * w_nbc),
    ]
    out.raw = {
        "cells": cells,
        "cold_nb_s": cold_nb,
        "cold_nbclient_s": cold_nbc,
        "warm_nb_s": warm_nb,
        "warm_nbclient_s": warm_nbc,
        "warm_nb_ms_per_cell": w_nb / cells * 1000,
        "warm_nbclient_ms_per_cell": w_nbc / cells * 1000,
    }
    return out


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
        waiting = server.start_call("exec_status", job_id=job_id, block_for=30)
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


def concurrency(ctx: Context, repeat: int | None) -> Outcome:
    sizes = ctx.sizes
    count, nap = sizes.concurrency_notebooks, sizes.concurrency_sleep
    reps = repeat or sizes.repeat
    bound = 1.3 * nap  # 2.6 s for the 2 s cell
    out = Outcome(
        "concurrency",
        "Concurrency",
        f"{count} notebooks with kernels already started, each running `time.sleep({nap:g})`, "
        f"submitted together (exec_cell, block_for=30, concurrent MCP calls); figure: first "
        f"submission -> last reply. Baseline: {count} raw kernels, the same cell sent to all "
        f"then each read to idle in its own thread. {reps} runs each, alternating.",
    )
    server = ctx.server("concurrency")
    paths = [
        server.notebook(f"conc_{i}.ipynb", "pass", f"import time\ntime.sleep({nap!r})")
        for i in range(count)
    ]
    warm = [server.start_call("exec_cell", path=p.name, index=0, block_for=30) for p in paths]
    for future in warm:
        if not future.result(timeout=120).finished:
            raise BenchError("a concurrency notebook's kernel did not start")
    with ThreadPoolExecutor(count) as pool:
        raws = list(pool.map(lambda _: ctx.raw_kernel(), range(count)))
    nb_all: list[float] = []
    raw_all: list[float] = []
    nb_each: list[list[float]] = []

    def nb_side() -> None:
        started = time.monotonic()
        futures = [
            server.start_call("exec_cell", path=p.name, index=1, timeout=0, block_for=30)
            for p in paths
        ]
        replies = [future.result(timeout=120) for future in futures]
        if not all(reply.state == "ok" for reply in replies):
            raise BenchError("a concurrent sleep cell did not finish ok")
        nb_each.append([reply.received - started for reply in replies])
        nb_all.append(max(reply.received for reply in replies) - started)

    def raw_side() -> None:
        code = f"import time\ntime.sleep({nap!r})"
        with ThreadPoolExecutor(count) as pool:
            started = time.monotonic()
            list(pool.map(lambda kernel: kernel.execute(code), raws))
            raw_all.append(time.monotonic() - started)

    try:
        alternate(reps, nb_side, raw_side)
    finally:
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(lambda kernel: kernel.close(), raws))
    worst = max(nb_all)
    out.rows = [
        Row(
            "all finished",
            "s",
            worst,
            max(raw_all),
            f"≤ {bound:.2g} s",
            worst <= bound,
        )
    ]
    out.raw = {
        "notebooks": count,
        "sleep_s": nap,
        "nb_all_finished_s": nb_all,
        "nb_each_s": nb_each,
        "raw_all_finished_s": raw_all,
    }
    return out


# ---------------------------------------------------------------- 7. footprint


def footprint(ctx: Context) -> Outcome:
    count = ctx.sizes.footprint_notebooks
    out = Outcome(
        "footprint",
        "Footprint",
        "VmRSS and /proc/<pid>/task of the process that holds the tree (the daemon `nb "
        "serve`, or `nb mcp` with --in-process; kernels are other processes and not counted): "
        f"right after start (the baseline column), with {count} notebooks open, and with "
        f"{count} notebooks open and their kernels started and idle (2 s after the last "
        "start). The `nb mcp` front that relays stdio to the daemon is reported on its own.",
    )
    server = ctx.server("footprint")
    server.ok("status")
    start = proc_status(server.pid)
    threads_start = server.threads()
    paths = [server.notebook(f"fp_{i}.ipynb", "pass") for i in range(count)]
    for path in paths:
        server.ok("list_cells", path=path.name)
    opened = proc_status(server.pid)
    threads_open = server.threads()
    for batch in range(0, count, 4):
        futures = [
            server.start_call("exec_cell", path=p.name, index=0, block_for=30)
            for p in paths[batch : batch + 4]
        ]
        for future in futures:
            if not future.result(timeout=120).finished:
                raise BenchError("a footprint notebook's kernel did not start")
    time.sleep(2.0)
    idle = proc_status(server.pid)
    threads_idle = server.threads()
    front = proc_status(server.front_pid) if server.front_pid != server.pid else None
    rss_mb = idle["VmRSS"] / 1024
    per_notebook = (threads_idle - threads_start) / count
    out.rows = [
        Row(
            f"tree RSS, {count} nb + kernels",
            "MB",
            rss_mb,
            start["VmRSS"] / 1024,
            "≤ 150 MB",
            rss_mb <= 150,
            relative=False,
        ),
        Row("threads per notebook", "", per_notebook, None, "(reported)", None),
        Row(
            "front (nb mcp) RSS",
            "MB",
            front["VmRSS"] / 1024 if front else 0.0,
            None,
            "(reported)",
            None,
        ),
    ]
    out.raw = {
        "notebooks": count,
        "tree_pid_is_front": front is None,
        "rss_kb_start": start["VmRSS"],
        "rss_kb_open": opened["VmRSS"],
        "rss_kb_kernels_idle": idle["VmRSS"],
        "hwm_kb": idle["VmHWM"],
        "front_rss_kb": front["VmRSS"] if front else None,
        "threads_start": threads_start,
        "threads_open": threads_open,
        "threads_kernels_idle": threads_idle,
        "threads_per_open_notebook": (threads_open - threads_start) / count,
        "threads_per_notebook_with_kernel": per_notebook,
        "rss_kb_per_notebook": (idle["VmRSS"] - start["VmRSS"]) / count,
    }
    return out


# ---------------------------------------------------------------- 8. kernel start


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


WORKLOADS: dict[str, Callable[[Context, int | None], Outcome]] = {
    "round_trip": lambda ctx, _: round_trip(ctx),
    "print_heavy": print_heavy,
    "tqdm": tqdm_bar,
    "notebook": whole_notebook,
    "kernel_death": lambda ctx, _: kernel_death(ctx),
    "concurrency": concurrency,
    "footprint": lambda ctx, _: footprint(ctx),
    "kernel_start": kernel_start,
}
