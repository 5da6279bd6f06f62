"""`nb run`: Ctrl-C pressed for real on a terminal (a pty), its job seen by the other commands,
and what it says when it cannot run."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import nbformat
import pytest

from tests.helpers import NB, gate, outputs_text, process_alive, read_events, server_env, wait_for

# How long nb run may take to end after the first Ctrl-C: a cell that ignores the interrupt is
# given 5 s (ops/run.py ESCALATE_AFTER_SEC), then stopping the job and its kernel takes about
# a second; the rest is room for a loaded machine.
EXIT_BOUND_SEC = 15.0

OBEYS = "import time\nprint('sleeping', flush=True)\ntime.sleep(120)"
IGNORES = (
    "import signal, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "print('sleeping', flush=True)\n"
    "time.sleep(120)"
)


class Terminal:
    """`nb run` on a pseudo-terminal of its own, as a person at a shell runs it."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.pid, self._master = pty.fork()
        if self.pid == 0:  # the child: exec at once
            try:
                os.chdir(cwd)
                os.execve(NB, [NB, *args], env)
            finally:
                os._exit(127)
        self._output = bytearray()
        self._lock = threading.Lock()
        self.status: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        # Drained all the time: a terminal nobody reads blocks the writer once its buffer fills.
        while True:
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            with self._lock:
                self._output.extend(chunk)

    @property
    def output(self) -> str:
        with self._lock:
            return self._output.decode(errors="replace")

    def press_ctrl_c(self) -> None:
        os.write(self._master, b"\x03")  # the line discipline turns it into SIGINT

    def ended(self) -> bool:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status is not None

    def close(self) -> None:
        if not self.ended():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        self._reader.join(timeout=5)
        os.close(self._master)


def write_notebook(path: Path, *sources: str) -> None:
    document = nbformat.v4.new_notebook()
    document.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(document, path)


def kernel_pids(log: Path) -> list[int]:
    return [e["kernel_pid"] for e in read_events(log) if e["event"] == "kernel.ready"]


@pytest.mark.parametrize("presses", [1, 2, 3])
@pytest.mark.parametrize("cell", [OBEYS, IGNORES], ids=["cell-obeys", "cell-ignores-sigint"])
def test_ctrl_c_on_nb_run_any_number_of_times_ends_it_marks_the_cells_and_stops_the_kernel(
    tmp_path, presses, cell
):
    path = tmp_path / "long.ipynb"
    write_notebook(path, "print('first')", cell, "print('never')")
    terminal = Terminal(["run", str(path)], tmp_path, server_env(tmp_path))
    try:
        wait_for(
            lambda: "sleeping" in outputs_text(path, 1),
            timeout=60,
            what="the long cell to run and print",
        )
        (kernel_pid,) = kernel_pids(tmp_path / "events.log")
        first_press = time.monotonic()
        for press in range(presses):
            if press:
                time.sleep(0.3)  # a person pressing again (the reported bug: 0.3 s apart)
            terminal.press_ctrl_c()
        wait_for(terminal.ended, timeout=EXIT_BOUND_SEC, what="nb run to exit after Ctrl-C")
        took = time.monotonic() - first_press
    finally:
        terminal.close()
        # Looked at once nb run is gone (or was killed, if it hung), before any assertion.
        leftover = [pid for pid in kernel_pids(tmp_path / "events.log") if process_alive(pid)]
        for pid in leftover:  # a failure must not leave a kernel on the machine
            os.killpg(pid, signal.SIGKILL)
    shown = terminal.output
    assert os.WIFSIGNALED(terminal.status), shown
    assert os.WTERMSIG(terminal.status) == signal.SIGINT  # a shell reports 130
    assert took < EXIT_BOUND_SEC
    assert "Traceback" not in shown, shown
    assert re.search(r"nb run: job j-[0-9a-f]{8} on long\.ipynb", shown), shown
    interrupted = outputs_text(path, 1)
    if cell == IGNORES:  # stopped with its kernel: by the second press, or 5 s after the first
        assert "⊘ Stopped at" in interrupted, interrupted
    elif presses == 1:  # the interrupt ended the cell; the job went no further
        assert "KeyboardInterrupt" in interrupted and "✗ Error at" in interrupted, interrupted
    else:  # the second press may land before or after the interrupt ended the cell
        assert "KeyboardInterrupt" in interrupted or "⊘ Stopped at" in interrupted, interrupted
    assert "⊘ Skipped" in outputs_text(path, 2)
    assert "never" not in outputs_text(path, 2)
    assert "first" in outputs_text(path, 0)
    nbformat.validate(nbformat.read(path, as_version=4))
    assert leftover == [], f"kernel {kernel_pid} left running"
    assert not list((tmp_path / "state" / "kernels").glob("*.json"))
    finished = [e for e in read_events(tmp_path / "events.log") if e["event"] == "job.finished"]
    assert len(finished) == 1 and finished[0]["status"] in ("error", "stopped")
    assert read_events(tmp_path / "events.log")[-1]["event"] == "server.stopped"


def test_a_shell_sees_exit_status_130_after_nb_run_is_interrupted(tmp_path):
    path = tmp_path / "long.ipynb"
    write_notebook(path, OBEYS, "print('never')")
    shell = subprocess.Popen(
        ["bash", "-c", f'"{NB}" run long.ipynb; echo "nb run exited $?"'],
        cwd=tmp_path,
        env=server_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: "sleeping" in outputs_text(path, 0), timeout=60, what="the cell to run")
        (started,) = [
            e for e in read_events(tmp_path / "events.log") if e["event"] == "server.started"
        ]
        os.kill(started["pid"], signal.SIGINT)  # to nb run only, as its parent shell is spared
        out, err = shell.communicate(timeout=EXIT_BOUND_SEC)
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
        for pid in kernel_pids(tmp_path / "events.log"):
            if process_alive(pid):
                os.killpg(pid, signal.SIGKILL)
    assert "nb run exited 130" in out, (out, err)
    assert "KeyboardInterrupt" in outputs_text(path, 0)
    assert "⊘ Skipped" in outputs_text(path, 1)


def env_without_log_path(tmp_path: Path) -> dict[str, str]:
    env = server_env(tmp_path)
    del env["NB_MCP_LOG_PATH"]  # as a user runs it: the default log
    return env


def nb(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NB, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_nb_run_prints_its_job_and_status_and_watch_find_it_while_it_runs(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    flag = tmp_path / "go.flag"
    path = project / "gated.ipynb"
    write_notebook(path, gate(flag, before="print('working', flush=True)"), "print('after')")
    env = env_without_log_path(tmp_path)
    running = subprocess.Popen(
        [NB, "run", "gated.ipynb"], cwd=project, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        first = running.stderr.readline()
        follow = running.stderr.readline()
        match = re.match(r"nb run: job (j-[0-9a-f]{8}) on gated\.ipynb, 2 code cells", first)
        assert match, first
        job = match.group(1)
        assert follow.strip() == f"follow it: nb watch --job {job} --path {path}"
        wait_for(lambda: "working" in outputs_text(path, 0), timeout=60, what="the cell to run")
        status = nb(env, tmp_path, "status")
        assert re.search(
            rf"^  {job}  {re.escape(str(path))}  server {running.pid}", status.stdout, re.M
        ), status.stdout
        assert f"nb watch --job {job} --path {path}" in status.stdout
        assert re.search(rf"^  pid {running.pid}  run  running", status.stdout, re.M)
        watcher = subprocess.Popen(  # from another folder, with nothing but the job id
            [NB, "watch", "--job", job, "--format", "text"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        flag.touch()
        out, err = watcher.communicate(timeout=60)
        assert watcher.returncode == 0, (out, err)
        assert "job.submitted" in out.splitlines()[0] and "job.finished" in out.splitlines()[-1]
        rest = running.stderr.read()
        assert running.wait(timeout=60) == 0, rest
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    assert "gated.ipynb: ok" in rest
    assert not (project / ".nb_mcp.log").exists()
    assert not (tmp_path / ".nb_mcp.log").exists()
    events = read_events(tmp_path / "state" / "events.log")
    assert [e["event"] for e in events if e.get("job_id") == job][-1] == "job.finished"
    assert "Active jobs: none" in nb(env, tmp_path, "status").stdout


def test_nb_run_on_a_missing_notebook_says_so_in_the_terms_of_the_cli(tmp_path):
    result = nb(server_env(tmp_path), tmp_path, "run", "missing.ipynb")
    assert result.returncode == 2
    assert result.stderr == f"nb run: no notebook at {tmp_path / 'missing.ipynb'}\n"
    assert not (tmp_path / "missing.ipynb").exists()


@pytest.mark.parametrize("flag", [[], ["--kernel", "no-such-kernel"]], ids=["metadata", "flag"])
def test_nb_run_with_a_missing_kernelspec_names_the_installed_ones_and_the_kernel_flag(
    tmp_path, flag
):
    path = tmp_path / "julia.ipynb"
    document = nbformat.v4.new_notebook()
    document.metadata["kernelspec"] = {"name": "julia-1.9", "display_name": "Julia 1.9"}
    document.cells = [nbformat.v4.new_code_cell("1 + 1")]
    nbformat.write(document, path)
    before = path.read_bytes()
    result = nb(server_env(tmp_path), tmp_path, "run", "julia.ipynb", *flag)
    assert result.returncode == 2
    wanted = flag[1] if flag else "julia-1.9"
    source = "--kernel" if flag else "the notebook's metadata"
    assert f"no kernel named {wanted!r} (installed kernelspecs: " in result.stderr
    assert "python3" in result.stderr and f"which {source} asks for" in result.stderr
    assert "nb run julia.ipynb --kernel NAME" in result.stderr
    assert path.read_bytes() == before


def test_nb_run_names_the_index_of_each_skipped_cell(tmp_path):
    path = tmp_path / "fails.ipynb"
    write_notebook(path, "print('ok')", "raise ValueError('bad')", "print(2)", "print(3)")
    result = nb(server_env(tmp_path), tmp_path, "run", "fails.ipynb")
    assert result.returncode == 1
    ids = [cell["id"] for cell in nbformat.read(path, as_version=4).cells]
    assert f"✗ [2/4] cell 1 {ids[1]} error" in result.stderr
    assert f"⊘ [3/4] cell 2 {ids[2]} skipped (earlier cell errored)" in result.stderr
    assert f"⊘ [4/4] cell 3 {ids[3]} skipped (earlier cell errored)" in result.stderr
    assert "None" not in result.stderr
