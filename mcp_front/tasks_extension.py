"""The MCP tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) for nb's exec tools.

On a 2026-07-28 request whose client capabilities declare the extension, an exec tool whose
job is still running after its grace answers with a task (`resultType: "task"`) instead of
the Monitor command; `tasks/get` gives live progress in `statusMessage` and, once the job
ended, exactly the result the exec call would have given; `tasks/cancel` stops that job only.
Every other client (2025-11-25, or 2026 without the extension) is unchanged: `tasks/*` are
method-not-found on 2025 connections and the extension's missing-capability error (-32021)
on 2026 ones, as the draft says; `params.task` of the 2025 experimental design is ignored.

The wire names and error codes follow the extension's draft schema (schema/draft/schema.ts of
modelcontextprotocol/ext-tasks) and live here only. The SDK (2.3.0) has the hooks but no tasks
implementation; this module is the one to swap for the SDK's own when it ships. The tasks
themselves are the daemon's (supervisor/task_registry.py), shared by every front.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver.server import require_client_extension
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolRequestParams, CallToolResult, RequestParams
from mcp_types.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from nb_mcp.mcp_front import job_replies
from nb_mcp.mcp_front.replies import text
from nb_mcp.supervisor.facade import Facade, NbError
from nb_mcp.supervisor.paths import within
from nb_mcp.supervisor.results import CellState
from nb_mcp.supervisor.session import Session
from nb_mcp.supervisor.task_registry import CANCELLED, COMPLETED, FAILED, WORKING, Render, Task
from pydantic import Field

EXTENSION_ID = "io.modelcontextprotocol/tasks"
# The tools whose jobs may outlive a call: they keep their grace (block_for), then a task.
TASK_TOOLS = frozenset({"exec_cell", "exec_range", "exec_all", "insert_and_exec", "run_scratch"})
POLL_INTERVAL_MS = 2000
_MODERN = frozenset(MODERN_PROTOCOL_VERSIONS)


class TaskParams(RequestParams):
    """`tasks/get` and `tasks/cancel` params."""

    task_id: str = Field(alias="taskId")


class UpdateTaskParams(TaskParams):
    """`tasks/update` params: nb never asks for input, so there is nothing to answer."""

    input_responses: dict[str, Any] = Field(default_factory=dict, alias="inputResponses")


@dataclass
class _Slot:
    """Where an exec tool, called with tasks offered, leaves the task it made."""

    task: Task | None = None


_SLOT: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("nb_task_slot", default=None)


def offered() -> bool:
    """Whether the tool call being served may be answered with a task."""
    return _SLOT.get() is not None


def answer_with(task: Task) -> None:
    """Answer the tool call being served with this task (its own reply is dropped)."""
    slot = _SLOT.get()
    if slot is not None:
        slot.task = task


@contextmanager
def _offering() -> Iterator[_Slot]:
    slot = _Slot()
    token = _SLOT.set(slot)
    try:
        yield slot
    finally:
        _SLOT.reset(token)


def call_tool_result(content: list[Any] | str) -> dict[str, Any]:
    """A tool's return value as the CallToolResult an MCP client gets for it (wire form)."""
    blocks = [text(content)] if isinstance(content, str) else list(content)
    result = CallToolResult(content=blocks, is_error=False)
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


class TasksExtension(Extension):
    identifier = EXTENSION_ID

    def __init__(self, facade: Facade, session: Session) -> None:
        self._facade = facade
        self._session = session

    def methods(self) -> list[MethodBinding]:
        def binding(method: str, params: type[RequestParams], handler: Any) -> MethodBinding:
            # 2025-11-25 connections: method-not-found (their own experimental tasks differ).
            return MethodBinding(method, params, handler, protocol_versions=_MODERN)

        return [
            binding("tasks/get", TaskParams, self._get),
            binding("tasks/cancel", TaskParams, self._cancel),
            binding("tasks/update", UpdateTaskParams, self._update),
        ]

    async def intercept_tool_call(
        self,
        params: CallToolRequestParams,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
    ) -> HandlerResult:
        if params.name not in TASK_TOOLS or not _declared(ctx):
            return await call_next(ctx)
        with _offering() as slot:
            result = await call_next(ctx)
        if slot.task is None:
            return result
        return {"resultType": "task", **await self._task_fields(slot.task)}

    def create(self, job_id: str, done: Any, render: Render, tool: str, notebook: Any) -> Task:
        """A task for this job, known to every front before the reply leaves."""
        return self._facade.tasks.create(
            job_id, notebook, done, render, self._session.settings.task_ttl_sec, tool
        )

    # ------------------------------------------------------------ tasks/*

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict:
        task = self._find(ctx, params.task_id, "retrieve")
        fields = await self._task_fields(task)
        if fields["status"] == COMPLETED:
            fields["result"] = task.result
        elif fields["status"] == FAILED:
            fields["error"] = {"code": INTERNAL_ERROR, "message": task.failure}
        return {"resultType": "complete", **fields}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict:
        task = self._find(ctx, params.task_id, "cancel")
        if task.outcome == WORKING and not task.cancel_reason:
            reason = "cancelled by the MCP client (tasks/cancel)"
            self._facade.tasks.cancel_requested(task, reason)
            # NbError: the facade no longer knows the job: it ended, and the task says how.
            with contextlib.suppress(NbError):
                await anyio.to_thread.run_sync(self._facade.cancel_job, task.job_id, None, reason)
        return {"resultType": "complete"}

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams) -> dict:
        self._find(ctx, params.task_id, "update")
        return {"resultType": "complete"}  # nb's tasks never wait for input: nothing to apply

    def _find(self, ctx: ServerRequestContext[Any, Any], task_id: str, doing: str) -> Task:
        require_client_extension(ctx, EXTENSION_ID)
        task = self._facade.tasks.get(task_id)
        # A task on a notebook outside this session's roots is as unknown as none at all.
        if task is None or not within(task.notebook, self._session.roots):
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Failed to {doing} task: Task not found (unknown, or expired "
                "NB_MCP_TASK_TTL_SEC after its job ended)",
            )
        return task

    async def _task_fields(self, task: Task) -> dict[str, Any]:
        """The Task fields (draft schema `Task`) as they stand now."""
        outcome = task.outcome
        if outcome == WORKING:
            status, message, moved = WORKING, *await self._progress(task)
        else:
            status, moved = outcome, task.ended_at or task.created_at
            message = _ended_message(task)
        fields: dict[str, Any] = {
            "taskId": task.task_id,
            "status": status,
            "statusMessage": message,
            "createdAt": _iso(task.created_at),
            "lastUpdatedAt": _iso(max(task.created_at, moved)),
            "ttlMs": task.ttl_ms() if status != WORKING else None,
        }
        if status == WORKING:
            fields["pollIntervalMs"] = POLL_INTERVAL_MS
        return fields

    async def _progress(self, task: Task) -> tuple[str, float]:
        """The live progress line of a working task, and when its job last moved."""
        if task.done.done():
            snapshot = task.done.result()
            return f"the job ended ({snapshot.state}); its result is being prepared", _moved(
                snapshot
            )
        try:
            snapshot = await anyio.to_thread.run_sync(self._facade.job, task.job_id)
        except NbError:
            return "running", task.created_at
        line = job_replies.describe_progress(snapshot)
        if task.cancel_reason:
            line = f"cancelling ({task.cancel_reason}); {line}"
        return line, _moved(snapshot)


def _declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    if ctx.protocol_version not in _MODERN:
        return False
    capabilities = ctx.session.client_capabilities
    extensions = capabilities.extensions if capabilities is not None else None
    return bool(extensions) and EXTENSION_ID in extensions


def _ended_message(task: Task) -> str:
    snapshot = task.final
    if task.outcome == CANCELLED:
        return f"cancelled: {snapshot.reason if snapshot and snapshot.reason else 'by request'}"
    if task.outcome == FAILED:
        return task.failure
    if snapshot is None:
        return "finished"
    done = sum(1 for cell in snapshot.cells if cell.state is CellState.OK)
    return f"job {snapshot.job_id} {snapshot.state}: {done}/{len(snapshot.cells)} cells ok" + (
        f"; {snapshot.reason}" if snapshot.reason else ""
    )


def _moved(snapshot: Any) -> float:
    """When the job last changed: submitted, started, a cell began, printed or ended."""
    times = [snapshot.submitted_at, snapshot.started_at, snapshot.finished_at]
    for cell in snapshot.cells:
        times += [cell.started_at, cell.last_output_at]
        if cell.started_at is not None and cell.duration is not None:
            times.append(cell.started_at + cell.duration)
    return max(t for t in times if t is not None)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
