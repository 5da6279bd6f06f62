"""The read and edit tools."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from nb_mcp.mcp_front import replies
from nb_mcp.mcp_front.registry import CellId, Index, NotebookPath, Tools
from nb_mcp.supervisor.facade import Edited, NbError
from pydantic import Field


def register(tools: Tools) -> None:
    facade, settings, run = tools.facade, tools.settings, tools.run

    @tools.tool
    async def list_cells(ctx: Context, path: NotebookPath) -> str:
        """List a notebook's cells, one line each: index, id, type, execution count, first
        source line, and a short summary of the outputs."""
        return replies.listing(await run(facade.list_cells, path, await tools.scope(ctx)))

    @tools.tool
    async def read_cell(
        ctx: Context, path: NotebookPath, index: Index = None, cell_id: CellId = None
    ) -> list[Any]:
        """Read one cell: its source and its outputs (long text cut with a note; images
        attached as images)."""
        result = await run(facade.read_cell, path, index, cell_id, await tools.scope(ctx))
        return replies.cell_read(result, settings.max_reply_chars, settings.max_image_bytes)

    @tools.tool
    async def insert_cell(
        ctx: Context,
        path: NotebookPath,
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
        return edit_reply(
            await run(
                facade.insert_cell,
                path,
                cell_type,
                source,
                index,
                after_cell_id,
                await tools.scope(ctx),
            )
        )

    @tools.tool
    async def set_cell(
        ctx: Context,
        path: NotebookPath,
        index: Index = None,
        cell_id: CellId = None,
        source: Annotated[str | None, Field(description="New source (omit to keep it)")] = None,
        cell_type: Annotated[
            str | None, Field(description="New type: code, markdown or raw (omit to keep it)")
        ] = None,
    ) -> str:
        """Replace a cell's source and/or change its type (code ⇄ markdown ⇄ raw). The cell
        keeps its id."""
        scope = await tools.scope(ctx)
        return edit_reply(
            await run(facade.set_cell, path, index, cell_id, source, cell_type, scope)
        )

    @tools.tool
    async def delete_cell(
        ctx: Context, path: NotebookPath, index: Index = None, cell_id: CellId = None
    ) -> str:
        """Delete one cell."""
        scope = await tools.scope(ctx)
        return edit_reply(await run(facade.delete_cell, path, index, cell_id, scope))

    @tools.tool
    async def move_cell(
        ctx: Context,
        path: NotebookPath,
        to: Annotated[int, Field(description="The index the cell should have afterwards")],
        index: Index = None,
        cell_id: CellId = None,
    ) -> str:
        """Move one cell so that it ends up at index `to`."""
        scope = await tools.scope(ctx)
        return edit_reply(await run(facade.move_cell, path, index, cell_id, to, scope))

    @tools.tool
    async def clear_outputs(
        ctx: Context,
        path: NotebookPath,
        index: Index = None,
        cell_id: CellId = None,
        all: Annotated[bool, Field(description="Clear every code cell's outputs")] = False,
    ) -> str:
        """Clear the outputs and execution count of one code cell, or of all (all=true)."""
        scope = await tools.scope(ctx)
        return edit_reply(await run(facade.clear_outputs, path, index, cell_id, all, scope))


def edit_reply(result: Edited) -> str:
    if not result.written:
        raise NbError(replies.not_written(result))
    return replies.edited(result)
