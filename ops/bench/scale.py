"""Scale workloads: a 100-cell notebook, eight notebooks at once, the daemon's footprint."""

from __future__ import annotations

import asyncio
import copy
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import nbformat
from nbclient import NotebookClient

from ops.bench.common import Context, Outcome, Row, alternate, median
from ops.bench.driver import (
    BenchError,
    proc_status,
)


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
    warm = [server.start_call("exec_cell", path=p.name, index=0, block_for=30)[0] for p in paths]
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
            server.start_call("exec_cell", path=p.name, index=1, timeout=0, block_for=30)[0]
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
            server.start_call("exec_cell", path=p.name, index=0, block_for=30)[0]
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
