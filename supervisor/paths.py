"""Which paths the tools accept as notebooks, and the one canonical form each is known by."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Scope:
    """Whose request this is: relative paths start at `cwd`; only `roots` may be touched."""

    cwd: Path
    roots: tuple[Path, ...]


class PathError(ValueError):
    """A path argument that cannot name a notebook; the message is written for the agent."""


def notebook_path(raw: str, cwd: Path, roots: Sequence[Path] = ()) -> Path:
    """The absolute, symlink-resolved path of a `.ipynb` file (relative paths: from `cwd`).

    With `roots`, the resolved path must lie under one of them: `../` and symlinks pointing
    outside are refused after resolution, not by looking at the string.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise PathError("path is empty: give the notebook's path, e.g. 'analysis.ipynb'")
    if "\x00" in raw:
        raise PathError("the path holds a NUL character; no file can have that name")
    given = Path(raw).expanduser()
    absolute = given if given.is_absolute() else cwd / given
    if absolute.suffix != ".ipynb":
        raise PathError(f"{raw!r} is not a notebook path: it must end in .ipynb")
    try:
        return _checked(raw, absolute.resolve(), roots)
    except OSError as error:  # a name too long, a loop of links, …
        raise PathError(f"{raw!r} cannot be used as a path: {error.strerror}") from None


def _checked(raw: str, resolved: Path, roots: Sequence[Path]) -> Path:
    if roots and not any(resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise PathError(
            f"{raw!r} resolves to {resolved}, outside the folders nb may touch ({allowed}); "
            "the MCP client's roots or NB_MCP_ROOTS set them"
        )
    if resolved.is_dir():
        raise PathError(f"{raw!r} is a directory, not a notebook")
    if resolved.suffix != ".ipynb":
        raise PathError(f"{raw!r} is a link to {str(resolved)!r}, which is not a .ipynb file")
    if not resolved.parent.is_dir():
        raise PathError(f"the folder of {raw!r} does not exist ({resolved.parent})")
    return resolved


def within(path: Path, roots: Sequence[Path]) -> bool:
    resolved = path.expanduser().resolve()
    return any(resolved.is_relative_to(root) for root in roots)
