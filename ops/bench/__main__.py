"""`make bench`: the cost of supervision against raw jupyter_client and nbclient.

Each workload runs through nb the way an agent uses it (a spawned `nb mcp`, the real MCP
client over stdio, the tree, the writer) and through its baseline in the same run,
alternating, so machine noise lands on both. It prints a table of medians, ratios and the
issue's targets (each marked met or missed) and writes the raw figures as JSON.

    python -m ops.bench [--quick] [--only NAME[,NAME]] [--json PATH] [--repeat N]
                        [--workdir DIR] [--keep] [--in-process]

Workloads: round_trip, print_heavy, tqdm, notebook, kernel_death, concurrency, footprint,
kernel_start, big_notebook_stream, big_notebook_round_trip, big_notebook_reads, gateway. Exit
status: 0 when every workload was measured (targets met or not), 1 when one could not be, 2 on
bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from ops.bench.common import Context, Outcome, Row, Sizes, say
from ops.bench.workloads import WORKLOADS

DEFAULT_JSON = "bench-results.json"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench",
        description="nb against raw jupyter_client and nbclient, in the same run.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help=f"run only these workloads ({', '.join(WORKLOADS)})",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        default=DEFAULT_JSON,
        help=f"where the raw figures go (default {DEFAULT_JSON})",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help="runs per side for print_heavy, tqdm, notebook, concurrency and kernel_start "
        "(default 3, kernel_start 5; round_trip runs 200 calls, kernel_death 10 trials)",
    )
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        help="where notebooks, state dirs and event logs go (default: a temp dir, removed "
        "afterwards unless --keep)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run `nb mcp --in-process` (the tree in the front, no daemon) instead of the "
        "default front + daemon an agent gets",
    )
    args = parser.parse_args(argv)
    if args.only:
        names = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in names if name not in WORKLOADS]
        if unknown or not names:
            parser.error(
                f"unknown workload {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}"
            )
        args.names = names
    else:
        args.names = list(WORKLOADS)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    return args


# ---------------------------------------------------------------- the table


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "B":
        return f"{value:.0f} B"
    if unit == "/s":
        return f"{value:.2f} /s"
    if float(value).is_integer():
        return f"{value:.0f} {unit}".strip()
    return f"{value:.2f} {unit}".strip()


def _verdict(row: Row) -> str:
    if row.met is None:
        return "info"
    return "met" if row.met else "MISSED"


def table(outcomes: list[Outcome]) -> str:
    header = ("workload", "metric", "nb", "baseline", "ratio", "target", "result")
    lines: list[tuple[str, ...]] = []
    for outcome in outcomes:
        if outcome.error:
            lines.append((outcome.name, "error", "—", "—", "—", "—", "MISSED"))
            continue
        for row in outcome.rows:
            lines.append(
                (
                    outcome.name,
                    row.metric,
                    _number(row.nb, row.unit),
                    _number(row.baseline, row.unit),
                    "—" if row.ratio is None else f"{row.ratio:.2f}×",
                    row.target,
                    _verdict(row),
                )
            )
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]

    def render(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(width) if 2 <= i <= 4 else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(line) for line in lines)])


# ---------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> tuple[list[Outcome], dict[str, object]]:
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.workdir:
        folder = Path(args.workdir).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        temporary = False
    else:
        folder = Path(tempfile.mkdtemp(prefix="nb-bench-"))
        temporary = not args.keep
    meta: dict[str, object] = {
        "started_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "quick": args.quick,
        "in_process": args.in_process,
        "repeat": args.repeat,
        "sizes": sizes.__dict__,
        "workdir": str(folder),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }
    outcomes: list[Outcome] = []
    ctx = Context(folder, sizes, in_process=args.in_process)
    try:
        for name in args.names:
            say(f"{name} …")
            started = time.monotonic()
            try:
                outcome = WORKLOADS[name](ctx, args.repeat)
            except Exception as error:
                outcome = Outcome(name, name, "", error=f"{type(error).__name__}: {error}")
                say(f"{name} failed:\n{traceback.format_exc()}")
            outcome.seconds = time.monotonic() - started
            say(f"{name} done in {outcome.seconds:.1f}s")
            outcomes.append(outcome)
    finally:
        ctx.close()
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
    return outcomes, meta


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    outcomes, meta = run(args)
    meta["seconds"] = round(time.monotonic() - started, 3)
    meta["load_average_at_end"] = os.getloadavg()
    report = {
        "meta": meta,
        "workloads": {outcome.name: outcome.to_json() for outcome in outcomes},
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(table(outcomes))
    missed = sum(1 for o in outcomes for r in o.rows if r.met is False) + sum(
        1 for o in outcomes if o.error
    )
    load = meta["load_average_at_start"]
    print(
        f"\n{len(outcomes)} workloads in {meta['seconds']:.0f}s; "
        f"{missed} target(s) missed; raw figures in {path}\n"
        f"machine: {meta['cpus']} CPUs, load average at start {load[0]:.2f} "  # type: ignore[index]
        "(other processes' load lands on both sides, but not evenly)"
    )
    for outcome in outcomes:
        if outcome.how:
            print(f"  {outcome.name}: {outcome.how}")
    return 1 if any(outcome.error for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
