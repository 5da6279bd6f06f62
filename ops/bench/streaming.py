"""Streaming workloads: a print-heavy cell and a tqdm bar, every line on disk."""

from __future__ import annotations

import itertools
import time
from typing import Any

from ops.bench.common import Context, Outcome, Row, alternate, median, say, stream_text
from ops.bench.driver import (
    FileWatcher,
    Hung,
    NbServer,
    RawKernel,
)


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
