"""Waiting for a job inside a tool call: bounded, with progress, and cancellable.

The wait is the only thing a tool call owns: a cancelled call (the client's Esc,
`notifications/cancelled`) or a wait that runs out ends the wait, never the job.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Future
from dataclasses import dataclass

import anyio
from mcp.server.mcpserver import Context
from nb_mcp.mcp_front import job_replies
from nb_mcp.supervisor.config import SessionSettings
from nb_mcp.supervisor.facade import Facade, NbError
from nb_mcp.supervisor.results import JobSnapshot

PROGRESS_EVERY = 1.0


@dataclass(frozen=True)
class Bound:
    seconds: float
    note: str = ""


def bound(config: SessionSettings, block_for: float | None) -> Bound:
    """How long to wait: the default grace, or `block_for` clamped to the maximum."""
    if block_for is None:
        return Bound(min(config.block_for_sec, config.max_block_for_sec))
    if block_for < 0:
        raise NbError(f"block_for must be 0 or more seconds, not {block_for:g}")
    if block_for > config.max_block_for_sec:
        return Bound(
            config.max_block_for_sec,
            f"block_for={block_for:g} was clamped to {config.max_block_for_sec:g}s "
            "(NB_MCP_MAX_BLOCK_FOR_SEC): a longer wait would hold your tool slot; follow the "
            "job with the Monitor command instead.",
        )
    return Bound(block_for)


async def wait_for(
    facade: Facade, job_id: str, future: Future[JobSnapshot], seconds: float, ctx: Context
) -> JobSnapshot | None:
    """The finished job, or None if it is still going after `seconds`.

    The wait is subscribed to its job: the job tells it each change (its future, its board),
    and the progress notifications, one a second, say the latest it was told; nothing asks
    the job how it is doing.
    """
    if future.done() or seconds <= 0:
        return future.result() if future.done() else None
    loop = asyncio.get_running_loop()
    finished = anyio.Event()
    latest: list[JobSnapshot] = []

    def wake(_: Future[JobSnapshot]) -> None:
        # The job may end after this wait (and its event loop) is long gone.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(finished.set)

    def changed(snapshot: JobSnapshot) -> None:
        latest[:] = [snapshot]  # the job's thread: only keep it

    future.add_done_callback(wake)
    try:
        unwatch = facade.watch_job(job_id, changed)
    except NbError:
        unwatch = _nothing  # forgotten meanwhile (500 newer jobs): its future still ends it
    with contextlib.suppress(NbError):
        now = facade.job(job_id)  # where it stands (its board: no ask), until it next changes
        if not latest:
            latest[:] = [now]
    try:
        started = loop.time()
        while not future.done():
            remaining = started + seconds - loop.time()
            if remaining <= 0:
                break
            with anyio.move_on_after(min(PROGRESS_EVERY, remaining)):
                await finished.wait()
            if not future.done() and latest:
                await _report(_as_shown(facade, latest[-1]), loop.time() - started, seconds, ctx)
    finally:
        unwatch()
    return future.result() if future.done() else None


def _as_shown(facade: Facade, snapshot: JobSnapshot) -> JobSnapshot:
    running = snapshot.running
    if running is None or running.last_output_at is not None:
        return snapshot  # a cell that printed has a kernel: no need to ask
    return facade.job_progress(snapshot)  # a kernel still starting (a gateway's: minutes)


def _nothing() -> None:
    return None


async def _report(snapshot: JobSnapshot, waited: float, bound: float, ctx: Context) -> None:
    # progress must grow with every notification: the seconds waited do, the cells may not.
    await ctx.report_progress(round(waited, 1), bound, job_replies.describe_progress(snapshot))
