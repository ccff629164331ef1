"""Several servers, one state: two real `sqlwright serve` processes (as behind a load balancer) with one
SQLWRIGHT_STATE_URL on the local PostgreSQL and one model server (a loopback OpenAI-compatible stub). What one
records, the other shows: history, feedback, and the example a thumbs up stores, which the other server then
shows its model."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from http_support import TOKEN, make_sqlite

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
from remote_stub import StubModelServer  # noqa: E402

pytestmark = pytest.mark.postgres

SQLWRIGHT = Path(sys.executable).with_name("sqlwright")
PG_ADMIN_URL = os.environ.get("SQLWRIGHT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COUNT = "SELECT count(*) FROM singer"
OLDEST = "SELECT name FROM singer ORDER BY age DESC LIMIT 1"


@pytest.fixture()
def state_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the shared state (dropped afterwards); skips when the server is down."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc).splitlines()[0]}")
    name = f"sqlwright_replicas_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with contextlib.suppress(psycopg.Error):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def serve(db: Path, model_url: str, state_url: str, home: Path) -> Iterator[httpx.Client]:
    """`sqlwright serve shop=DB` on a free loopback port, its state in `state_url`; a client with the token."""
    env = {**os.environ, "SQLWRIGHT_STATE_URL": state_url, "SQLWRIGHT_STATE_DIR": str(home / "state"),
           "SQLWRIGHT_CACHE_DIR": str(home / "cache"), "SQLWRIGHT_TOKEN": TOKEN, "SQLWRIGHT_RETRIES": "0"}
    process = subprocess.Popen([str(SQLWRIGHT), "serve", f"shop={db}", "--port", "0", "--model", "openai:stub",
                                "--base-url", model_url, "--greedy"],
                               env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        line = process.stderr.readline()
        match = re.search(r"on http://127\.0\.0\.1:(\d+)/", line)
        assert match, line + (process.stderr.read() if process.poll() is not None else "")
        with httpx.Client(base_url=f"http://127.0.0.1:{match.group(1)}", headers=AUTH, timeout=30) as client:
            yield client
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        process.stderr.close()


def test_two_servers_share_history_feedback_and_examples(tmp_path, state_url) -> None:
    db = make_sqlite(tmp_path / "shop.sqlite")
    answers = {"How many singers are there?": COUNT, "Who is the oldest singer?": OLDEST}
    with StubModelServer(answers) as model, \
            serve(db, model.url, state_url, tmp_path / "a") as a, serve(db, model.url, state_url, tmp_path / "b") as b:
        asked = a.post("/api/v1/ask", json={"question": "How many singers are there?"})
        assert asked.status_code == 200, asked.text
        answer = asked.json()
        assert answer["sql"] == COUNT and answer["rows"] == [[5]]

        # B lists and opens what A recorded
        listed = b.get("/api/v1/history").json()["entries"]
        assert [e["id"] for e in listed] == [answer["id"]]
        assert b.get(f"/api/v1/history/{answer['id']}").json()["rows"] == [[5]]

        # feedback given through B on A's answer stores an example that A's next question shows its model
        feedback = b.post("/api/v1/feedback", json={"id": answer["id"], "rating": "up"}).json()
        assert feedback["example"]["question"] == "How many singers are there?"
        assert feedback["example"]["source"] == "feedback"
        assert [e["id"] for e in a.get("/api/v1/examples").json()["examples"]] == [feedback["example"]["id"]]
        second = a.post("/api/v1/ask", json={"question": "Who is the oldest singer?"}).json()
        assert [e["question"] for e in second["examples"]] == ["How many singers are there?"]

        # a follow-up sent to B continues the conversation A started
        follow = b.post("/api/v1/ask", json={"question": "Who is the oldest singer?",
                                             "conversation_id": answer["conversation_id"]}).json()
        assert follow["conversation_id"] == answer["conversation_id"]
        # the stub reads the first "Question:" of a prompt: for the follow-up that is A's earlier question
        hits = model.completions()
        assert [h.question for h in hits] == ["How many singers are there?", "Who is the oldest singer?",
                                              "How many singers are there?"]
        assert {e["id"] for e in a.get("/api/v1/history").json()["entries"]} == {answer["id"], second["id"], follow["id"]}
