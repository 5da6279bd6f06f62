"""A state dir too deep for a Unix socket path: the daemon's socket and the kernels' ipc
sockets move to one short folder only this user can enter, and every path fits."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from nb_mcp.actors.backend import socket_base
from nb_mcp.supervisor import statedir


def test_a_deep_state_dir_puts_every_socket_in_one_short_private_folder(tmp_path: Path) -> None:
    deep = tmp_path / ("a-folder-with-a-long-name-" * 5) / "state"
    daemon = statedir.daemon_socket(deep)
    kernel = socket_base(deep, "0123abcd")

    assert daemon.parent == kernel.parent
    assert not daemon.is_relative_to(deep)
    assert len(f"{kernel}-65535") <= 107 and len(str(daemon)) <= 107
    for folder in (daemon.parent, daemon.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert folder.stat().st_uid == os.getuid()
    other = tmp_path / ("another-long-folder-name-" * 5) / "state"
    assert statedir.daemon_socket(other).parent != daemon.parent  # one folder per state dir


def test_a_shallow_state_dir_keeps_its_sockets(tmp_path: Path) -> None:
    assert statedir.daemon_socket(tmp_path) == tmp_path / "daemon.sock"
    assert socket_base(tmp_path, "k1") == tmp_path / "runtime" / "kernel-k1-ipc"
