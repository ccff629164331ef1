"""`sqlwright eval --model openai:NAME --concurrency N` against a loopback model server with a fixed delay per
request (tests/eval/remote_stub.py): N questions in flight make the run about N times faster, the run file stays
exact however the run is stopped (each question recorded once, a resume asks nothing twice that was stored), a
429's Retry-After is waited out, and the embedded model refuses more than one question at a time."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from remote_stub import StubModelServer, build_concert_db, concert_questions, stub_answers
from test_runner import _verdict_count  # tests/eval is on sys.path, as for conftest
from test_runner_signals import _sqlwright, default_sigint, session_processes
from typer.testing import CliRunner

from sqlwright.errors import ConfigError, LLMRequestFailed
from sqlwright.eval.datasets import load_dataset
from sqlwright.eval.predictors import PipelinePredictor
from sqlwright.eval.runner import run_eval, summary_from_run_file

MESSAGES = [{"role": "user", "content": "Database schema:\nCREATE TABLE t (x INTEGER)\n\nQuestion:\nHow many?"}]


@pytest.fixture(autouse=True)
def _no_outside_model_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("BASE_URL", "API_KEY", "REQUEST_TIMEOUT", "CONNECT_TIMEOUT", "RETRIES", "MODEL"):
        monkeypatch.delenv(f"SQLWRIGHT_{name}", raising=False)
    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cache"))


def _bench(folder: Path, n: int) -> tuple[Path, list[dict]]:
    """The concert database and `n` questions over it, as a JSONL dataset in `folder`."""
    build_concert_db(folder / "concert.sqlite")
    questions = concert_questions(n, "concert.sqlite")
    data = folder / "questions.jsonl"
    data.write_text("".join(json.dumps(q) + "\n" for q in questions))
    return data, questions


def _comparable(results: list[dict]) -> list[dict]:
    """A run's results without their timings."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in results]


def _scores(metrics: dict) -> dict:
    """A run's metrics without its latency (the model's time differs from run to run)."""
    return {k: v for k, v in metrics.items() if k != "latency"}


def _engine(url: str, cache_dir: Path):
    from sqlwright.llm.openai_backend import OpenAILLM
    from sqlwright.pipeline.ask import AskOptions, Engine

    return Engine(OpenAILLM("stub", url, timeout=30), AskOptions.greedy(), cache_dir=cache_dir)


def _run(data: Path, url: str, run_file: Path, concurrency: int):
    with load_dataset("jsonl", data, db_root=data.parent) as dataset:
        predictor = PipelinePredictor(_engine(url, run_file.parent / "cache"))
        try:
            started = time.perf_counter()
            summary = run_eval(dataset, predictor, run_file=run_file, workers=0, progress=False,
                               concurrency=concurrency)
            return summary, time.perf_counter() - started
        finally:
            predictor.close()


# --- throughput ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_eight_in_flight_are_at_least_six_times_faster_than_one(tmp_path: Path) -> None:
    """24 questions, 0.4 s per request: about 9.6 s one at a time, three waves of 1.2 s eight at a time (the
    bound is 8x; the pipeline's own work per question, serial under the GIL, takes the rest)."""
    data, questions = _bench(tmp_path, 24)
    answers = stub_answers(questions)
    with StubModelServer(answers) as stub:  # imports and first-time work, out of both timings
        _run(data, stub.url, tmp_path / "warm-up.sqlite", 2)
    results, seconds = {}, {}
    for n in (1, 8):
        with StubModelServer(answers, delay=0.4) as stub:
            summary, seconds[n] = _run(data, stub.url, tmp_path / f"run{n}.sqlite", n)
            asked = [h.question for h in stub.completions()]
        assert sorted(asked) == sorted(q["question"] for q in questions)  # each question asked once
        results[n] = summary.results()
    assert seconds[1] >= 6 * seconds[8], seconds
    assert _comparable(results[1]) == _comparable(results[8])
    assert sum(r["correct"] for r in results[8]) == 18  # every fourth answer is wrong


def test_results_arrive_in_any_order_and_are_kept_in_dataset_order(tmp_path: Path) -> None:
    data, questions = _bench(tmp_path, 8)
    # The first questions are the slowest: their answers come back last.
    slow = {q["question"]: 0.4 - 0.05 * i for i, q in enumerate(questions)}
    with StubModelServer(stub_answers(questions), slow=slow) as stub:
        summary, _ = _run(data, stub.url, tmp_path / "run.sqlite", 8)
        arrivals = [h.question for h in stub.completions()]
    assert len(arrivals) == 8
    assert [r["id"] for r in summary.results()] == [q["id"] for q in questions]
    with contextlib.closing(sqlite3.connect(tmp_path / "run.sqlite")) as conn:
        created = [row[0] for row in conn.execute("SELECT id FROM predictions ORDER BY created, rowid")]
    assert created[0] == "q7" and created[-1] == "q0"  # stored as they came back


# --- Retry-After --------------------------------------------------------------------------------------------
def test_a_429_with_retry_after_is_waited_out_then_answered(tmp_path: Path) -> None:
    from sqlwright.llm.openai_backend import OpenAILLM

    with StubModelServer({"How many?": "SELECT count(*) FROM t"}) as stub:
        stub.reject(1, headers={"Retry-After": "1"})
        llm = OpenAILLM("stub", stub.url, retries=1)
        started = time.monotonic()
        [completion] = llm.complete(MESSAGES, max_tokens=20)
        elapsed = time.monotonic() - started
        tries = [h for h in stub.hits if h.path == "/v1/chat/completions"]
    assert "SELECT count(*) FROM t" in completion.text
    assert [h.status for h in tries] == [429, 200]
    assert tries[1].arrived - tries[0].arrived >= 1.0 and 1.0 <= elapsed < 3


def test_retry_after_holds_back_the_other_threads_too() -> None:
    from sqlwright.llm.openai_backend import OpenAILLM

    with StubModelServer({"How many?": "SELECT 1"}) as stub:
        llm = OpenAILLM("stub", stub.url, retries=1)
        llm.count_tokens("warm up")  # the first contact, out of the way
        stub.reject(1, headers={"Retry-After": "1"})
        first = threading.Thread(target=llm.complete, args=(MESSAGES,))
        first.start()
        deadline = time.monotonic() + 5
        while not any(h.status == 429 for h in stub.hits):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        llm.complete(MESSAGES)  # another thread, told nothing itself
        first.join()
        tries = [h for h in stub.hits if h.path == "/v1/chat/completions"]
    assert [h.status for h in tries] == [429, 200, 200]
    assert min(h.arrived for h in tries[1:]) - tries[0].arrived >= 1.0


def test_retry_after_forms() -> None:
    from sqlwright.llm.openai_backend import retry_after_seconds

    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)

    def wait(**headers: str) -> float | None:
        return retry_after_seconds(SimpleNamespace(headers={k.replace("_", "-"): v for k, v in headers.items()}),
                                   now=now)

    assert wait(retry_after="2") == 2.0 and wait(retry_after=" 0.5 ") == 0.5
    assert wait(retry_after=format_datetime(now + timedelta(seconds=7), usegmt=True)) == 7.0
    assert wait(retry_after="Wed, 01 Jan 2025 12:00:03 -0000") == 3.0  # no zone given: UTC
    assert wait(retry_after=format_datetime(now - timedelta(minutes=5), usegmt=True)) == 0.0  # past: now
    assert wait(retry_after_ms="1500", retry_after="9") == 1.5  # OpenAI's milliseconds first
    for bad in ("soon", "-3", "nan", "inf", ""):
        assert wait(retry_after=bad) is None
    assert wait() is None and retry_after_seconds(None) is None


def test_a_retry_after_beyond_the_cap_fails_at_once_saying_so() -> None:
    from sqlwright.llm.openai_backend import MAX_RETRY_AFTER, OpenAILLM

    with StubModelServer({}) as stub:
        stub.reject(1, status=503, headers={"Retry-After": "600"})
        started = time.monotonic()
        with pytest.raises(LLMRequestFailed) as info:
            OpenAILLM("stub", stub.url, retries=3).complete(MESSAGES)
        assert len([h for h in stub.hits if h.path == "/v1/chat/completions"]) == 1
    assert time.monotonic() - started < 2
    assert str(info.value) == (f"The model server ({stub.url}) answered HTTP 503: failed with 503; it asks to retry "
                               f"after 600s, longer than sqlwright waits ({MAX_RETRY_AFTER:g}s)")


def test_a_429_is_retried_past_retries_while_the_waits_fit_the_request_timeout() -> None:
    from sqlwright.llm.openai_backend import OpenAILLM

    with StubModelServer({"How many?": "SELECT 1"}) as stub:
        stub.reject(3, headers={"Retry-After": "0.1"})
        [c] = OpenAILLM("stub", stub.url, retries=0, timeout=5).complete(MESSAGES)
        assert "SELECT 1" in c.text
        stub.reject(5, headers={"Retry-After": "0.2"})
        with pytest.raises(LLMRequestFailed) as info:
            OpenAILLM("stub", stub.url, retries=0, timeout=0.3).complete(MESSAGES)
    assert re.search(r"answered HTTP 429: rate limited \(2 attempts in \d+s\): send fewer requests at once "
                     r"\(eval --concurrency\)", str(info.value)), str(info.value)


def test_threads_that_start_together_make_one_first_contact() -> None:
    from sqlwright.llm.openai_backend import OpenAILLM

    with StubModelServer({"How many?": "SELECT 1"}, delay=0.1) as stub:
        llm = OpenAILLM("stub", stub.url)
        start = threading.Barrier(8)
        errors: list[BaseException] = []

        def ask() -> None:
            try:
                start.wait()
                llm.count_tokens("SELECT name FROM singer")
                llm.complete(MESSAGES)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        paths = [h.path for h in stub.hits]
    assert errors == []
    assert paths.count("/v1/models") == 1  # one liveness check, not eight
    assert paths.count("/extras/tokenize") == 1 and paths.count("/tokenize") == 1  # one tokenize probe
    assert paths.count("/v1/chat/completions") == 8


def test_token_counts_are_asked_once_per_text() -> None:
    from sqlwright.llm.openai_backend import OpenAILLM

    with StubModelServer({}, tokenize=True) as stub:
        llm = OpenAILLM("stub", stub.url)
        schema = "CREATE TABLE singer (singer_id INTEGER, name TEXT)"
        counts = [llm.count_tokens(schema) for _ in range(3)] + [llm.count_tokens("SELECT 1")]
        tokenized = [h for h in stub.hits if h.path == "/extras/tokenize"]
    assert counts == [7, 7, 7, 2]  # the stub counts words
    assert len(tokenized) == 3  # the route probe, then each text once


# --- refusals -----------------------------------------------------------------------------------------------
def test_a_model_that_answers_one_at_a_time_refuses_concurrency(tmp_path: Path) -> None:
    from sqlwright.llm import ScriptedLLM
    from sqlwright.pipeline.ask import Engine

    data, _ = _bench(tmp_path, 2)
    with load_dataset("jsonl", data, db_root=tmp_path) as dataset:
        with pytest.raises(ConfigError, match="concurrency 4 needs a model behind a server"):
            run_eval(dataset, PipelinePredictor(Engine(ScriptedLLM())), run_file=tmp_path / "r.sqlite",
                     workers=0, progress=False, concurrency=4)
        with pytest.raises(ConfigError, match="at least 1"):
            run_eval(dataset, {}, run_file=tmp_path / "r.sqlite", workers=0, progress=False, concurrency=0)


@pytest.mark.parametrize(("source", "words"), [
    (["--model", "qwen2.5-coder-0.5b"], "the embedded model qwen2.5-coder-0.5b answers one question at a time"),
    (["--predictions", "p.jsonl"], "predictions read from a file are not asked for"),
])
def test_eval_cli_refuses_concurrency_without_a_server(tmp_path: Path, source: list[str], words: str) -> None:
    from sqlwright.cli import app

    data, _ = _bench(tmp_path, 2)
    (tmp_path / "p.jsonl").write_text("")
    source = [str(tmp_path / s) if s.endswith(".jsonl") else s for s in source]
    result = CliRunner().invoke(app, ["eval", "jsonl", "--data", str(data), *source, "--concurrency", "4",
                                      "--run-file", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines == [f"error: --concurrency 4 is for a model behind a server (--model openai:NAME --base-url URL); "
                     f"{words}"]
    assert not (tmp_path / "r.sqlite").exists()


def test_eval_cli_takes_base_url_and_concurrency(tmp_path: Path) -> None:
    from sqlwright.cli import app

    data, questions = _bench(tmp_path, 12)
    with StubModelServer(stub_answers(questions), delay=0.2) as stub:
        started = time.monotonic()
        result = CliRunner().invoke(app, [
            "eval", "jsonl", "--data", str(data), "--db-root", str(tmp_path), "--model", "openai:stub",
            "--base-url", stub.url, "--concurrency", "6", "--greedy", "--workers", "1", "--no-progress",
            "--format", "json", "--run-file", str(tmp_path / "run.sqlite")])
        elapsed = time.monotonic() - started
        asked = sorted(h.question for h in stub.completions())
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [r["id"] for r in out["results"]] == [q["id"] for q in questions]
    assert out["correct"] == 9 and asked == sorted(q["question"] for q in questions)
    assert elapsed < 12 * 0.2  # faster than one at a time could be, whatever the start-up costs


def test_a_failing_request_is_its_questions_error_and_the_run_goes_on(tmp_path: Path) -> None:
    data, questions = _bench(tmp_path, 8)
    broken = questions[2]["question"]
    with StubModelServer(stub_answers(questions), delay=0.05, fail={broken: 500}) as stub:
        summary, _ = _run(data, stub.url, tmp_path / "run.sqlite", 4)
        tries = len([h for h in stub.hits if h.question == broken])
    by_id = {r["id"]: r for r in summary.results()}
    assert tries == 3  # retried twice (retries = 2)
    assert by_id["q2"]["correct"] is False and "answered HTTP 500: failed with 500" in by_id["q2"]["error"]
    assert [r["id"] for r in summary.results() if r["correct"]] == ["q0", "q1", "q4", "q5", "q6"]


def test_an_unreachable_server_stops_the_run_in_one_line(tmp_path: Path) -> None:
    from sqlwright.cli import app

    data, _ = _bench(tmp_path, 8)
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    result = CliRunner().invoke(app, [
        "eval", "jsonl", "--data", str(data), "--db-root", str(tmp_path), "--model", "openai:stub", "--base-url",
        url, "--concurrency", "4", "--greedy", "--workers", "0", "--no-progress",
        "--run-file", str(tmp_path / "run.sqlite")])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: Could not connect to the model server ({url}): connection refused"
    assert _verdict_count(tmp_path / "run.sqlite") == 0


# --- stopped runs -------------------------------------------------------------------------------------------
N_STOPPED = 40


def _eval_command(data: Path, url: str, run_file: Path, concurrency: int = 8) -> list[str]:
    return _sqlwright() + ["eval", "jsonl", "--data", str(data), "--db-root", str(data.parent), "--model",
                           "openai:stub", "--base-url", url, "--concurrency", str(concurrency), "--greedy",
                           "--workers", "1", "--run-file", str(run_file), "--no-progress", "--format", "json"]


def _stored_ids(run_file: Path, table: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(run_file)) as conn:
        return [row[0] for row in conn.execute(f"SELECT id FROM {table}")]  # noqa: S608 (a fixed name)


def _stop_when(proc: subprocess.Popen, run_file: Path, verdicts: int, stderr: Path) -> None:
    deadline = time.monotonic() + 60
    while _verdict_count(run_file) < verdicts:
        assert proc.poll() is None, stderr.read_text()
        assert time.monotonic() < deadline, f"fewer than {verdicts} verdicts within a minute"
        time.sleep(0.02)


def _end_session(proc: subprocess.Popen) -> dict[int, str]:
    """Wait for what `proc` started to end (5 s at most); kill any left and return them."""
    deadline = time.monotonic() + 5
    while (left := session_processes(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    return left


@pytest.fixture(scope="module")
def stopped_bench(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("remote-stopped")
    data, questions = _bench(folder, N_STOPPED)
    with StubModelServer(stub_answers(questions), delay=0.25) as stub:
        done = subprocess.run(_eval_command(data, stub.url, folder / "whole.sqlite"), capture_output=True,
                              text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    whole = summary_from_run_file(folder / "whole.sqlite")
    assert whole.metrics["correct"] == N_STOPPED - N_STOPPED // 4
    return {"data": data, "questions": questions, "whole": whole}


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from /proc")
def test_sigkill_mid_run_then_resume_records_every_question_once(stopped_bench: dict, tmp_path: Path) -> None:
    data, questions = stopped_bench["data"], stopped_bench["questions"]
    run_file, stderr = tmp_path / "killed.sqlite", tmp_path / "stderr.txt"
    with StubModelServer(stub_answers(questions), delay=0.25) as stub:
        with stderr.open("w") as err:
            proc = subprocess.Popen(_eval_command(data, stub.url, run_file), start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=err)
        try:
            _stop_when(proc, run_file, 10, stderr)  # a first wave judged, the next questions in flight
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            left = _end_session(proc)
        assert left == {}, f"still running after the runner was killed: {left}"
        judged_before = set(_stored_ids(run_file, "verdicts"))
        predicted_before = set(_stored_ids(run_file, "predictions"))
        assert 0 < len(judged_before) < N_STOPPED and judged_before <= predicted_before

        resumed = subprocess.run(_eval_command(data, stub.url, run_file), capture_output=True, text=True,
                                 timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        asks = {q["question"]: len(stub.completions(q["question"])) for q in questions}

    verdict_ids = _stored_ids(run_file, "verdicts")
    assert sorted(verdict_ids) == sorted(q["id"] for q in questions)  # every question, once
    assert sorted(_stored_ids(run_file, "predictions")) == sorted(verdict_ids)
    for q in questions:
        # A stored prediction is never asked for again; only the questions in flight at the kill are asked twice.
        assert asks[q["question"]] == (1 if q["id"] in predicted_before else asks[q["question"]])
        assert 1 <= asks[q["question"]] <= 2
    assert sum(asks.values()) - N_STOPPED <= 8  # at most one wave of questions in flight was lost
    summary = summary_from_run_file(run_file)
    assert _scores(summary.metrics) == _scores(stopped_bench["whole"].metrics)
    assert _comparable(summary.results()) == _comparable(stopped_bench["whole"].results())


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from /proc")
def test_ctrl_c_does_not_wait_for_requests_in_flight_and_resumes_elsewhere(stopped_bench: dict,
                                                                          tmp_path: Path) -> None:
    data, questions = stopped_bench["data"], stopped_bench["questions"]
    run_file, stderr = tmp_path / "stopped.sqlite", tmp_path / "stderr.txt"
    # Past the first eight questions the server takes a minute to answer: the run is stopped while it waits.
    hang = {q["question"]: 60.0 for q in questions[8:]}
    with StubModelServer(stub_answers(questions), delay=0.05, slow=hang) as stub:
        with stderr.open("w") as err:
            # faulthandler: should the run not stop, SIGABRT makes it print every thread's stack (seen once in
            # a full-suite run and never again; the stacks say where it waited).
            proc = subprocess.Popen(_eval_command(data, stub.url, run_file), start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=err,
                                    env={**os.environ, "PYTHONFAULTHANDLER": "1"}, preexec_fn=default_sigint)
        try:
            _stop_when(proc, run_file, 8, stderr)
            deadline = time.monotonic() + 10
            while len([h for h in stub.hits if h.path == "/v1/chat/completions"]) < 8 + 8 and \
                    time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)  # eight requests hang in the server now
            started = time.monotonic()
            os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGABRT)
                proc.wait(timeout=10)
                pytest.fail(f"the run did not stop within 30 s of SIGINT; its stacks:\n{stderr.read_text()[-6000:]}")
            took = time.monotonic() - started
        finally:
            left = _end_session(proc)
    assert left == {}
    assert proc.returncode == 130 and took < 5, (proc.returncode, took)
    last = stderr.read_text().strip().splitlines()[-1]
    assert re.fullmatch(rf"interrupted: 8 of {N_STOPPED} questions done; resume with the same command "
                        rf"\(run file {re.escape(str(run_file))}\)", last), stderr.read_text()

    # The server's address is not part of the run: the same run resumes against another server.
    with StubModelServer(stub_answers(questions), delay=0.05) as other:
        resumed = subprocess.run(_eval_command(data, other.url, run_file, concurrency=4), capture_output=True,
                                 text=True, timeout=120)
        asked = {h.question for h in other.completions()}
    assert resumed.returncode == 0, resumed.stderr
    assert asked == {q["question"] for q in questions[8:]}  # the eight done are not asked again
    assert sorted(_stored_ids(run_file, "verdicts")) == sorted(q["id"] for q in questions)
    summary = summary_from_run_file(run_file)
    assert _scores(summary.metrics) == _scores(stopped_bench["whole"].metrics)
    assert _comparable(summary.results()) == _comparable(stopped_bench["whole"].results())
