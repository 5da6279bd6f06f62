"""The execution tools: run cells in background jobs, wait a bounded time, report."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from nb_mcp.mcp_front import job_replies, replies, tasks_extension, waiting
from nb_mcp.mcp_front.registry import CellId, Index, NotebookPath, Tools
from nb_mcp.mcp_front.tasks_extension import TasksExtension
from nb_mcp.supervisor.facade import JobSnapshot, Submitted
from pydantic import Field

Timeout = Annotated[
    float | None,
    Field(
        description="Wall-clock limit per cell in seconds; the cell is interrupted and the job "
        "stops when it passes. 0 = no limit (long training runs). Default: "
        "NB_MCP_DEFAULT_TIMEOUT_SEC (600)."
    ),
]
BlockFor = Annotated[
    float | None,
    Field(
        description="Seconds to wait for the job before replying with its id and a Monitor "
        "command (default NB_MCP_BLOCK_FOR_SEC, 10; at most NB_MCP_MAX_BLOCK_FOR_SEC, 30)"
    ),
]
KernelName = Annotated[
    str | None,
    Field(
        description="A kernelspec name, or the folder of a Python environment, to start if no "
        "kernel runs (default: the notebook's metadata, else the project's .venv, else "
        "python3; list_kernels shows the choice)"
    ),
]


def register(tools: Tools, tasks: TasksExtension) -> None:
    facade, run = tools.facade, tools.run

    async def submit_and_wait(
        ctx: Context, block_for: float | None, path: str, kind: str, **arguments: Any
    ) -> list[Any] | str:
        wait = waiting.bound(tools.settings, block_for)
        scope = await tools.scope(ctx)
        submitted: Submitted = await run(facade.submit, path, kind, scope=scope, **arguments)
        return await reply(ctx, submitted.job_id, wait, submitted.notices, kind)

    def finished(snapshot: JobSnapshot, wait_note: str, notes: list[str]) -> list[Any]:
        """The reply for a finished job (blocking: call it in a worker thread)."""
        outputs = None
        if snapshot.kind == "run_scratch":
            notes = notes + facade.notices_for(snapshot.notebook)
        else:
            outputs, notices = facade.job_outputs(snapshot)
            notes = notes + notices
        if wait_note:
            notes = [wait_note, *notes]
        return job_replies.finished(
            snapshot, outputs, tools.settings.max_reply_chars, tools.settings.max_image_bytes, notes
        )

    async def reply(
        ctx: Context, job_id: str, wait: waiting.Bound, notes: list[str], tool: str = ""
    ) -> list[Any] | str:
        future = facade.job_future(job_id)
        snapshot = await waiting.wait_for(facade, job_id, future, wait.seconds, ctx)
        if snapshot is None and tool and tasks_extension.offered():
            # Still running, and the client takes tasks: the result comes through tasks/get,
            # exactly as this call would have given it, the session's notices included.
            later = notes + tools.take_first_notices()

            def render(ended: JobSnapshot) -> dict[str, Any]:
                return tasks_extension.call_tool_result(finished(ended, wait.note, later))

            notebook = (await run(facade.job, job_id)).notebook
            tasks_extension.answer_with(tasks.create(job_id, future, render, tool, notebook))
            return ""
        if snapshot is None:
            await run(facade.remember_job, job_id)  # the agent is about to run nb watch
            snapshot = await run(facade.job, job_id)
            notes = notes + await run(facade.notices_for, snapshot.notebook)
            return job_replies.pending(snapshot, wait.seconds, wait.note, notes)
        return await run(finished, snapshot, wait.note, notes)

    @tools.tool
    async def exec_cell(
        ctx: Context,
        path: NotebookPath,
        index: Index = None,
        cell_id: CellId = None,
        timeout: Timeout = None,
        block_for: BlockFor = None,
        kernel_name: KernelName = None,
    ) -> list[Any] | str:
        """Run one code cell in the notebook's kernel. Outputs stream into the .ipynb as they
        come. Returns the outputs if it finishes within block_for, else the job id and a
        Monitor command to follow it."""
        return await submit_and_wait(
            ctx,
            block_for,
            path,
            "exec_cell",
            index=index,
            cell_id=cell_id,
            timeout=timeout,
            kernel_name=kernel_name,
        )

    @tools.tool
    async def exec_range(
        ctx: Context,
        path: NotebookPath,
        start: Annotated[int | None, Field(description="First cell index (default 0)")] = None,
        end: Annotated[
            int | None, Field(description="Last cell index, inclusive (default: the last cell)")
        ] = None,
        timeout: Timeout = None,
        block_for: BlockFor = None,
        kernel_name: KernelName = None,
    ) -> list[Any] | str:
        """Run the code cells from start to end (inclusive) in order, as one job. A cell that
        fails stops the job; the cells after it are marked skipped."""
        return await submit_and_wait(
            ctx,
            block_for,
            path,
            "exec_range",
            start=start,
            end=end,
            timeout=timeout,
            kernel_name=kernel_name,
        )

    @tools.tool
    async def exec_all(
        ctx: Context,
        path: NotebookPath,
        timeout: Timeout = None,
        block_for: BlockFor = None,
        kernel_name: KernelName = None,
    ) -> list[Any] | str:
        """Run every code cell in order, as one job (stops at the first failure)."""
        return await submit_and_wait(
            ctx, block_for, path, "exec_all", timeout=timeout, kernel_name=kernel_name
        )

    @tools.tool
    async def insert_and_exec(
        ctx: Context,
        path: NotebookPath,
        source: Annotated[str, Field(description="The new code cell's source")],
        index: Annotated[
            int | None, Field(description="Position of the new cell (-1 or omitted: append)")
        ] = None,
        after_cell_id: Annotated[
            str | None, Field(description="Insert right after the cell with this id instead")
        ] = None,
        timeout: Timeout = None,
        block_for: BlockFor = None,
        kernel_name: KernelName = None,
    ) -> list[Any] | str:
        """Insert a code cell and run it (creates the notebook if needed)."""
        return await submit_and_wait(
            ctx,
            block_for,
            path,
            "insert_and_exec",
            source=source,
            index=index,
            after_cell_id=after_cell_id,
            timeout=timeout,
            kernel_name=kernel_name,
        )

    @tools.tool
    async def run_scratch(
        ctx: Context,
        path: NotebookPath,
        code: Annotated[str, Field(description="Code to run in the notebook's kernel")],
        timeout: Timeout = None,
        block_for: BlockFor = None,
        kernel_name: KernelName = None,
    ) -> list[Any] | str:
        """Run code in the notebook's kernel (same variables, same queue) without writing
        anything to the file; returns its outputs. For quick checks: df.shape, a print."""
        return await submit_and_wait(
            ctx, block_for, path, "run_scratch", code=code, timeout=timeout, kernel_name=kernel_name
        )

    @tools.tool
    async def exec_status(
        ctx: Context,
        job_id: Annotated[str, Field(description="The job id an exec tool returned")],
        block_for: Annotated[
            float | None,
            Field(
                description="Seconds to wait for the job to finish first (default 0, "
                "at most NB_MCP_MAX_BLOCK_FOR_SEC)"
            ),
        ] = 0,
    ) -> list[Any] | str:
        """A job's cells with their state, duration and last output age; its outputs once it
        has finished."""
        wait = waiting.bound(tools.settings, block_for or 0.0)  # null is the default: no wait
        # A job on a notebook outside this session's roots is as unknown as no job at all.
        future = facade.job_future(job_id, await tools.scope(ctx))
        if wait.seconds > 0 or future.done():
            snapshot = await waiting.wait_for(facade, job_id, future, wait.seconds, ctx)
            if snapshot is not None:
                return await reply(ctx, job_id, waiting.Bound(0.0, wait.note), [])
        snapshot = await run(facade.job, job_id)
        if not snapshot.done:
            await run(facade.remember_job, job_id)
        notes = await run(facade.notices_for, snapshot.notebook)
        if wait.note:
            notes = [wait.note, *notes]
        return replies.with_notices(job_replies.table(snapshot), notes)

    @tools.tool
    async def cancel_job(
        ctx: Context,
        job_id: Annotated[str, Field(description="The job id an exec tool returned")],
    ) -> str:
        """Stop that job only: a queued one leaves the queue (its cells show what they showed
        before), a running one has its cell interrupted (the kernel and its variables stay)
        and its later cells skipped. Other jobs on the notebook run on."""
        scope = await tools.scope(ctx)
        said = await run(facade.cancel_job, job_id, scope)
        future = facade.job_future(job_id, scope)
        wait = waiting.bound(tools.settings, None)
        snapshot = await waiting.wait_for(facade, job_id, future, wait.seconds, ctx)
        if snapshot is None:
            return f'{said}; it has not stopped yet: exec_status(job_id="{job_id}") follows it'
        return f"{said}.\n{job_replies.table(snapshot)}"

    @tools.tool
    async def status(ctx: Context) -> str:
        """The kernels of notebooks under this session's roots (notebook, environment, pid,
        state) and their active and recent jobs."""
        scope = await tools.scope(ctx)
        return job_replies.server_status(await run(facade.status, scope.roots))

    @tools.tool
    async def interrupt(ctx: Context, path: NotebookPath) -> str:
        """Interrupt the running cell of the notebook's kernel (KeyboardInterrupt); its job
        stops and its later cells are skipped. Queued jobs still run."""
        return await run(facade.interrupt, path, await tools.scope(ctx))

    @tools.tool
    async def restart_kernel(
        ctx: Context, path: NotebookPath, kernel_name: KernelName = None
    ) -> str:
        """Restart the notebook's kernel (all variables are lost) with this session's
        environment variables, in the Python nb chooses for it (or kernel_name's). A running
        cell ends in error."""
        return await run(facade.restart_kernel, path, kernel_name, await tools.scope(ctx))

    @tools.tool
    async def shutdown_kernel(ctx: Context, path: NotebookPath) -> str:
        """Stop the notebook's kernel; the next execution starts a fresh one."""
        return await run(facade.shutdown_kernel, path, await tools.scope(ctx))
