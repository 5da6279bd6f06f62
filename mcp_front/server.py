"""`nb mcp`: the MCP server over stdio, a thin layer of tools over the supervisor's facade."""

from __future__ import annotations

import functools
import inspect
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.stdio import stdio_server
from mcp_types import CallToolResult
from pydantic import Field

from actors.log import emit
from mcp_front import replies
from mcp_front.stdio import StdinLines
from supervisor.facade import VERSION, Facade, NbError

P = ParamSpec("P")
R = TypeVar("R")

INSTRUCTIONS = """\
nb reads, edits and runs Jupyter notebooks. Cells are addressed by `index` (0-based, negative
counts from the end) or by `cell_id` (stable across edits; list_cells shows them). Every edit is
written to the .ipynb at once, so a person watching it in JupyterLab or VS Code sees it.
"""

Path_ = Annotated[
    str, Field(description="Path of the .ipynb file (relative to the server's folder)")
]
Index = Annotated[
    int | None, Field(description="Cell index, 0-based; negative counts from the end (-1 = last)")
]
CellId = Annotated[str | None, Field(description="Cell id (from list_cells); use instead of index")]


def build(facade: Facade) -> MCPServer:
    # WARNING: the SDK's INFO lines (every failed call, with traceback) would flood the
    # client's stderr log; nb's own event log says what happened.
    server = MCPServer("nb", version=VERSION, instructions=INSTRUCTIONS, log_level="WARNING")
    parameters: dict[str, list[str]] = {}
    server.middleware.append(_UnknownArguments(parameters))
    config = facade.config

    def tool(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        """Register `fn` as a tool that reports NbError as a clear tool error and logs the call."""

        @functools.wraps(fn)
        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.monotonic()
            error: str | None = None
            try:
                return await fn(*args, **kwargs)
            except NbError as refused:
                error = str(refused)
                raise ToolError(error) from None
            except Exception as crash:
                error = f"internal error: {type(crash).__name__}: {crash}"
                facade.report_unhandled(crash, f"tool {fn.__name__}")
                raise ToolError(f"{error} (the event log has the traceback)") from None
            finally:
                emit(
                    "tool.completed",
                    f"{fn.__name__} " + ("ok" if error is None else f"failed: {error}"),
                    level="info" if error is None else "warning",
                    tool=fn.__name__,
                    ok=error is None,
                    duration_ms=round((time.monotonic() - started) * 1000, 2),
                    error=error,
                )

        server.add_tool(call, structured_output=False)
        parameters[fn.__name__] = list(inspect.signature(fn).parameters)
        return call

    async def run(fn: Callable[..., R], *args: Any) -> R:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args))

    @tool
    async def list_cells(path: Path_) -> str:
        """List a notebook's cells, one line each: index, id, type, execution count, first
        source line, and a short summary of the outputs."""
        return replies.listing(await run(facade.list_cells, path))

    @tool
    async def read_cell(path: Path_, index: Index = None, cell_id: CellId = None) -> list[Any]:
        """Read one cell: its source and its outputs (long text cut with a note; images
        attached as images)."""
        result = await run(facade.read_cell, path, index, cell_id)
        return replies.cell_read(result, config.max_reply_chars, config.max_image_bytes)

    @tool
    async def insert_cell(
        path: Path_,
        source: Annotated[str, Field(description="The cell's source text")] = "",
        cell_type: Annotated[str, Field(description="code, markdown or raw")] = "code",
        index: Annotated[
            int | None,
            Field(
                description="Position of the new cell; negative counts from the end "
                "(-1 appends). Default: append."
            ),
        ] = None,
        after_cell_id: Annotated[
            str | None, Field(description="Insert right after the cell with this id instead")
        ] = None,
    ) -> str:
        """Insert a new cell. Creates the notebook if the path does not exist yet."""
        result = await run(facade.insert_cell, path, cell_type, source, index, after_cell_id)
        return _edit_reply(result)

    @tool
    async def set_cell(
        path: Path_,
        index: Index = None,
        cell_id: CellId = None,
        source: Annotated[str | None, Field(description="New source (omit to keep it)")] = None,
        cell_type: Annotated[
            str | None, Field(description="New type: code, markdown or raw (omit to keep it)")
        ] = None,
    ) -> str:
        """Replace a cell's source and/or change its type (code ⇄ markdown ⇄ raw). The cell
        keeps its id."""
        result = await run(facade.set_cell, path, index, cell_id, source, cell_type)
        return _edit_reply(result)

    @tool
    async def delete_cell(path: Path_, index: Index = None, cell_id: CellId = None) -> str:
        """Delete one cell."""
        return _edit_reply(await run(facade.delete_cell, path, index, cell_id))

    @tool
    async def move_cell(
        path: Path_,
        to: Annotated[int, Field(description="The index the cell should have afterwards")],
        index: Index = None,
        cell_id: CellId = None,
    ) -> str:
        """Move one cell so that it ends up at index `to`."""
        return _edit_reply(await run(facade.move_cell, path, index, cell_id, to))

    @tool
    async def clear_outputs(
        path: Path_,
        index: Index = None,
        cell_id: CellId = None,
        all: Annotated[bool, Field(description="Clear every code cell's outputs")] = False,
    ) -> str:
        """Clear the outputs and execution count of one code cell, or of all (all=true)."""
        return _edit_reply(await run(facade.clear_outputs, path, index, cell_id, all))

    return server


class _UnknownArguments:
    """Refuse a tools/call naming an argument the tool does not take.

    pydantic would drop it silently; a misspelt `timeout` would then run a training cell under
    the default deadline, which is worse than an error the agent can fix at once.
    """

    def __init__(self, parameters: dict[str, list[str]]) -> None:
        self._parameters = parameters

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        if ctx.method == "tools/call" and ctx.params:
            name = ctx.params.get("name")
            arguments = ctx.params.get("arguments") or {}
            known = self._parameters.get(name) if isinstance(name, str) else None
            if known is not None and isinstance(arguments, dict):
                unknown = sorted(set(arguments) - set(known))
                if unknown:
                    text = (
                        f"{name} does not take {', '.join(map(repr, unknown))}; "
                        f"its arguments are: {', '.join(known)}"
                    )
                    emit(
                        "tool.completed",
                        f"{name} failed: {text}",
                        level="warning",
                        tool=name,
                        ok=False,
                        duration_ms=0.0,
                        error=text,
                    )
                    return CallToolResult(content=[replies.text(text)], is_error=True)
        return await call_next(ctx)


def _edit_reply(result: Any) -> str:
    if not result.written:
        raise NbError(replies.not_written(result))
    return replies.edited(result)


async def serve_stdio(facade: Facade) -> str:
    """Serve MCP on stdio until stdin closes or a signal arrives; return why it stopped."""
    server = build(facade)
    reason = "stdin closed"
    async with anyio.create_task_group() as group:

        async def watch_signals() -> None:
            nonlocal reason
            with anyio.open_signal_receiver(
                signal.SIGTERM, signal.SIGINT, signal.SIGHUP
            ) as signals:
                async for signum in signals:
                    reason = signal.Signals(signum).name
                    group.cancel_scope.cancel()
                    return

        group.start_soon(watch_signals)
        stdin = StdinLines() if StdinLines.usable() else None
        async with stdio_server(stdin=stdin) as (read_stream, write_stream):  # type: ignore[arg-type]
            # MCPServer.run_stdio_async() does exactly this, minus the stdin it cannot take.
            lowlevel = server._lowlevel_server
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
        group.cancel_scope.cancel()
    return reason
