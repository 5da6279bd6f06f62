"""Public API of the supervision tree."""

from supervisor._supervised import ChildExited, SupervisedActor, Supervision
from supervisor._supervisor import ChildStartError, Supervisor, SupervisorGaveUp, start_root
from supervisor.spec import ChildSpec, Restart, Strategy

__all__ = [
    "ChildExited",
    "ChildSpec",
    "ChildStartError",
    "Restart",
    "Strategy",
    "SupervisedActor",
    "Supervision",
    "Supervisor",
    "SupervisorGaveUp",
    "start_root",
]
