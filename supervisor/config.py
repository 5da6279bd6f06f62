"""Settings read from the environment: per daemon, and per session.

Every setting is an `NB_MCP_*` variable (and `NB_DAEMON_IDLE_SEC`); a bad value stops start-up
(or refuses the session) with a message naming the variable, because a typo silently falling
back to a default is worse for a long run than no run.

One daemon serves many clients, each with its own environment, so the settings come in two
kinds. Per-session settings (`SESSION_SETTINGS`) are read from each client's environment and
apply to that client's calls. Per-daemon settings (`DAEMON_SETTINGS`) shape what all sessions
share: where state and events go, how kernels are reached and limited, when the daemon stops.
A client whose per-daemon settings differ from the running daemon's is told so
(supervisor/session.py), never silently ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(ValueError):
    """An environment variable holds a value nb cannot use."""


@dataclass(frozen=True)
class Config:
    """A process's settings: the per-daemon ones, and its own per-session ones (which serve
    the in-process modes' one session; a daemon's sessions each bring their own)."""

    log_path: Path
    log_level: str
    log_max_bytes: int
    log_backups: int
    state_dir: Path
    block_for_sec: float
    max_block_for_sec: float
    default_timeout_sec: float
    progress_interval_sec: float
    flush_interval_sec: float
    max_reply_chars: int
    max_image_bytes: int
    kernel_start_timeout_sec: float
    roots: tuple[Path, ...]
    kernel_transport: str
    kernel_memory_mb: int
    kernel_cpu_sec: int
    task_ttl_sec: float = 3600.0
    idle_sec: float = 900.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Config:
        env = os.environ if env is None else env
        cwd = Path.cwd() if cwd is None else cwd
        session = SessionSettings.from_env(env, cwd)
        own = {f.name: getattr(session, f.name) for f in fields(session)}
        return cls(**daemon_values(env, cwd), **own)  # type: ignore[arg-type]

    def session_settings(self) -> SessionSettings:
        """This process's own per-session settings (the in-process modes' one session)."""
        return SessionSettings(**{f.name: getattr(self, f.name) for f in fields(SessionSettings)})

    def describe(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class SessionSettings:
    """The settings each client brings in its environment; they apply to its calls only."""

    block_for_sec: float
    max_block_for_sec: float
    default_timeout_sec: float
    progress_interval_sec: float
    max_reply_chars: int
    max_image_bytes: int
    kernel_start_timeout_sec: float
    roots: tuple[Path, ...]
    task_ttl_sec: float = 3600.0  # an MCP task's result is kept this long after its job ended

    @classmethod
    def from_env(cls, env: Mapping[str, str], cwd: Path) -> SessionSettings:
        reader = _Reader(env)
        return cls(
            block_for_sec=reader.number("NB_MCP_BLOCK_FOR_SEC", 10.0, minimum=0.0),
            max_block_for_sec=reader.number("NB_MCP_MAX_BLOCK_FOR_SEC", 30.0, minimum=0.0),
            default_timeout_sec=reader.number("NB_MCP_DEFAULT_TIMEOUT_SEC", 600.0, minimum=0.0),
            progress_interval_sec=reader.number("NB_MCP_PROGRESS_INTERVAL_SEC", 10.0, minimum=0.05),
            max_reply_chars=reader.integer("NB_MCP_MAX_REPLY_CHARS", 20_000, minimum=500),
            max_image_bytes=reader.integer("NB_MCP_MAX_IMAGE_BYTES", 1_000_000, minimum=1_000),
            kernel_start_timeout_sec=reader.number(
                "NB_MCP_KERNEL_START_TIMEOUT_SEC", 60.0, minimum=1.0
            ),
            roots=reader.paths("NB_MCP_ROOTS", cwd) or (cwd.resolve(),),
            task_ttl_sec=reader.number("NB_MCP_TASK_TTL_SEC", 3600.0, minimum=1.0),
        )


# Which variable sets which field, by kind. The README's configuration table says the same.
SESSION_SETTINGS = {
    "NB_MCP_BLOCK_FOR_SEC": "block_for_sec",
    "NB_MCP_MAX_BLOCK_FOR_SEC": "max_block_for_sec",
    "NB_MCP_DEFAULT_TIMEOUT_SEC": "default_timeout_sec",
    "NB_MCP_PROGRESS_INTERVAL_SEC": "progress_interval_sec",
    "NB_MCP_MAX_REPLY_CHARS": "max_reply_chars",
    "NB_MCP_MAX_IMAGE_BYTES": "max_image_bytes",
    "NB_MCP_KERNEL_START_TIMEOUT_SEC": "kernel_start_timeout_sec",
    "NB_MCP_ROOTS": "roots",
    "NB_MCP_TASK_TTL_SEC": "task_ttl_sec",
}
DAEMON_SETTINGS = {
    "NB_MCP_STATE_DIR": "state_dir",
    "NB_MCP_LOG_PATH": "log_path",
    "NB_MCP_LOG_LEVEL": "log_level",
    "NB_MCP_LOG_MAX_BYTES": "log_max_bytes",
    "NB_MCP_LOG_BACKUPS": "log_backups",
    "NB_MCP_FLUSH_INTERVAL_SEC": "flush_interval_sec",
    "NB_MCP_KERNEL_TRANSPORT": "kernel_transport",
    "NB_MCP_KERNEL_MEMORY_MB": "kernel_memory_mb",
    "NB_MCP_KERNEL_CPU_SEC": "kernel_cpu_sec",
    "NB_DAEMON_IDLE_SEC": "idle_sec",
}


def daemon_values(env: Mapping[str, str], cwd: Path) -> dict[str, object]:
    reader = _Reader(env)
    log_path = Path(env.get("NB_MCP_LOG_PATH") or ".nb_mcp.log").expanduser()
    return {
        "log_path": log_path if log_path.is_absolute() else cwd / log_path,
        "log_level": reader.choice("NB_MCP_LOG_LEVEL", "info", LEVELS),
        "log_max_bytes": reader.integer("NB_MCP_LOG_MAX_BYTES", 10_000_000, minimum=10_000),
        "log_backups": reader.integer("NB_MCP_LOG_BACKUPS", 3, minimum=1),
        "state_dir": default_state_dir(env),
        "flush_interval_sec": reader.number("NB_MCP_FLUSH_INTERVAL_SEC", 0.2, minimum=0.01),
        "kernel_transport": reader.choice("NB_MCP_KERNEL_TRANSPORT", "ipc", ("ipc", "tcp")),
        "kernel_memory_mb": reader.integer("NB_MCP_KERNEL_MEMORY_MB", 0, minimum=0),
        "kernel_cpu_sec": reader.integer("NB_MCP_KERNEL_CPU_SEC", 0, minimum=0),
        "idle_sec": reader.number("NB_DAEMON_IDLE_SEC", 900.0, minimum=0.0),
    }


def daemon_log_path(env: Mapping[str, str], cwd: Path, state_dir: Path) -> Path:
    """The daemon's event log: NB_MCP_LOG_PATH, else `events.log` in its state dir (one daemon
    serves many projects, so its log lives with it, not in one project)."""
    explicit = (env.get("NB_MCP_LOG_PATH") or "").strip()
    if not explicit:
        return state_dir / "events.log"
    path = Path(explicit).expanduser()
    return path if path.is_absolute() else cwd / path


def default_state_dir(env: Mapping[str, str]) -> Path:
    # Not platformdirs.user_state_path: it reads this process's environment, and the daemon
    # must work out a client's state dir from the environment that client sent (a differing
    # per-daemon setting is reported by comparing the two).
    explicit = env.get("NB_MCP_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser().absolute()
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser().absolute() / "nb"


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def _raw(self, name: str) -> str | None:
        value = self._env.get(name)
        return value.strip() if value is not None and value.strip() else None

    def number(self, name: str, default: float, *, minimum: float) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number") from None
        if not value >= minimum:
            raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
        return value

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number") from None
        if value < minimum:
            raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
        return value

    def paths(self, name: str, cwd: Path) -> tuple[Path, ...]:
        """A list of folders (os.pathsep-separated), resolved, each of which must exist."""
        raw = self._raw(name)
        if raw is None:
            return ()
        folders = []
        for part in (p for p in raw.split(os.pathsep) if p.strip()):
            folder = Path(part.strip()).expanduser()
            folder = (folder if folder.is_absolute() else cwd / folder).resolve()
            if not folder.is_dir():
                raise ConfigError(f"{name}: {part!r} is not an existing folder")
            folders.append(folder)
        return tuple(folders)

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() not in allowed:
            raise ConfigError(f"{name}={raw!r} must be one of {', '.join(allowed)}")
        return raw.lower()
