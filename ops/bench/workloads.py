"""The bench's workloads: each runs through nb (spawned `nb mcp`, the real MCP client, the tree,
the writer) and through its baseline (raw jupyter_client or nbclient) in the same run,
alternating where it makes sense, and returns rows of figures against the issue's targets.
"""

from __future__ import annotations

from collections.abc import Callable

from ops.bench.big_notebook import big_notebook_reads, big_notebook_round_trip, big_notebook_stream
from ops.bench.common import Context, Outcome
from ops.bench.gateway import gateway_round_trip
from ops.bench.latency import kernel_death, kernel_start, round_trip
from ops.bench.scale import concurrency, footprint, whole_notebook
from ops.bench.streaming import print_heavy, tqdm_bar

WORKLOADS: dict[str, Callable[[Context, int | None], Outcome]] = {
    "round_trip": lambda ctx, _: round_trip(ctx),
    "print_heavy": print_heavy,
    "tqdm": tqdm_bar,
    "notebook": whole_notebook,
    "kernel_death": lambda ctx, _: kernel_death(ctx),
    "concurrency": concurrency,
    "footprint": lambda ctx, _: footprint(ctx),
    "kernel_start": kernel_start,
    "big_notebook_stream": big_notebook_stream,
    "big_notebook_round_trip": big_notebook_round_trip,
    "big_notebook_reads": big_notebook_reads,
    "gateway": lambda ctx, _: gateway_round_trip(ctx),
}
