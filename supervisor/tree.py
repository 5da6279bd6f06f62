"""Public API of the supervision tree."""

from nb_mcp.supervisor._supervised import ChildExited, Stopping, SupervisedActor, Supervision
from nb_mcp.supervisor._supervisor import (
    ChildStartError,
    StartChild,
    Supervisor,
    SupervisorGaveUp,
    start_root,
)
from nb_mcp.supervisor.spec import ChildSpec, Restart, Strategy

__all__ = [
    "ChildExited",
    "ChildSpec",
    "ChildStartError",
    "Restart",
    "StartChild",
    "Stopping",
    "Strategy",
    "SupervisedActor",
    "Supervision",
    "Supervisor",
    "SupervisorGaveUp",
    "start_root",
]
