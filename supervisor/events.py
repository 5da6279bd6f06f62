"""The event log, for the fronts: they write their own events (a tool call completed, a front
connected) through the same LogActor as the tree, without naming an actor module."""

from __future__ import annotations

from nb_mcp.actors.log import emit, emit_written

__all__ = ["emit", "emit_written"]
