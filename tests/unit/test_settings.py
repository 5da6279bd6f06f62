"""Settings per session and per daemon: each variable classified once, documented with its
kind, read from a client's environment, and a differing per-daemon value announced."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from nb_mcp.supervisor import session as sessions
from nb_mcp.supervisor.config import (
    DAEMON_SETTINGS,
    SESSION_SETTINGS,
    Config,
    SessionSettings,
    daemon_log_path,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_nb_reads_is_classified_once_and_documented_with_its_kind():
    source = (ROOT / "supervisor" / "config.py").read_text()
    read = set(re.findall(r'"((?:NB_MCP|NB_DAEMON)_[A-Z_]+)"', source))
    assert read == set(SESSION_SETTINGS) | set(DAEMON_SETTINGS)
    assert not set(SESSION_SETTINGS) & set(DAEMON_SETTINGS)
    readme = (ROOT / "README.md").read_text()
    table = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^\| `([A-Z_]+)` \| ([a-z-]+) \|", readme, re.MULTILINE)
    }
    assert table == {name: "per-session" for name in SESSION_SETTINGS} | {
        name: "per-daemon" for name in DAEMON_SETTINGS
    }


def test_a_clients_settings_are_read_from_its_own_environment(tmp_path):
    (tmp_path / "sub").mkdir()
    settings = SessionSettings.from_env(
        {"NB_MCP_DEFAULT_TIMEOUT_SEC": "3", "NB_MCP_ROOTS": "sub"}, tmp_path
    )
    assert settings.default_timeout_sec == 3.0 and settings.roots == ((tmp_path / "sub"),)
    assert SessionSettings.from_env({}, tmp_path).default_timeout_sec == 600.0


def daemon(tmp_path: Path, **env: str) -> Config:
    base = {"NB_MCP_STATE_DIR": str(tmp_path / "state")} | env
    config = Config.from_env(base, tmp_path)
    return replace(config, log_path=daemon_log_path(base, tmp_path, config.state_dir))


def hello(tmp_path: Path, **env: str) -> dict:
    full = {"NB_MCP_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin"} | env
    return {"nb": "hello", "cwd": str(tmp_path), "roots": [], "env": full}


def test_a_client_whose_per_daemon_settings_match_gets_no_notice(tmp_path):
    session = sessions.from_hello(hello(tmp_path), daemon(tmp_path), 4242)
    assert session.notices == () and session.differing == ()
    assert session.env["PATH"] == "/usr/bin"
    assert "/usr/bin" not in repr(session)  # the environment is never in a repr


def test_a_differing_per_daemon_setting_names_the_daemons_value_and_how_to_apply_it(tmp_path):
    running = daemon(tmp_path, NB_MCP_KERNEL_MEMORY_MB="512")
    session = sessions.from_hello(
        hello(tmp_path, NB_MCP_LOG_PATH="mine.log", NB_DAEMON_IDLE_SEC="60"), running, 4242
    )
    assert session.differing == ("NB_MCP_LOG_PATH", "NB_MCP_KERNEL_MEMORY_MB", "NB_DAEMON_IDLE_SEC")
    (notice,) = session.notices
    assert "\n" not in notice
    assert f"NB_MCP_LOG_PATH (daemon: {tmp_path / 'state' / 'events.log'}, this client: " in notice
    assert f"this client: {tmp_path / 'mine.log'})" in notice
    assert "NB_MCP_KERNEL_MEMORY_MB (daemon: 512, this client: 0)" in notice
    assert "NB_DAEMON_IDLE_SEC (daemon: 900, this client: 60)" in notice
    assert "(pid 4242)" in notice and "`nb stop`" in notice and "NB_MCP_STATE_DIR" in notice


def test_a_bad_value_in_a_clients_environment_refuses_that_session_naming_it(tmp_path):
    with pytest.raises(sessions.SessionRefused, match=r"NB_MCP_BLOCK_FOR_SEC='soon' is not a"):
        sessions.from_hello(hello(tmp_path, NB_MCP_BLOCK_FOR_SEC="soon"), daemon(tmp_path), 1)
    with pytest.raises(sessions.SessionRefused, match="NB_MCP_KERNEL_TRANSPORT='udp'"):
        sessions.from_hello(hello(tmp_path, NB_MCP_KERNEL_TRANSPORT="udp"), daemon(tmp_path), 1)
    with pytest.raises(sessions.SessionRefused, match="bad hello"):
        sessions.from_hello({"nb": "hello", "cwd": str(tmp_path)}, daemon(tmp_path), 1)
