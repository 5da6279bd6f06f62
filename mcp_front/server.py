"""`nb mcp`: the MCP server over stdio, a thin layer of tools over the supervisor's facade."""

from __future__ import annotations

import signal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from nb_mcp.mcp_front import edit_tools, exec_tools, kernel_tools
from nb_mcp.mcp_front.registry import Tools
from nb_mcp.mcp_front.stdio import StdinLines
from nb_mcp.mcp_front.tasks_extension import TasksExtension
from nb_mcp.supervisor import session as sessions
from nb_mcp.supervisor.facade import VERSION, Facade
from nb_mcp.supervisor.session import Session

INSTRUCTIONS = """\
nb reads, edits and runs Jupyter notebooks. Cells are addressed by `index` (0-based, negative
counts from the end) or by `cell_id` (stable across edits; list_cells shows them). Every edit is
written to the .ipynb at once, so a person watching it in JupyterLab or VS Code sees it.
"""


def build(facade: Facade, session: Session, client_roots: bool = True) -> MCPServer:
    """The tools for one session; `client_roots=False` ignores the roots a client declares."""
    # WARNING: the SDK's INFO lines (every refused call) would flood the client's stderr log;
    # nb's own event log says what happened.
    tasks = TasksExtension(facade, session)
    server = MCPServer(
        "nb",
        version=VERSION,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
        extensions=[tasks],
    )
    tools = Tools(server, facade, session, client_roots)
    edit_tools.register(tools)
    exec_tools.register(tools, tasks)
    kernel_tools.register(tools)
    return server


async def serve_stdio(facade: Facade) -> str:
    """Serve MCP on stdio until stdin closes or a signal arrives; return why it stopped."""
    session = facade.default_scope
    server = build(facade, session)
    reason = "stdin closed"
    sessions.opened(session)
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
    sessions.closed(session)
    return reason
