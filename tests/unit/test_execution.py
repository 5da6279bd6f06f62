"""An execution's own books: its status, when progress is due, when its idle is lost."""

from __future__ import annotations

from nb_mcp.actors.execution import ABORTED, IDLE_GRACE, RECORD_AFTER, Execution


def started(timeout: float | None = None, to_writer: bool = True) -> Execution:
    execution = Execution("j-00000001", None, "cell1", "x = 1", to_writer, timeout)
    execution.sent("msg-1", now=100.0)
    return execution


def test_a_cell_is_ok_until_it_errors_or_runs_out_of_time():
    execution = started(timeout=5)
    assert execution.status == "ok" and execution.deadline == 105.0
    execution.saw("error", {"ename": "ValueError", "evalue": "bad"}, now=101)
    assert execution.status == "error" and execution.ename == "ValueError"
    execution.timed_out_at = 105.5
    assert execution.status == "timeout"


def test_a_cell_the_kernel_aborted_before_it_ran_is_no_success():
    execution = started()
    execution.replied({"status": "aborted"}, now=100.2)
    assert execution.status == "error" and execution.ename == ABORTED
    other = started()
    other.replied({"status": "ok", "execution_count": 3}, now=100.2)
    assert other.status == "ok" and other.execution_count == 3


def test_only_output_a_person_sees_counts_and_the_tail_is_its_last_line():
    execution = started()
    assert not execution.saw("execute_input", {"execution_count": 7}, now=100.1)
    assert execution.execution_count == 7
    assert execution.saw("stream", {"name": "stdout", "text": "epoch 1\nepoch 2\n"}, now=100.2)
    assert execution.saw("display_data", {"data": {}}, now=100.3)
    assert (execution.outputs, execution.tail, execution.last_output) == (
        2,
        "<display_data>",
        100.3,
    )
    execution.saw("stream", {"name": "stdout", "text": "\r 50%|█████     |"}, now=100.4)
    assert execution.tail == "50%|█████     |"


def test_progress_is_an_output_event_after_output_and_a_heartbeat_only_when_silent():
    execution = started()
    assert execution.progress_due(now=105, interval=10) is None  # not yet an interval
    execution.saw("stream", {"name": "stdout", "text": "step\n"}, now=106)
    assert execution.progress_due(now=110, interval=10) == "output"
    assert execution.progress_due(now=115, interval=10) is None
    assert execution.progress_due(now=121, interval=10) == "heartbeat"  # silent since 106


def test_a_reply_without_idle_means_lost_only_once_iopub_is_quiet_too():
    execution = started()
    assert not execution.idle_lost(now=200)  # no reply: still running
    execution.replied({"status": "error", "ename": "KeyError", "execution_count": 3}, now=101)
    execution.last_iopub = 101.5  # iopub still delivering this cell's output
    assert not execution.idle_lost(now=101.5 + IDLE_GRACE - 0.01)
    assert execution.idle_lost(now=101.5 + IDLE_GRACE + 0.01)
    assert (execution.ename, execution.execution_count) == ("KeyError", 3)


def test_only_file_cells_running_over_a_second_are_recorded_and_only_once():
    scratch = started(to_writer=False)
    assert not scratch.worth_recording(now=100 + RECORD_AFTER + 1)
    execution = started()
    assert not execution.worth_recording(now=100 + RECORD_AFTER / 2)
    assert execution.worth_recording(now=100 + RECORD_AFTER)
    record = execution.record(now=100 + RECORD_AFTER)
    assert record["msg_id"] == "msg-1" and record["cell_id"] == "cell1"
    assert not execution.worth_recording(now=200)
