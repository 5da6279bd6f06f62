"""A session: what one client brings with it, and what every kernel, job and reply it causes is
bound to.

A daemon front (`nb mcp`) sends its client's working folder, roots and whole environment in
its hello; the daemon builds that connection's session from them. The in-process modes
(`nb mcp --in-process`, `nb run`) build their one session from their own process, and the HTTP
front builds one from the daemon's environment and NB_MCP_ROOTS.

The environment can hold secrets: it goes into kernels' environments and nowhere else (never
into an event, a reply or a repr).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb_mcp.actors.log import emit
from nb_mcp.supervisor.config import (
    DAEMON_SETTINGS,
    Config,
    ConfigError,
    SessionSettings,
    daemon_log_path,
    daemon_values,
)
from nb_mcp.supervisor.paths import Scope


@dataclass(frozen=True, kw_only=True)
class Session(Scope):
    """A Scope (where relative paths start, what may be touched) with the client around it."""

    id: str
    origin: str  # "front" (a daemon's `nb mcp`), "in-process", "http", "run"
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    settings: SessionSettings
    notices: tuple[str, ...] = ()  # for the session's first tool reply
    differing: tuple[str, ...] = ()  # per-daemon settings it would set otherwise (names only)


class SessionRefused(ValueError):
    """A hello the daemon cannot build a session from; the message is for the user."""


def new_id() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


def of_process(config: Config, cwd: Path, origin: str = "in-process") -> Session:
    """The one session of a process that serves its own client (its own environment)."""
    return Session(
        cwd.resolve(),
        config.roots,
        id=new_id(),
        origin=origin,
        env=dict(os.environ),
        settings=config.session_settings(),
    )


def for_http(config: Config) -> Session:
    """Remote agents have no folder or environment here: the daemon's own, and its roots."""
    return of_process(config, config.roots[0], origin="http")


def from_hello(hello: Mapping[str, Any], daemon: Config, daemon_pid: int) -> Session:
    """The session a front's hello describes; raise SessionRefused on a bad hello or setting."""
    env = hello.get("env")
    if not isinstance(hello.get("cwd"), str) or not isinstance(env, dict):
        raise SessionRefused("bad hello: it must carry the client's folder and environment")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise SessionRefused("bad hello: environment variables must be strings")
    cwd = Path(hello["cwd"]).resolve()
    try:
        settings = SessionSettings.from_env(env, cwd)
        mismatches = daemon_mismatches(daemon, env, cwd)
    except ConfigError as error:
        raise SessionRefused(
            f"{error} (in the environment of the client that runs nb mcp)"
        ) from None
    try:
        given = tuple(Path(root).resolve() for root in hello.get("roots") or [])
    except (TypeError, ValueError):
        raise SessionRefused("bad hello: roots must be folder paths") from None
    notice = mismatch_notice(mismatches, daemon_pid)
    return Session(
        cwd,
        given or settings.roots,
        id=new_id(),
        origin="front",
        env=dict(env),
        settings=settings,
        notices=(notice,) if notice else (),
        differing=tuple(m.variable for m in mismatches),
    )


@dataclass(frozen=True)
class Mismatch:
    """A per-daemon setting whose value in a client's environment is not the daemon's."""

    variable: str
    daemon_value: str
    client_value: str


def daemon_mismatches(daemon: Config, env: Mapping[str, str], cwd: Path) -> list[Mismatch]:
    """The per-daemon settings this environment would set otherwise than the daemon has."""
    wanted = daemon_values(env, cwd)
    wanted["log_path"] = daemon_log_path(env, cwd, Path(str(wanted["state_dir"])))
    found = []
    for variable, name in DAEMON_SETTINGS.items():
        ours, theirs = wanted[name], getattr(daemon, name)
        if ours != theirs:
            found.append(Mismatch(variable, _shown(theirs), _shown(ours)))
    return found


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def mismatch_notice(mismatches: list[Mismatch], daemon_pid: int) -> str:
    """One line: which settings are not applied, the daemon's values, and how to apply them."""
    if not mismatches:
        return ""
    listed = "; ".join(
        f"{m.variable} (daemon: {m.daemon_value}, this client: {m.client_value})"
        for m in mismatches
    )
    return (
        f"per-daemon settings of this client are not applied, the running nb daemon (pid "
        f"{daemon_pid}) keeps its own: {listed}. To apply them, run `nb stop` (running jobs "
        "are interrupted and marked; the next nb mcp starts a daemon with this client's "
        "settings), or give this project a daemon of its own with a separate NB_MCP_STATE_DIR"
    )


def opened(session: Session) -> None:
    emit(
        "session.opened",
        f"session {session.id} ({session.origin}) opened in {session.cwd}",
        session_id=session.id,
        origin=session.origin,
        cwd=str(session.cwd),
        roots=[str(root) for root in session.roots],
        differing=list(session.differing),
    )


def closed(session: Session) -> None:
    emit(
        "session.closed",
        f"session {session.id} ({session.origin}) in {session.cwd} closed; its jobs go on",
        session_id=session.id,
        origin=session.origin,
        cwd=str(session.cwd),
    )
