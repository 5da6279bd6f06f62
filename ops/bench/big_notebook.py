"""Big-notebook workloads (issue 15): the server's cost follows the work, not the file's size.

The same cell runs in a small notebook and in a ~50 MB one (300 cells, each with a ~170 KB
image output, the shape of a training notebook full of plots); the figures are ratios of the
two in one run. The server's CPU is the daemon's own (user + system, from psutil), kernels
not included.
"""

from __future__ import annotations

import base64
import os
import statistics
import time
from pathlib import Path

import nbformat
import psutil

from ops.bench.common import Context, Outcome, Row, median, stream_text
from ops.bench.driver import BenchError, NbServer, wait_until

_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _stream_code(lines: int, gap: float) -> str:
    return f"import time\nfor i in range({lines}):\n    print(i, flush=True)\n    time.sleep({gap})"


def _write(path: Path, cells: list[nbformat.NotebookNode]) -> Path:
    document = nbformat.v4.new_notebook()
    document.metadata["kernelspec"] = _KERNELSPEC
    document.cells = cells
    nbformat.write(document, path)
    return path


def _plots(ctx: Context) -> list[nbformat.NotebookNode]:
    """The big notebook's plot cells (random PNG-sized payloads: they do not compress)."""
    sizes = ctx.sizes
    cells = []
    for n in range(sizes.big_cells):
        cell = nbformat.v4.new_code_cell(f"plot(epoch={n})")
        payload = base64.b64encode(os.urandom(sizes.big_output_kb * 768)).decode()
        data = {"image/png": payload, "text/plain": "<Figure size 640x480 with 1 Axes>"}
        cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
        cell.execution_count = n + 1
        cells.append(cell)
    return cells


def _big(ctx: Context, server: NbServer, name: str, *head: str) -> Path:
    """`head` cells, then the plots; the plots are made once per run and copied."""
    template = ctx.folder / "big-plots.ipynb"
    if not template.exists():
        _write(template, _plots(ctx))
    document = nbformat.read(template, as_version=4)
    document.cells = [nbformat.v4.new_code_cell(source) for source in head] + document.cells
    return _write(server.work / name, document.cells)


def _small(server: NbServer, name: str, *sources: str) -> Path:
    return _write(server.work / name, [nbformat.v4.new_code_cell(s) for s in sources])


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _mb(path: Path) -> float:
    return path.stat().st_size / 1e6


# ---------------------------------------------------------------- streaming


def big_notebook_stream(ctx: Context, repeat: int | None) -> Outcome:
    sizes = ctx.sizes
    lines, gap = sizes.big_stream_lines, sizes.big_stream_gap
    reps = repeat or sizes.repeat
    server = ctx.server("big_stream")
    code = _stream_code(lines, gap)
    small = _small(server, "small.ipynb", code, "x = 1")
    big = _big(ctx, server, "big.ipynb", code, "x = 1")
    out = Outcome(
        "big_notebook_stream",
        "Streaming into a big notebook",
        f"`print(i, flush=True)` {lines} times, {gap}s apart, as cell 0 of a 2-cell notebook "
        f"and of a {_mb(big):.0f} MB one ({sizes.big_cells} cells with "
        f"~{sizes.big_output_kb} KB image outputs); {reps} runs each, alternating, each "
        "notebook open and its kernel up first. The daemon's CPU seconds (user + system) "
        "over each run, until the file shows the cell's end (a big notebook's reply does not "
        "wait for its file); the share of one core during the big runs; every line on disk.",
    )
    expected = "".join(f"{i}\n" for i in range(lines))
    for path in (small, big):
        server.run_job("exec_cell", path=path.name, index=1)  # opened, kernel up
    cpu: dict[Path, list[float]] = {small: [], big: []}
    lag: dict[Path, list[float]] = {small: [], big: []}
    share: list[float] = []
    complete: list[bool] = []
    for i in range(reps):
        for path in (small, big) if i % 2 == 0 else (big, small):
            before = _cpu(server.pid)
            reply, took = server.run_job("exec_cell", path=path.name, index=0, timeout=0)
            # A big notebook's reply does not wait for its file: the file follows.
            try:
                wait_until(lambda p=path: _finished_on_disk(p, expected), 10, "the file")
                complete.append(True)
            except BenchError:
                complete.append(False)
            lag[path].append(time.monotonic() - reply.received)
            used = _cpu(server.pid) - before
            cpu[path].append(used)
            if path == big:
                share.append(used / (took + lag[path][-1]))
    for path in (small, big):
        server.ok("shutdown_kernel", path=path.name)
    med_small, med_big = median(cpu[small]), median(cpu[big])
    out.rows = [
        Row(
            "server CPU big vs small", "s", med_big, med_small, "≤ 1.5×", med_big <= 1.5 * med_small
        ),
        Row(
            "server CPU share, big",
            "%",
            100 * max(share),
            None,
            "≤ 25% of a core",
            max(share) <= 0.25,
        ),
        Row(
            "file shows the end, after the reply",
            "s",
            max(lag[big]),
            max(lag[small]),
            "(info)",
            None,
            relative=False,
        ),
        Row(
            "runs with every line in file",
            "",
            float(sum(complete)),
            float(len(complete)),
            "all",
            all(complete),
            relative=False,
        ),
    ]
    out.raw = {
        "big_mb": _mb(big),
        "cpu_small_s": cpu[small],
        "cpu_big_s": cpu[big],
        "cpu_share_big": share,
        "file_complete": complete,
        "file_lag_small_s": lag[small],
        "file_lag_big_s": lag[big],
    }
    return out


def _finished_on_disk(path: Path, expected: str) -> bool:
    """Every line, and the cell's Done footer: the write after the cell's end is there."""
    try:
        cell = nbformat.read(path, as_version=4).cells[0]
    except Exception:  # caught mid-replace by a reader that is not atomic: look again
        return False
    last = cell.outputs[-1] if cell.outputs else {}
    return "✓ Done" in str(last.get("text", "")) and stream_text(path, 0, "stdout") == expected


# ---------------------------------------------------------------- round trip


def big_notebook_round_trip(ctx: Context, repeat: int | None) -> Outcome:
    sizes = ctx.sizes
    runs = sizes.big_round_trips
    server = ctx.shared()
    printed = "".join(f"line {n:06d} " + "x" * 48 + "\n" for n in range(sizes.two_mb_lines))
    two_mb = _write(
        server.work / "two_mb.ipynb",
        [
            nbformat.v4.new_code_cell("x = 1"),
            nbformat.v4.new_code_cell(
                "print(log)",
                outputs=[nbformat.v4.new_output("stream", name="stdout", text=printed)],
            ),
        ],
    )
    notebooks = {
        "small": _small(server, "small_rt.ipynb", "x = 1", "y = 2"),
        "2 MB output": two_mb,
        "50 MB": _big(ctx, server, "big_rt.ipynb", "x = 1"),
    }
    out = Outcome(
        "big_notebook_round_trip",
        "Trivial cell in a big notebook",
        f"`x = 1`, {runs} exec_cell round trips (block_for=30, timed at the client) in each "
        f"of: a 2-cell notebook; one holding a {_mb(two_mb):.1f} MB printed output; the "
        f"{_mb(notebooks['50 MB']):.0f} MB notebook of plots. Interleaved call by call, "
        "after warm-up runs; each notebook has its kernel up.",
    )
    times: dict[str, list[float]] = {name: [] for name in notebooks}
    for _ in range(min(3, runs)):
        for path in notebooks.values():
            server.run_job("exec_cell", path=path.name, index=0)
    for i in range(runs):
        order = list(notebooks.items())
        for name, path in order if i % 2 == 0 else reversed(order):
            _, took = server.run_job("exec_cell", path=path.name, index=0)
            times[name].append(took * 1000)
    for path in notebooks.values():
        server.ok("shutdown_kernel", path=path.name)
    base = median(times["small"])
    out.rows = [
        Row(
            f"median, {name}",
            "ms",
            median(values),
            base,
            "≤ 1.3× small" if name != "small" else "(info)",
            median(values) <= 1.3 * base if name != "small" else None,
        )
        for name, values in times.items()
    ]
    out.raw = {f"{name}_ms": values for name, values in times.items()}
    return out


# ---------------------------------------------------------------- reads while streaming


def big_notebook_reads(ctx: Context, repeat: int | None) -> Outcome:
    sizes = ctx.sizes
    calls = sizes.big_reads
    server = ctx.shared()
    lines = max(sizes.big_stream_lines, 200)
    big = _big(ctx, server, "big_reads.ipynb", _stream_code(lines * 4, sizes.big_stream_gap))
    out = Outcome(
        "big_notebook_reads",
        "Reads of a big notebook while it streams",
        f"list_cells and read_cell (a plot cell, index {sizes.big_cells // 2}) on the "
        f"{_mb(big):.0f} MB notebook, {calls} calls each, alternating, timed at the client, "
        "while its first cell prints a line every "
        f"{sizes.big_stream_gap}s. First, the notebook's opening: the first list_cells "
        "(nb parses the file once) vs nbformat.read of the same file in the bench process.",
    )
    started = time.monotonic()
    reference = nbformat.read(big, as_version=4)
    parse_s = time.monotonic() - started
    del reference
    opened = server.ok("list_cells", path=big.name).seconds
    job = server.ok("exec_cell", path=big.name, index=0, timeout=0, block_for=0)
    if job.job_id is None:
        raise BenchError(f"exec_cell gave no job id: {job.text[:300]}")
    wait_until(lambda: "0\n" in stream_text(big, 0, "stdout"), 60, "the first streamed line")
    listing: list[float] = []
    reading: list[float] = []
    for _ in range(calls):
        listing.append(server.ok("list_cells", path=big.name).seconds * 1000)
        reading.append(
            server.ok("read_cell", path=big.name, index=sizes.big_cells // 2).seconds * 1000
        )
    still_running = "running" in server.ok("exec_status", job_id=job.job_id).text
    server.ok("interrupt", path=big.name)
    server.ok("shutdown_kernel", path=big.name)
    med_list, med_read = median(listing), median(reading)
    out.rows = [
        Row("open (first list_cells)", "s", opened, parse_s, "(info)", None),
        Row("list_cells median", "ms", med_list, None, "≤ 150 ms", med_list <= 150),
        Row("read_cell median", "ms", med_read, None, "≤ 100 ms", med_read <= 100),
        Row(
            "reads made while it streamed",
            "",
            float(still_running),
            1.0,
            "yes",
            still_running,
            relative=False,
        ),
    ]
    out.raw = {
        "big_mb": _mb(big),
        "list_cells_ms": listing,
        "read_cell_ms": reading,
        "list_cells_p90_ms": _p90(listing),
        "read_cell_p90_ms": _p90(reading),
        "open_s": opened,
        "nbformat_read_s": parse_s,
    }
    return out


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]
