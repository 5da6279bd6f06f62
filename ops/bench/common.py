"""What every workload shares: result rows, sizes, statistics, and the servers and raw kernels
of one run (`Context`)."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from ops.bench.driver import (
    NbServer,
    RawKernel,
)

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
    big_cells: int = 300  # big_notebook_*: ~50 MB of plots
    big_output_kb: int = 170
    big_stream_lines: int = 400
    big_stream_gap: float = 0.05
    big_round_trips: int = 30
    two_mb_lines: int = 32_000
    big_reads: int = 20

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
            big_cells=10,
            big_output_kb=20,
            big_stream_lines=20,
            big_stream_gap=0.01,
            big_round_trips=2,
            two_mb_lines=1000,
            big_reads=2,
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

    def server(self, name: str, env: dict[str, str] | None = None) -> NbServer:
        server = NbServer(self.folder, name, in_process=self.in_process, env=env)
        self._closers.append(server.close)
        return server

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as error:  # keep closing the rest
                say(f"closing: {type(error).__name__}: {error}")
        self._closers.clear()
