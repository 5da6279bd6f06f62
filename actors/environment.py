"""Which kernel runs a notebook: the rules, in order, over plain paths. No actors, no processes.

The inputs are what the session and the notebook say: the tool's `kernel_name`, the notebook's
metadata, its path, the session's roots, environment and home. The output is a `KernelChoice`
saying what to start and which rule chose it, in words. In order:

1. the tool's `kernel_name` (a kernelspec name, or the path of a Python environment);
2. the kernelspec named in the notebook's metadata, when it is not the generic `python3`;
3. the choice nb remembered in the notebook's metadata (`metadata.nb`), if that environment
   still exists: so a new daemon, or a client with another `VIRTUAL_ENV`, picks the same one;
4. for Python notebooks, the nearest `.venv/` or `venv/` (a folder with `pyvenv.cfg`) walking
   up from the notebook's folder, not above the session's root nor above the home folder;
5. the session's `VIRTUAL_ENV`, then its `CONDA_PREFIX`;
6. the default `python3` kernelspec.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

GENERIC_KERNELSPECS = frozenset({"python3", "python"})
DEFAULT_KERNELSPEC = "python3"
PROJECT_ENV_FOLDERS = (".venv", "venv")


class ChoiceError(ValueError):
    """A `kernel_name` that names nothing nb can start; the message is for the agent."""


@dataclass(frozen=True)
class PythonEnv:
    """A Python environment on disk: a venv (`pyvenv.cfg`) or a conda env (`conda-meta/`)."""

    prefix: Path
    kind: str  # "venv" or "conda"

    @property
    def interpreter(self) -> Path:
        return self.prefix / "bin" / "python"

    def version(self) -> str | None:
        """The Python version ("3.12"), read from the environment's files, never by running it."""
        if self.kind == "venv":
            try:
                config = (self.prefix / "pyvenv.cfg").read_text(errors="replace")
            except OSError:
                config = ""
            found = re.search(r"^\s*version(?:_info)?\s*=\s*(\d+\.\d+)", config, re.MULTILINE)
            if found:
                return found.group(1)
        for meta in sorted((self.prefix / "conda-meta").glob("python-3*.json")):
            found = re.match(r"python-(\d+\.\d+)", meta.name)
            if found:
                return found.group(1)
        for lib in sorted((self.prefix / "lib").glob("python3.*")):
            return lib.name.removeprefix("python")
        return None

    def display_name(self) -> str:
        """What JupyterLab and VS Code show: "Python 3.12 (analysis/.venv)"."""
        where = self.prefix.name
        if where in PROJECT_ENV_FOLDERS and self.prefix.parent.name:
            where = f"{self.prefix.parent.name}/{where}"
        version = self.version()
        return f"Python {version} ({where})" if version else f"Python ({where})"


def python_env(folder: Path) -> PythonEnv | None:
    """The environment rooted at `folder`, or None if it is not one."""
    try:
        if (folder / "pyvenv.cfg").is_file():
            return PythonEnv(folder, "venv")
        if (folder / "conda-meta").is_dir():
            return PythonEnv(folder, "conda")
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class KernelChoice:
    """What to start for a notebook: a kernelspec, or a Python environment's interpreter."""

    kernelspec: str | None = None
    environment: Path | None = None
    kind: str = ""  # for an environment: "venv" or "conda"
    display_name: str = ""
    language: str = "python"
    rule: str = ""
    explicit: bool = False  # named by a call (now or earlier), not found by the rules
    # Advice for the agent when the rules fell back on a default that is likely not what the
    # project wants (a venv lies just outside the session's root): said in the exec reply.
    hint: str = ""

    @property
    def label(self) -> str:
        """One word for it: the kernelspec's name, or the environment's path."""
        return str(self.environment) if self.environment is not None else str(self.kernelspec)

    @property
    def interpreter(self) -> Path | None:
        return None if self.environment is None else self.environment / "bin" / "python"

    def describe(self) -> str:
        if self.environment is not None:
            return f"the {self.kind} {self.environment} ({self.display_name})"
        return f"the kernelspec {self.kernelspec}" + (
            f" ({self.display_name})" if self.display_name else ""
        )

    def same_kernel(self, other: KernelChoice | None) -> bool:
        return other is not None and other.label == self.label

    def to_record(self) -> dict[str, Any]:
        return {
            "kernelspec": self.kernelspec,
            "environment": None if self.environment is None else str(self.environment),
            "kind": self.kind,
            "display_name": self.display_name,
            "language": self.language,
            "rule": self.rule,
            "explicit": self.explicit,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], fallback_name: str) -> KernelChoice:
        environment = record.get("environment")
        return cls(
            kernelspec=record.get("kernelspec") or (None if environment else fallback_name),
            environment=Path(environment) if environment else None,
            kind=str(record.get("kind") or ""),
            display_name=str(record.get("display_name") or ""),
            language=str(record.get("language") or "python"),
            rule=str(record.get("rule") or ""),
            explicit=bool(record.get("explicit")),
        )


@dataclass(frozen=True)
class KernelMetadata:
    """What a notebook's metadata says about its kernel (read by the writer, decided here)."""

    kernelspec_name: str | None = None
    display_name: str | None = None
    language: str | None = None
    environment: str | None = None  # metadata.nb.environment
    remembered_kernelspec: str | None = None  # metadata.nb.kernelspec
    rule: str | None = None  # metadata.nb.kernel_rule

    @classmethod
    def of(cls, metadata: Mapping[str, Any]) -> KernelMetadata:
        spec = metadata.get("kernelspec")
        spec = spec if isinstance(spec, Mapping) else {}
        ours = metadata.get("nb")
        ours = ours if isinstance(ours, Mapping) else {}
        info = metadata.get("language_info")
        info = info if isinstance(info, Mapping) else {}
        return cls(
            kernelspec_name=_text(spec.get("name")),
            display_name=_text(spec.get("display_name")),
            language=_text(spec.get("language")) or _text(info.get("name")),
            environment=_text(ours.get("environment")),
            remembered_kernelspec=_text(ours.get("kernelspec")),
            rule=_text(ours.get("kernel_rule")),
        )

    def matches(self, choice: KernelChoice) -> bool:
        """Whether the metadata already says what writing `choice` would say."""
        kernelspec, ours = metadata_for(choice)
        return (
            self.kernelspec_name == kernelspec["name"]
            and self.display_name == kernelspec["display_name"]
            and self.language == kernelspec["language"]
            and self.environment == ours.get("environment")
            and self.remembered_kernelspec == ours.get("kernelspec")
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


REQUESTED = "kernel_name given by the call"


def metadata_for(choice: KernelChoice) -> tuple[dict[str, str], dict[str, str]]:
    """`metadata.kernelspec` (what Jupyter front-ends read) and nb's own `metadata.nb`.

    An environment's kernel is written as the generic `python3` (the name every front-end
    has), with the environment in `metadata.nb`; a kernelspec by its own name. nb remembers a
    choice only if it was made on purpose or found in the project: the default `python3` is
    not remembered, so a `.venv` made later is found.
    """
    if choice.environment is not None:
        kernelspec = {
            "name": DEFAULT_KERNELSPEC,
            "display_name": choice.display_name,
            "language": "python",
        }
        return kernelspec, {"environment": str(choice.environment), "kernel_rule": choice.rule}
    name = str(choice.kernelspec)
    kernelspec = {"name": name, "display_name": choice.display_name or name}
    kernelspec["language"] = choice.language
    if choice.explicit and name in GENERIC_KERNELSPECS:
        return kernelspec, {"kernelspec": name, "kernel_rule": choice.rule}
    return kernelspec, {}


def choose(
    requested: str | None,
    metadata: KernelMetadata,
    notebook: Path,
    roots: Sequence[Path],
    env: Mapping[str, str],
    cwd: Path,
) -> KernelChoice:
    """The kernel for `notebook`, by the rules in this module's docstring."""
    if requested:
        return _requested(requested, cwd)
    if metadata.kernelspec_name and metadata.kernelspec_name not in GENERIC_KERNELSPECS:
        return KernelChoice(
            kernelspec=metadata.kernelspec_name,
            display_name=metadata.display_name or metadata.kernelspec_name,
            language=metadata.language or "",
            rule=f"the notebook's metadata names the kernelspec {metadata.kernelspec_name!r}",
        )
    note = ""
    if metadata.environment:
        remembered = python_env(Path(metadata.environment))
        if remembered is not None:
            return _env_choice(remembered, "remembered in the notebook's metadata (metadata.nb)")
        note = f" (the remembered {metadata.environment} no longer exists)"
    elif metadata.remembered_kernelspec and metadata.remembered_kernelspec == (
        metadata.kernelspec_name
    ):
        return KernelChoice(
            kernelspec=metadata.remembered_kernelspec,
            display_name=metadata.display_name or metadata.remembered_kernelspec,
            language=metadata.language or "python",
            rule="remembered in the notebook's metadata (metadata.nb): an earlier call's "
            "kernel_name",
            explicit=True,
        )
    if metadata.language and metadata.language.lower() != "python":
        return _default(f"the notebook's language is {metadata.language}, not Python{note}")
    home = Path(env.get("HOME") or Path.home()).expanduser()
    found = nearest_project_env(notebook.parent, walk_top(notebook.parent, roots, home))
    if found is not None:
        where = (
            "the notebook's folder"
            if found.prefix.parent == notebook.parent
            else str(found.prefix.parent)
        )
        return _env_choice(
            found, f"the nearest {found.prefix.name}/ above the notebook, in {where}{note}"
        )
    for variable in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        value = (env.get(variable) or "").strip()
        active = python_env(Path(value).expanduser()) if value else None
        if active is not None:
            return _env_choice(active, f"the client's {variable}{note}")
    chosen = _default(f"no project environment was found{note}")
    beyond = _env_above_root(walk_top(notebook.parent, roots, home), home)
    if beyond is None:
        return chosen
    return replace(
        chosen,
        hint=f"no project environment under this session's root, so python3 runs it; "
        f"{beyond} lies above that root: kernel_name={str(beyond)!r} uses it (or start the MCP "
        f"client in {beyond.parent})",
    )


def _env_above_root(top: Path, home: Path) -> Path | None:
    """A project environment just outside the walk (above the session's root, not above the
    home folder): likely the one the project meant, though the rules may not pick it."""
    ceiling = home if _under(str(top), str(home)) else Path(top.anchor)
    if top == ceiling or top.parent == top:
        return None
    found = nearest_project_env(top.parent, ceiling)
    return None if found is None else found.prefix


def _requested(requested: str, cwd: Path) -> KernelChoice:
    if "/" not in requested and not requested.startswith("~"):
        return KernelChoice(kernelspec=requested, rule=REQUESTED, explicit=True)
    folder = Path(requested).expanduser()
    folder = (folder if folder.is_absolute() else cwd / folder).resolve()
    found = python_env(folder)
    if found is None:
        raise ChoiceError(
            f"kernel_name {requested!r} is a path, and {folder} is not a Python environment "
            "(no pyvenv.cfg, no conda-meta/); give a kernelspec name or an environment's folder"
        )
    return _env_choice(found, REQUESTED, explicit=True)


def _env_choice(found: PythonEnv, rule: str, explicit: bool = False) -> KernelChoice:
    return KernelChoice(
        environment=found.prefix,
        kind=found.kind,
        display_name=found.display_name(),
        language="python",
        rule=rule,
        explicit=explicit,
    )


def _default(rule: str) -> KernelChoice:
    return KernelChoice(kernelspec=DEFAULT_KERNELSPEC, rule=rule)


def walk_top(folder: Path, roots: Sequence[Path], home: Path) -> Path:
    """The highest folder the walk may look in: the session's root holding the notebook, and
    never above the home folder when the notebook is under it."""
    holding = [root for root in roots if _under(str(folder), str(root))]
    top = min(holding, key=lambda root: len(root.parts)) if holding else folder
    if _under(str(folder), str(home)) and not _under(str(top), str(home)):
        top = home
    return top


def nearest_project_env(folder: Path, top: Path) -> PythonEnv | None:
    """The nearest `.venv/` or `venv/` venv in `folder` or its parents, up to `top`.

    Plain strings and one stat per candidate: this runs on every execution's way in.
    """
    place, last = str(folder), str(top)
    while True:
        for name in PROJECT_ENV_FOLDERS:
            candidate = os.path.join(place, name)
            if os.path.isfile(os.path.join(candidate, "pyvenv.cfg")):
                return PythonEnv(Path(candidate), "venv")
        parent = os.path.dirname(place)
        if place == last or parent == place or not _under(parent, last):
            return None
        place = parent


def _under(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or inside it (both absolute, normalised)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")
