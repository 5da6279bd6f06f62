"""One notebook's subtree: its writer, its kernel, and (added per job) its jobs.

```
NotebookSupervisor (one_for_one)
├── WriterActor    permanent: owns the document
├── KernelActor    permanent: owns the kernel's client; its KernelSlot is the restart state
└── JobActor …     temporary: one per job, FIFO through the kernel's queue
```
"""

from __future__ import annotations

from pathlib import Path

from nb_mcp.actors.backend import Limits
from nb_mcp.actors.execution import KernelSlot
from nb_mcp.actors.kernel import KernelActor
from nb_mcp.actors.log import emit
from nb_mcp.actors.refs import NotebookRefs
from nb_mcp.actors.writer import WriterActor
from nb_mcp.supervisor.config import Config
from nb_mcp.supervisor.tree import ChildSpec, Restart, Supervisor

# Kernel deaths and channel failures count here: past five in a minute the notebook's subtree
# gives up (a clear event and marker) instead of looping, and the rest of the server goes on.
MAX_RESTARTS = 5
PERIOD_SEC = 60.0


def notebook_spec(
    path: Path, refs: NotebookRefs, config: Config, kernel: KernelSlot | None = None
) -> ChildSpec:
    """The subtree's spec; `kernel` carries a kernel taken over from an earlier daemon."""
    name = f"notebook:{path}"
    return ChildSpec(
        id=name,
        actor_class=Supervisor,
        restart=Restart.TEMPORARY,
        kwargs={
            "name": name,
            "max_restarts": MAX_RESTARTS,
            "period": PERIOD_SEC,
            "emit": emit,
            "children": [
                ChildSpec(
                    id="writer",
                    actor_class=WriterActor,
                    kwargs={
                        "path": path,
                        "flush_interval": config.flush_interval_sec,
                        "refs": refs,
                    },
                    shutdown_timeout=30.0,
                ),
                ChildSpec(
                    id="kernel",
                    actor_class=KernelActor,
                    kwargs={
                        "refs": refs,
                        "state_dir": config.state_dir,
                        "start_timeout": config.kernel_start_timeout_sec,
                        "progress_interval": config.progress_interval_sec,
                        "transport": config.kernel_transport,
                        "limits": Limits(config.kernel_memory_mb, config.kernel_cpu_sec),
                    },
                    state=kernel or KernelSlot(notebook=path),
                    shutdown_timeout=15.0,
                ),
            ],
        },
        shutdown_timeout=60.0,
    )
