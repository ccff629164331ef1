"""The HTTP API's endpoints through FastAPI's TestClient, over real SQLite files and a real state store, with
the scripted model: answers and their history, the event stream, conversations, feedback that teaches,
SQL a person sends, examples and notes, the page."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from http_support import EndlessLLM, fenced, make_app, make_service, make_sqlite, read_events, use_bm25

from sqlwright.llm.mock import ScriptedLLM

OLD_SINGERS = "SELECT name FROM singer WHERE age > 40 ORDER BY name"
ANSWER_KEYS = {"id", "db", "question", "sql", "columns", "rows", "truncated", "confidence", "abstained", "reason",
               "candidates", "chart", "summary", "timings", "conversation_id", "examples", "notes"}


@pytest.fixture(autouse=True)
def _bm25(monkeypatch):
    use_bm25(monkeypatch)


@pytest.fixture()
def llm() -> EndlessLLM:
    return EndlessLLM(fenced(OLD_SINGERS))


@pytest.fixture()
def service(tmp_path, llm):
    service = make_service(tmp_path, llm)
    yield service
    service.close()


@pytest.fixture()
def client(service) -> TestClient:
    return TestClient(make_app(service), base_url="http://127.0.0.1")


def prompt_text(llm: ScriptedLLM, index: int = -1) -> str:
    return "\n".join(m["content"] for m in llm.requests[index]["messages"])


# --- server and databases -----------------------------------------------------------------------------
def test_health_info_databases_and_schema(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/api/v1/info").json()
    assert info["databases"] == ["shop"] and info["read_only"] is True and info["token_required"] is False
    assert info["model"] == "scripted" and info["queue"]["size"] == 8 and info["version"]
    assert client.get("/api/v1/databases").json() == {"databases": [{"name": "shop", "dialect": "sqlite", "tables": 2}]}
    schema = client.get("/api/v1/schema", params={"db": "shop"}).json()
    assert sorted(t["name"] for t in schema["tables"]) == ["concert", "singer"]
    assert "singer" in schema["text"] and schema["dialect"] == "sqlite"
    missing = client.get("/api/v1/schema", params={"db": "other"})
    assert missing.status_code == 404 and missing.json() == {"detail": "no database named 'other': this server offers shop"}


def test_several_databases_are_picked_by_name(tmp_path) -> None:
    a = make_sqlite(tmp_path / "a.sqlite")
    b = tmp_path / "b.sqlite"
    make_sqlite(b)
    import sqlite3

    with sqlite3.connect(b) as con:
        con.execute("DELETE FROM singer WHERE age > 40")
    service = make_service(tmp_path, EndlessLLM(fenced(OLD_SINGERS)), databases=[f"a={a}", f"b={b}"])
    try:
        client = TestClient(make_app(service), base_url="http://127.0.0.1")
        assert len(client.post("/api/v1/ask", json={"db": "a", "question": "Old singers?"}).json()["rows"]) == 3
        assert client.post("/api/v1/ask", json={"db": "b", "question": "Old singers?"}).json()["rows"] == []
        unnamed = client.post("/api/v1/ask", json={"question": "Old singers?"})
        assert unnamed.status_code == 404 and unnamed.json()["detail"] == "name a database: one of a, b"
    finally:
        service.close()


# --- ask ------------------------------------------------------------------------------------------------
def test_ask_answers_and_records_the_answer_in_the_history(client, service) -> None:
    response = client.post("/api/v1/ask", json={"question": "Which singers are older than 40?"})
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == ANSWER_KEYS
    assert answer["sql"] == OLD_SINGERS and answer["db"] == "shop" and not answer["abstained"]
    assert answer["columns"] == ["name"] and answer["rows"] == [["Joe Sharp"], ["O'Neil"], ["Rose White"]]
    assert answer["candidates"][0]["origin"] == "greedy" and answer["confidence"] == 1.0
    assert answer["timings"]["total"] > 0 and len(answer["conversation_id"]) == 32
    entry = client.get(f"/api/v1/history/{answer['id']}").json()
    assert entry["question"] == "Which singers are older than 40?" and entry["sql"] == OLD_SINGERS
    assert entry["rows"] == answer["rows"] and entry["source"] == "ask" and entry["label"] == "shop"
    assert entry["conversation_id"] == answer["conversation_id"]
    listed = client.get("/api/v1/history").json()["entries"]
    assert [e["id"] for e in listed] == [answer["id"]]


def test_history_csv_download_neutralizes_formulas(tmp_path) -> None:
    llm = EndlessLLM(fenced("SELECT name, age, '=HYPERLINK(\"http://x\")' AS link FROM singer WHERE singer_id < 3 "
                            "ORDER BY singer_id"))
    service = make_service(tmp_path, llm)
    try:
        client = TestClient(make_app(service), base_url="http://127.0.0.1")
        answer = client.post("/api/v1/ask", json={"question": "names and ages"}).json()
        download = client.get(f"/api/v1/history/{answer['id']}.csv")
        assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
        assert download.headers["content-disposition"] == f'attachment; filename="sqlwright-{answer["id"]}.csv"'
        rows = list(csv.reader(io.StringIO(download.text)))
        assert rows == [["name", "age", "link"], ["Joe Sharp", "52", "'=HYPERLINK(\"http://x\")"],
                        ["Timbaland", "32", "'=HYPERLINK(\"http://x\")"]]
        assert client.get("/api/v1/history/0123abcd.csv").status_code == 404
    finally:
        service.close()


def test_event_stream_sends_the_stages_in_order_then_the_answer(client) -> None:
    with client.stream("POST", "/api/v1/ask/stream", json={"question": "Which singers are older than 40?"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response.iter_lines())
    kinds = [kind for kind, _ in events]
    assert kinds == ["schema", "examples", "candidate", "vote", "answer"]
    data = dict(events)
    assert sorted(data["schema"]["tables"]) == ["concert", "singer"]
    assert data["candidate"]["sql"] == OLD_SINGERS and data["candidate"]["ok"] is True
    answer = data["answer"]
    assert set(answer) == ANSWER_KEYS and answer["rows"] == [["Joe Sharp"], ["O'Neil"], ["Rose White"]]
    assert client.get(f"/api/v1/history/{answer['id']}").json()["sql"] == OLD_SINGERS


def test_summary_event_comes_before_the_answer(tmp_path) -> None:
    def reply(messages) -> str:
        if "one short, plain sentence" in messages[0]["content"]:
            return "Three singers are older than 40."
        return fenced(OLD_SINGERS)

    service = make_service(tmp_path, EndlessLLM(reply))
    try:
        client = TestClient(make_app(service), base_url="http://127.0.0.1")
        with client.stream("POST", "/api/v1/ask/stream", json={"question": "Who is over 40?", "summarize": True}) as r:
            events = read_events(r.iter_lines())
        assert [k for k, _ in events][-3:] == ["vote", "summary", "answer"]
        assert dict(events)["answer"]["summary"] == "Three singers are older than 40."
        plain = client.post("/api/v1/ask", json={"question": "Who is over 40?"}).json()
        assert plain["summary"] is None  # the server's default (--summarize) is off
    finally:
        service.close()


def test_event_stream_refuses_before_streaming(client) -> None:
    response = client.post("/api/v1/ask/stream", json={"question": "  "})
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "the question is empty; ask something about the data"}


def test_follow_up_sends_the_earlier_question_and_sql(client, llm) -> None:
    first = client.post("/api/v1/ask", json={"question": "Which singers are older than 40?"}).json()
    llm.reply = fenced("SELECT name FROM singer WHERE age > 40 AND country = 'France'")
    second = client.post("/api/v1/ask", json={"question": "and only those from France?",
                                              "conversation_id": first["conversation_id"]}).json()
    assert second["conversation_id"] == first["conversation_id"] and second["rows"] == [["Rose White"]]
    messages = llm.requests[-1]["messages"]
    earlier = [m["content"] for m in messages[:-1]]
    assert any("Which singers are older than 40?" in text for text in earlier)
    assert any(OLD_SINGERS in text and m["role"] == "assistant" for text, m in zip(earlier, messages[:-1], strict=True))
    assert "and only those from France?" in messages[-1]["content"]
    # A new conversation starts afresh.
    client.post("/api/v1/ask", json={"question": "How many concerts?"})
    assert "Which singers are older than 40?" not in prompt_text(llm)
    history = client.get("/api/v1/history", params={"conversation_id": first["conversation_id"]}).json()["entries"]
    assert [e["question"] for e in history] == ["and only those from France?", "Which singers are older than 40?"]


# --- feedback -----------------------------------------------------------------------------------------
def test_thumbs_up_stores_the_pair_and_the_next_ask_shows_it_to_the_model(client, llm, service) -> None:
    answer = client.post("/api/v1/ask", json={"question": "Which singers are older than 40?"}).json()
    assert "Which singers are older than 40?" not in prompt_text(llm).split("Question:")[0]
    response = client.post("/api/v1/feedback", json={"id": answer["id"], "rating": "up"})
    assert response.status_code == 200
    body = response.json()
    assert body["feedback"]["rating"] == "up" and body["feedback"]["history_id"] == answer["id"]
    example = body["example"]
    assert example["source"] == "feedback" and example["sql"] == OLD_SINGERS
    assert example["question"] == "Which singers are older than 40?"
    assert body["feedback"]["example_id"] == example["id"]
    assert [e["id"] for e in client.get("/api/v1/examples").json()["examples"]] == [example["id"]]

    again = client.post("/api/v1/ask", json={"question": "Which singers are older than 45?"}).json()
    assert [e["id"] for e in again["examples"]] == [example["id"]]
    shown_before_question = prompt_text(llm).split("Which singers are older than 45?")[0]
    assert "Which singers are older than 40?" in shown_before_question and OLD_SINGERS in shown_before_question
    assert [f.rating for f in service.store.feedback(answer["id"])] == ["up"]


def test_thumbs_down_with_corrected_sql_checks_it_then_stores_it(client, service) -> None:
    answer = client.post("/api/v1/ask", json={"question": "Singers from France?"}).json()
    refused = client.post("/api/v1/feedback", json={"id": answer["id"], "rating": "down", "sql": "DELETE FROM singer"})
    assert refused.status_code == 400 and refused.json()["detail"].startswith("the SQL is refused: Refused")
    failing = client.post("/api/v1/feedback", json={"id": answer["id"], "rating": "down",
                                                     "sql": "SELECT nope FROM singer"})
    assert failing.status_code == 400 and failing.json()["detail"].startswith("the SQL does not run")
    assert client.get("/api/v1/examples").json()["examples"] == []
    corrected = "SELECT name FROM singer WHERE country = 'France'"
    response = client.post("/api/v1/feedback", json={"id": answer["id"], "rating": "down", "sql": corrected,
                                                      "comment": "only France"})
    assert response.status_code == 200
    body = response.json()
    assert body["example"]["sql"] == corrected and body["example"]["source"] == "feedback"
    assert body["example"]["question"] == "Singers from France?"
    assert body["feedback"]["corrected_sql"] == corrected and body["feedback"]["comment"] == "only France"
    plain_down = client.post("/api/v1/feedback", json={"id": answer["id"], "rating": "down"}).json()
    assert plain_down["example"] is None
    assert [f.rating for f in service.store.feedback(answer["id"])] == ["down", "down"]


def test_feedback_errors(client) -> None:
    unknown = client.post("/api/v1/feedback", json={"id": "feedc0de", "rating": "up"})
    assert unknown.status_code == 404 and "feedc0de" in unknown.json()["detail"]
    answer = client.post("/api/v1/ask", json={"question": "Old singers?"}).json()
    bad_rating = client.post("/api/v1/feedback", json={"id": answer["id"], "rating": "meh"})
    assert bad_rating.status_code == 422 and bad_rating.json()["detail"].startswith("body field 'rating'")
    run = client.post("/api/v1/sql", json={"sql": "SELECT 1 AS x"}).json()
    no_question = client.post("/api/v1/feedback", json={"id": run["id"], "rating": "down", "sql": "SELECT 2"})
    assert no_question.status_code == 400 and "no question" in no_question.json()["detail"]


def test_thumbs_up_on_an_abstention_records_feedback_without_an_example(tmp_path) -> None:
    service = make_service(tmp_path, EndlessLLM("-- UNANSWERABLE: there is no salary column"))
    try:
        client = TestClient(make_app(service), base_url="http://127.0.0.1")
        answer = client.post("/api/v1/ask", json={"question": "What is the mean salary?"}).json()
        assert answer["abstained"] and answer["sql"] is None and answer["reason"]
        body = client.post("/api/v1/feedback", json={"id": answer["id"], "rating": "up"}).json()
        assert body["example"] is None and body["feedback"]["rating"] == "up"
    finally:
        service.close()


# --- SQL a person wrote --------------------------------------------------------------------------------
def test_sql_runs_through_the_guard_and_is_recorded(client) -> None:
    run = client.post("/api/v1/sql", json={"sql": "SELECT count(*) AS n FROM singer"})
    assert run.status_code == 200
    body = run.json()
    assert set(body) == {"id", "db", "sql", "columns", "rows", "truncated", "seconds", "chart"}
    assert body["rows"] == [[5]] and body["columns"] == ["n"] and body["truncated"] is False
    assert body["chart"] is None  # one cell: nothing to draw
    entry = client.get(f"/api/v1/history/{body['id']}").json()
    assert entry["source"] == "sql" and entry["sql"] == "SELECT count(*) AS n FROM singer" and entry["rows"] == [[5]]
    refused = client.post("/api/v1/sql", json={"sql": "UPDATE singer SET age = 0"})
    assert refused.status_code == 400 and refused.json()["detail"].startswith("Refused")
    failing = client.post("/api/v1/sql", json={"sql": "SELECT nope FROM singer"})
    assert failing.status_code == 400 and "nope" in failing.json()["detail"]
    assert len(client.get("/api/v1/history").json()["entries"]) == 1  # refusals and failures are not recorded
    valid = client.post("/api/v1/sql", json={"sql": "SELECT 1", "validate_only": True}).json()
    assert valid == {"db": "shop", "valid": True, "detail": None}
    invalid = client.post("/api/v1/sql", json={"sql": "DROP TABLE singer", "validate_only": True}).json()
    assert invalid["valid"] is False and "DROP" in invalid["detail"]
    assert client.post("/api/v1/sql", json={"sql": "  "}).json() == {"detail": "the SQL is empty"}


def test_sql_result_gets_a_chart_by_its_column_types(client) -> None:
    body = client.post("/api/v1/sql", json={"sql": "SELECT name, age FROM singer ORDER BY singer_id"}).json()
    assert body["chart"]["kind"] == "bar"
    assert body["chart"]["x"]["field"] == "name" and [y["field"] for y in body["chart"]["y"]] == ["age"]
    assert client.get(f"/api/v1/history/{body['id']}").json()["chart"] == body["chart"]


def test_sql_rows_are_capped_and_flagged(tmp_path) -> None:
    service = make_service(tmp_path, EndlessLLM(fenced("SELECT 1")))
    service.settings = service.settings.model_copy(update={"max_rows": 2})
    try:
        client = TestClient(make_app(service), base_url="http://127.0.0.1")
        body = client.post("/api/v1/sql", json={"sql": "SELECT name FROM singer ORDER BY singer_id"}).json()
        assert body["rows"] == [["Joe Sharp"], ["Timbaland"]] and body["truncated"] is True
    finally:
        service.close()


# --- history paging ------------------------------------------------------------------------------------
def test_history_filters_and_pages(client) -> None:
    ids = [client.post("/api/v1/ask", json={"question": f"question {i}"}).json()["id"] for i in range(5)]
    newest_first = list(reversed(ids))
    page = client.get("/api/v1/history", params={"limit": 2}).json()["entries"]
    assert [e["id"] for e in page] == newest_first[:2]
    # a listing carries no rows, only their count; the entry itself has them
    assert "rows" not in page[0] and page[0]["row_count"] == len(client.get(f"/api/v1/history/{page[0]['id']}").json()["rows"])
    page2 = client.get("/api/v1/history", params={"limit": 2, "before": page[-1]["id"]}).json()["entries"]
    assert [e["id"] for e in page2] == newest_first[2:4]
    assert [e["id"] for e in client.get("/api/v1/history", params={"db": "shop"}).json()["entries"]] == newest_first
    assert client.get("/api/v1/history", params={"before": "0badc0de"}).status_code == 404
    assert client.get("/api/v1/history", params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/history", params={"db": "nope"}).status_code == 404


# --- examples and notes --------------------------------------------------------------------------------
def test_examples_crud(client) -> None:
    added = client.post("/api/v1/examples", json={"question": "How many singers?", "sql": "SELECT count(*) FROM singer"})
    assert added.status_code == 200 and added.json()["new"] is True
    example = added.json()["example"]
    assert example["source"] == "taught" and example["verified"] is True
    again = client.post("/api/v1/examples", json={"question": "How many singers?", "sql": "SELECT count(*) FROM singer"})
    assert again.json() == {"example": example, "new": False}
    assert [e["id"] for e in client.get("/api/v1/examples").json()["examples"]] == [example["id"]]
    refused = client.post("/api/v1/examples", json={"question": "Wipe", "sql": "DELETE FROM singer"})
    assert refused.status_code == 400 and refused.json()["detail"].startswith("the SQL is refused")
    empty = client.post("/api/v1/examples", json={"question": " ", "sql": "SELECT 1"})
    assert empty.status_code == 400
    assert client.delete(f"/api/v1/examples/{example['id']}").json() == {"removed": example["id"]}
    gone = client.delete(f"/api/v1/examples/{example['id']}")
    assert gone.status_code == 404 and gone.json()["detail"] == f"no example {example['id']} is stored for the database 'shop'"
    assert client.delete(f"/api/v1/examples/{2**70}").status_code == 404
    assert client.get("/api/v1/examples").json() == {"examples": []}


def test_notes_crud_and_the_model_sees_them(client, llm) -> None:
    added = client.post("/api/v1/notes", json={"text": "An old singer is older than 40."}).json()
    assert added["new"] is True and added["note"]["text"] == "An old singer is older than 40."
    assert client.post("/api/v1/notes", json={"text": "An old singer is older than 40."}).json()["new"] is False
    client.post("/api/v1/ask", json={"question": "Which singers are old?"})
    assert "An old singer is older than 40." in prompt_text(llm)
    note_id = added["note"]["id"]
    assert client.delete(f"/api/v1/notes/{note_id}").json() == {"removed": note_id}
    assert client.get("/api/v1/notes").json() == {"notes": []}
    assert client.delete(f"/api/v1/notes/{note_id}").status_code == 404


# --- the page -----------------------------------------------------------------------------------------
def test_page_and_assets_are_served_with_a_strict_policy(client) -> None:
    from sqlwright.serve.app import STATIC_DIR

    if not (STATIC_DIR / "index.html").is_file():
        pytest.skip("the web page is not installed yet")
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    for asset in sorted(p.name for p in STATIC_DIR.iterdir() if p.is_file()):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200, asset
        assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/%2e%2e/app.py").status_code == 404


def test_api_docs_render_offline_from_packaged_assets(client) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "/docs-assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200


def test_openapi_schema_lists_every_endpoint(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/api/v1/info", "/api/v1/databases", "/api/v1/schema", "/api/v1/ask", "/api/v1/ask/stream",
            "/api/v1/sql", "/api/v1/history", "/api/v1/history/{entry_id}", "/api/v1/history/{entry_id}.csv",
            "/api/v1/feedback", "/api/v1/examples", "/api/v1/examples/{example_id}", "/api/v1/notes",
            "/api/v1/notes/{note_id}"} <= set(paths)
