"""Replacing a notebook file and looking at it again, with real files and real renames."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nb_mcp.actors import atomic, disk_sync


def identity(path: Path) -> atomic.Identity:
    return atomic.Identity.of(os.stat(path))


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".nbtmp"))


def test_a_replace_puts_the_bytes_in_place_keeps_the_mode_and_pins_the_file(tmp_path):
    path = tmp_path / "n.ipynb"
    path.write_text("old")
    path.chmod(0o640)
    done = atomic.replace(path, b"new", identity(path))
    try:
        assert path.read_bytes() == b"new" and (path.stat().st_mode & 0o777) == 0o640
        assert done.identity == identity(path)
        assert os.fstat(done.fd).st_ino == path.stat().st_ino  # the descriptor is on our file
        assert temp_files(tmp_path) == []
    finally:
        os.close(done.fd)


def test_a_replace_over_a_file_someone_saved_since_changes_nothing(tmp_path):
    path = tmp_path / "n.ipynb"
    path.write_text("ours")
    ours = identity(path)
    os.replace(_saved(tmp_path, "theirs"), path)
    with pytest.raises(atomic.ChangedMeanwhile) as raised:
        atomic.replace(path, b"new", ours)
    assert raised.value.displaced is None
    assert path.read_text() == "theirs" and temp_files(tmp_path) == []


def test_a_replace_over_a_deleted_file_does_not_create_it_again(tmp_path):
    path = tmp_path / "n.ipynb"
    path.write_text("ours")
    ours = identity(path)
    path.unlink()
    with pytest.raises(atomic.ChangedMeanwhile, match="deleted"):
        atomic.replace(path, b"new", ours)
    assert not path.exists() and temp_files(tmp_path) == []


def test_creating_a_file_never_replaces_one_that_appeared_meanwhile(tmp_path):
    path = tmp_path / "n.ipynb"
    done = atomic.replace(path, b"created", None)
    os.close(done.fd)
    assert path.read_text() == "created"
    with pytest.raises(atomic.ChangedMeanwhile, match="appeared"):
        atomic.replace(path, b"again", None)
    assert path.read_text() == "created" and temp_files(tmp_path) == []


def test_a_save_landing_between_the_look_and_the_swap_is_put_back_and_handed_over(
    tmp_path, monkeypatch
):
    path = tmp_path / "n.ipynb"
    path.write_text("ours, before")
    ours = identity(path)
    real = atomic._identity_at
    looks: list[bytes] = []

    def look_then_save(name: bytes, buffer):  # the save lands right after nb's first look
        found = real(name, buffer)
        looks.append(path.read_bytes())
        if len(looks) == 1:
            os.replace(_saved(tmp_path, "their save"), path)
        return found

    monkeypatch.setattr(atomic, "_identity_at", look_then_save)
    with pytest.raises(atomic.ChangedMeanwhile) as raised:
        atomic.replace(path, b"ours, new", ours)
    assert looks[1] == b"ours, new"  # for the moment between the swap and the swap back
    assert path.read_text() == "their save"
    displaced = raised.value.displaced
    assert displaced is not None
    data, seen = disk_sync.read_open(displaced, path)
    seen.close()
    assert data == b"their save" and temp_files(tmp_path) == []


def test_a_look_tells_unchanged_touched_changed_and_gone_apart(tmp_path):
    path = tmp_path / "n.ipynb"
    path.write_text("one")
    _, seen = disk_sync.read(path)
    assert disk_sync.look(path, seen) is disk_sync.UNCHANGED
    os.utime(path, ns=(1, 1))  # touched: same bytes
    touched = disk_sync.look(path, seen)
    assert isinstance(touched, disk_sync.Changed) and touched.same_bytes
    os.replace(_saved(tmp_path, "two"), path)
    changed = disk_sync.look(path, touched.seen)
    assert isinstance(changed, disk_sync.Changed) and changed.data == b"two"
    assert not changed.same_bytes
    path.unlink()
    assert disk_sync.look(path, changed.seen) is disk_sync.GONE
    assert disk_sync.look(path, None) is disk_sync.UNCHANGED  # none known, none there
    for each in (seen, touched.seen, changed.seen):
        each.close()


def test_the_file_last_seen_keeps_its_inode_so_a_new_save_never_passes_for_it(tmp_path):
    # ext4 hands a freed inode number to the next new file: without the open descriptor, a
    # save created right after ours was replaced could carry our inode (and, within one clock
    # tick, our mtime and size).
    path = tmp_path / "n.ipynb"
    path.write_text("ours")
    _, seen = disk_sync.read(path)
    pinned = seen.identity.inode
    path.unlink()
    for n in range(50):
        (tmp_path / f"new{n}").write_text("ours")
        assert (tmp_path / f"new{n}").stat().st_ino != pinned
    seen.close()


def _saved(folder: Path, text: str) -> Path:
    temp = folder / ".~n.ipynb"
    temp.write_text(text)
    return temp
