"""The facade's answers: plain data, for `mcp_front` and `ops` to turn into replies."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from nb_mcp.actors.job import JobSnapshot
from nb_mcp.actors.kernel_protocol import KernelInfo
from nb_mcp.supervisor import views


@dataclass(frozen=True)
class Listing:
    path: Path
    cells: list[views.CellSummary]
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CellRead:
    path: Path
    cell: views.CellView
    total: int
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Edited:
    path: Path
    op: str
    index: int
    cell_id: str | None
    total: int
    written: bool
    write_error: str | None
    created: bool = False
    detail: str = ""
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Submitted:
    job_id: str
    notebook: Path
    kind: str
    cells: tuple[str, ...]
    future: Future[JobSnapshot]
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KernelStatus:
    notebook: Path
    info: KernelInfo


@dataclass(frozen=True)
class ServerStatus:
    version: str
    pid: int
    uptime_sec: float
    log_path: Path
    state_dir: Path
    kernels: list[KernelStatus]
    jobs: list[JobSnapshot]  # active first, then recent
