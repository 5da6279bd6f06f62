"""What a waiting agent reads about a job that has not run yet: its place in the kernel's
queue, as soon as the queue has said it, and never "behind 0 jobs" before that."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from nb_mcp.mcp_front import job_replies
from nb_mcp.supervisor.results import CellRun, CellState, JobSnapshot, JobState


def queued(ahead: int) -> JobSnapshot:
    cells = (CellRun("c1", 1, CellState.QUEUED), CellRun("c2", 2, CellState.QUEUED))
    snapshot = JobSnapshot(
        "j-0000abcd", Path("/p/a.ipynb"), "exec_all", JobState.QUEUED, 0.0, cells
    )
    return replace(snapshot, ahead=ahead)


def test_a_job_whose_place_is_not_known_yet_waits_for_its_turn_rather_than_behind_0_jobs():
    assert job_replies.describe_progress(queued(0)) == "waiting for its turn on the kernel"
    assert "behind 0" not in job_replies.table(queued(0))


def test_a_queued_job_says_how_many_jobs_are_ahead_of_it():
    assert job_replies.describe_progress(queued(1)) == "queued behind 1 job"
    assert job_replies.describe_progress(queued(3)) == "queued behind 3 jobs"
    assert "queued behind 3 jobs" in job_replies.table(queued(3))


def test_a_state_given_as_text_is_the_enum_member():
    cell = CellRun("c1", 1, "ok")  # type: ignore[arg-type]
    assert cell.state is CellState.OK and cell.state == "ok" and f"{cell.state}" == "ok"
