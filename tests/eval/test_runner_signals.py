"""A real `sqlwright eval` stopped mid-run by SIGKILL, SIGTERM or SIGINT (sent to the runner alone, not to
its process group): nothing it started outlives it (the fork server, its workers, the resource tracker),
SIGTERM and SIGINT end it with one line and a non-zero exit code, and the same command resumes the run
file to the very result of a run that was never stopped, counting nothing twice."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_runner import _verdict_count  # tests/eval is on sys.path, as for conftest

from sqlwright.eval.runner import summary_from_run_file

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from /proc")

N = 32  # questions: four chunks of eight, two per worker
ROWS = 30
# About 0.2 s of SQLite work per prediction (the gold is instant): a chunk of eight takes over a second, so a
# signal sent after the first verdict lands mid-run even on a loaded machine (at 0.05 s it once came too late).
SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) "


def default_sigint() -> None:
    """In the child before it starts: SIGINT at its default, as a terminal gives it. A process started with
    SIGINT ignored keeps it ignored (Python installs no handler then), and in a full-suite run the test
    process was found ignoring it, so the run went on regardless."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sqlwright() -> list[str]:
    script = Path(sys.executable).with_name("sqlwright")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from sqlwright.cli import main; main()"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> dict:
    """A database, N questions, predictions (every fourth wrong) and the run file of an unstopped run."""
    folder = tmp_path_factory.mktemp("signals")
    conn = sqlite3.connect(folder / "one.sqlite")
    conn.execute("CREATE TABLE t (a INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(ROWS)])
    conn.commit()
    conn.close()
    questions, predictions = [], []
    for i in range(N):
        questions.append({"id": f"q{i}", "question": "how many", "db": "one.sqlite",
                          "sql": f"SELECT count(*) FROM t WHERE a < {i}"})
        k = i if i % 4 else i + 1
        predictions.append({"id": f"q{i}", "sql": SLOW + f"SELECT count(*) FROM t WHERE a < {k} "
                                                          "AND (SELECT count(*) FROM c) > 0"})
    (folder / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    (folder / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
    bench = {"folder": folder}
    whole = folder / "whole.sqlite"
    done = subprocess.run(_command(bench, whole), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    bench["whole"] = summary_from_run_file(whole)
    assert bench["whole"].metrics["correct"] == N - N // 4
    return bench


def _command(bench: dict, run_file: Path) -> list[str]:
    folder = bench["folder"]
    return _sqlwright() + ["eval", "jsonl", "--data", str(folder / "questions.jsonl"),
                           "--predictions", str(folder / "predictions.jsonl"), "--workers", "2",
                           "--run-file", str(run_file), "--no-progress", "--format", "json"]


def session_processes(sid: int) -> dict[int, str]:
    """Live processes of session `sid` (pid -> command line). Zombies are dead: a re-parented child's
    zombie lingers until PID 1 reaps it, and some PID 1s never do."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            found[int(entry)] = cmdline.decode("utf-8", "replace").strip()
    return found


STOPS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]


@pytest.mark.parametrize("signum", STOPS, ids=["kill", "term", "int"])
def test_stopped_eval_leaves_no_process_and_resumes_to_the_same_result(bench, tmp_path, signum):
    run_file, stderr_file = tmp_path / "stopped.sqlite", tmp_path / "stderr.txt"
    # A file, not a pipe: a child left behind would hold a pipe open, and reading it would wait for that.
    with stderr_file.open("w") as stderr_out:
        proc = subprocess.Popen(_command(bench, run_file), start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=stderr_out, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 60
        while _verdict_count(run_file) == 0:  # mid-run: a first chunk is in, the workers are on the next
            assert proc.poll() is None, stderr_file.read_text()
            assert time.monotonic() < deadline, "no verdict within a minute"
            time.sleep(0.05)
        started = session_processes(proc.pid)
        # the runner, the resource tracker, the fork server and two workers
        assert len(started) >= 5, started
        os.kill(proc.pid, signum)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while (left := session_processes(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == {}, f"still running after the runner ended: {left}"
    finally:
        for pid in session_processes(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    partial = _verdict_count(run_file)
    assert 0 < partial < N
    if signum == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 128 + signum
        stderr = stderr_file.read_text()
        last = stderr.strip().splitlines()[-1]
        assert re.fullmatch(rf"interrupted: {partial} of {N} questions done; resume with the same command "
                            rf"\(run file {re.escape(str(run_file))}\)", last), stderr

    resumed = subprocess.run(_command(bench, run_file), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    with contextlib.closing(sqlite3.connect(run_file)) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM verdicts")]
    assert sorted(ids) == sorted(f"q{i}" for i in range(N))
    summary = summary_from_run_file(run_file)
    assert summary.metrics == bench["whole"].metrics
    assert summary.results() == bench["whole"].results()
