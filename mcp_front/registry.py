"""Registering tools: every call logged as `tool.completed`, refusals as clear tool errors."""

from __future__ import annotations

import functools
import inspect
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar
from urllib.parse import unquote, urlparse

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from nb_mcp.mcp_front import replies
from nb_mcp.supervisor.events import emit_written
from nb_mcp.supervisor.facade import Facade, NbError
from nb_mcp.supervisor.session import Session
from pydantic import Field

P = ParamSpec("P")
_ROOTS_TIMEOUT_SEC = 10.0
R = TypeVar("R")

NotebookPath = Annotated[
    str, Field(description="Path of the .ipynb file (relative to the server's folder)")
]
Index = Annotated[
    int | None, Field(description="Cell index, 0-based; negative counts from the end (-1 = last)")
]
CellId = Annotated[str | None, Field(description="Cell id (from list_cells); use instead of index")]


class Tools:
    """The server, the facade, the session, and the decorator that turns a coroutine into a
    tool. One Tools serves one session: its settings apply to every call."""

    def __init__(
        self, server: MCPServer, facade: Facade, session: Session, client_roots: bool = True
    ) -> None:
        self.server = server
        self.facade = facade
        self.session = session
        self.settings = session.settings
        # What the session's first reply must say (a per-daemon setting not applied, …).
        self._first_notices = list(session.notices)
        # One Tools serves one connection (a stdio session, a daemon front) when it asks the
        # client for roots, so the answer is kept here until the client says they changed.
        # The HTTP front shares one among its connections and never asks.
        self._client_roots = client_roots
        self._roots: list[Path] | None = None
        self._roots_asked = False
        self._parameters: dict[str, list[str]] = {}
        server.middleware.append(_UnknownArguments(self._parameters))
        server.middleware.append(self._forget_roots_on_change)

    async def scope(self, ctx: Context) -> Session:
        """The session, with where this caller's relative paths start and the folders it may
        touch.

        The roots are the client's, if it declares them and this connection can ask: asked
        once per session and kept until the client says they changed. Otherwise the server's
        own setting applies (NB_MCP_ROOTS, else its working directory): for clients that do not
        declare roots, and on 2026-07-28 connections, where roots are deprecated and the server
        has no back-channel to ask.
        """
        capabilities = ctx.client_capabilities
        if not self._client_roots or capabilities is None or capabilities.roots is None:
            return self.session
        if not self._roots_asked:
            self._roots, self._roots_asked = await _ask_roots(ctx), True
        roots = self._roots
        return self.session if not roots else replace(self.session, roots=tuple(roots))

    async def _forget_roots_on_change(
        self, ctx: ServerRequestContext[Any, Any], call_next: Any
    ) -> Any:
        if ctx.method == "notifications/roots/list_changed":
            self._roots_asked = False
        return await call_next(ctx)

    def tool(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        facade = self.facade

        @functools.wraps(fn)
        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.monotonic()
            error: str | None = None
            try:
                return self._with_first_notices(await fn(*args, **kwargs))
            except NbError as refused:
                error = str(refused)
                raise ToolError(replies.with_notices(error, self._take_first_notices())) from None
            except anyio.get_cancelled_exc_class():
                error = "cancelled by the client (only the wait ended; a job goes on)"
                raise
            except Exception as crash:
                error = f"internal error: {type(crash).__name__}: {crash}"
                facade.report_unhandled(crash, f"tool {fn.__name__}")
                raise ToolError(f"{error} (the event log has the traceback)") from None
            finally:
                # Written before the reply leaves: the log is FIFO, so every event this call
                # caused is on disk by then (a reader never sees the reply before the events).
                await emit_written(
                    "tool.completed",
                    f"{fn.__name__} " + ("ok" if error is None else f"failed: {error}"),
                    level="info" if error is None else "warning",
                    tool=fn.__name__,
                    ok=error is None,
                    duration_ms=round((time.monotonic() - started) * 1000, 2),
                    error=error,
                )

        self.server.add_tool(call, structured_output=False)
        self._parameters[fn.__name__] = [
            name for name in inspect.signature(fn).parameters if name != "ctx"
        ]
        return call

    def take_first_notices(self) -> list[str]:
        """The session's first-reply notices, which no later reply repeats."""
        return self._take_first_notices()

    def _take_first_notices(self) -> list[str]:
        notices, self._first_notices = self._first_notices, []
        return notices

    def _with_first_notices(self, result: Any) -> Any:
        """The reply, carrying the session's notices if it is the session's first."""
        if not self._first_notices:
            return result
        notices = self._take_first_notices()
        if isinstance(result, str):
            return replies.with_notices(result, notices)
        if isinstance(result, list):
            for position, content in enumerate(result):
                if isinstance(content, TextContent):
                    updated = replies.with_notices(content.text, notices)
                    return [*result[:position], replies.text(updated), *result[position + 1 :]]
            return [replies.text(replies.with_notices("", notices).lstrip("\n")), *result]
        return result

    @staticmethod
    async def run(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Call a blocking facade method in a worker thread."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


async def _ask_roots(ctx: Context) -> list[Path] | None:
    try:
        # The deprecation warning fires when the call is made; the filter is process-wide,
        # so it must not stay in place across the await while other calls run.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # roots are deprecated in 2026-07-28, not here
            asking = ctx.session.list_roots()
        with anyio.fail_after(_ROOTS_TIMEOUT_SEC):
            result = await asking
    except Exception:
        # No back-channel on this connection, or a client that does not answer: the server's
        # own setting applies.
        return None
    folders = []
    for root in result.roots:
        uri = urlparse(str(root.uri))
        if uri.scheme == "file":
            folders.append(Path(unquote(uri.path)).resolve())
    return folders or None


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
                    await emit_written(  # in the log before the refusal leaves, as for any call
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
