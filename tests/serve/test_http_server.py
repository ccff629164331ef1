"""What stands between a client and the model, tested through FastAPI's TestClient and through a real
uvicorn server on a loopback port: the token, the Host allow-list, the body cap, the bounded queue (429 with
Retry-After), the deadline (504), and a client that goes away (the model stops)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from http_support import (
    TOKEN,
    EndlessLLM,
    LiveServer,
    SlowLLM,
    fenced,
    json_body,
    make_app,
    make_service,
    raw_request,
    read_events,
    use_bm25,
)

ANSWER = fenced("SELECT name FROM singer WHERE age > 40")
TRANSPORTS = ["testclient", "uvicorn"]


@pytest.fixture(autouse=True)
def _bm25(monkeypatch):
    use_bm25(monkeypatch)


@contextlib.contextmanager
def serving(app, transport: str) -> Iterator[httpx.Client]:
    """A client of `app`: FastAPI's TestClient, or httpx over loopback to uvicorn in a thread."""
    if transport == "testclient":
        with TestClient(app, base_url="http://127.0.0.1") as client:
            yield client
    else:
        with LiveServer(app) as server, server.client() as client:
            yield client


@pytest.fixture()
def service(tmp_path):
    service = make_service(tmp_path, EndlessLLM(ANSWER))
    yield service
    service.close()


# --- token -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_token_is_required_under_api_and_compared_in_constant_time(service, transport, monkeypatch) -> None:
    import hmac

    compared: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr("sqlwright.serve.security.hmac.compare_digest", spy)
    with serving(make_app(service, token=TOKEN), transport) as client:
        missing = client.get("/api/v1/info")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json() == {"detail": "a bearer token is required: send 'Authorization: Bearer <token>'"}
        wrong = client.get("/api/v1/info", headers={"Authorization": "Bearer " + TOKEN[:-1] + "y"})
        assert wrong.status_code == 401
        assert compared == [((TOKEN[:-1] + "y").encode(), TOKEN.encode())]
        assert client.get("/api/v1/info", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
        assert client.post("/api/v1/ask", json={"question": "x"}).status_code == 401
        good = client.get("/api/v1/info", headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200 and good.json()["token_required"] is True
        assert client.get("/healthz").status_code == 200  # public: a load balancer's probe
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/").status_code in (200, 404)  # the page (if installed) holds no data
    assert len(service.store.history()) == 0


# --- Host allow-list ---------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_host_allow_list_refuses_other_names(service, transport) -> None:
    with serving(make_app(service, extra_hosts=["sqlwright.internal"]), transport) as client:
        evil = client.get("/api/v1/info", headers={"Host": "evil.example:8000"})
        assert evil.status_code == 421
        assert evil.json()["detail"].startswith("this server does not answer to the host 'evil.example'")
        assert client.get("/healthz", headers={"Host": "evil.example"}).status_code == 421
        assert client.get("/api/v1/info", headers={"Host": "localhost:1234"}).status_code == 200
        assert client.get("/api/v1/info", headers={"Host": "sqlwright.internal"}).status_code == 200
        assert client.get("/api/v1/info", headers={"Host": "[::1]:80"}).status_code == 200


# --- body cap -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_body_cap_with_content_length_and_chunked(service, transport) -> None:
    big = json_body({"question": "x" * 5000})

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 500):
            yield big[i:i + 500]

    with serving(make_app(service, max_body_bytes=2000), transport) as client:
        sized = client.post("/api/v1/ask", content=big, headers={"Content-Type": "application/json"})
        assert sized.status_code == 413 and sized.json() == {"detail": "the request body is over 2,000 bytes"}
        chunked = client.post("/api/v1/ask", content=chunks(), headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413 and chunked.json() == {"detail": "the request body is over 2,000 bytes"}
        small = client.post("/api/v1/ask", content=json_body({"question": "old singers?"}),
                            headers={"Content-Type": "application/json"})
        assert small.status_code == 200
        small_chunked = client.post("/api/v1/sql", content=iter([b'{"sql": ', b'"SELECT 1 AS x"}']),
                                    headers={"Content-Type": "application/json"})
        assert small_chunked.status_code == 200 and small_chunked.json()["rows"] == [[1]]
    assert len(service.store.history()) == 2


def test_chunked_body_over_the_cap_on_a_raw_connection(service) -> None:
    """413 at the read that passes the cap, while the client is still sending (no 400 or 500 from the app)."""
    with LiveServer(make_app(service, max_body_bytes=2000)) as server:
        head = ("POST /api/v1/ask HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n"
                "Transfer-Encoding: chunked")
        chunk = b"x" * 1000
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3))
        with raw_request(server.port, head, body) as sock:
            reply = b""
            while not reply.endswith(b"}") and (data := sock.recv(65536)):
                reply += data
        reply = reply.decode()
        assert reply.startswith("HTTP/1.1 413"), reply
        assert reply.endswith('{"detail": "the request body is over 2,000 bytes"}')


# --- bounded queue ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_queue_full_is_429_with_retry_after(tmp_path, transport) -> None:
    llm = SlowLLM(ANSWER, delay=1.5)
    service = make_service(tmp_path, llm, queue_size=1)
    results: dict[str, httpx.Response] = {}
    try:
        with serving(make_app(service), transport) as client:
            def ask(name: str) -> None:
                results[name] = client.post("/api/v1/ask", json={"question": f"old singers {name}?"})

            running = threading.Thread(target=ask, args=("running",))
            running.start()
            assert llm.started.wait(10)
            waiting = threading.Thread(target=ask, args=("waiting",))
            waiting.start()
            deadline = time.monotonic() + 10
            while service.worker.waiting < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            refused = client.post("/api/v1/ask", json={"question": "one too many"})
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json()["detail"].startswith("the model is busy: 1 requests are already waiting")
            streamed = client.post("/api/v1/ask/stream", json={"question": "one too many, streamed"})
            assert streamed.status_code == 429 and "retry-after" in streamed.headers
            running.join(20)
            waiting.join(20)
        assert results["running"].status_code == 200 and results["waiting"].status_code == 200
        assert llm.finished == 2
        assert sorted(e.question for e in service.store.history()) == ["old singers running?", "old singers waiting?"]
    finally:
        service.close()


# --- deadline -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_deadline_is_504_and_stops_the_model(tmp_path, transport) -> None:
    llm = SlowLLM(ANSWER, delay=30)
    service = make_service(tmp_path, llm, deadline=1.0)
    try:
        with serving(make_app(service), transport) as client:
            started = time.monotonic()
            response = client.post("/api/v1/ask", json={"question": "old singers?"})
            assert response.status_code == 504
            assert time.monotonic() - started < 5
            assert response.json()["detail"].startswith("no answer within the server's deadline of 1 s")
            assert llm.stopped.wait(5)
            llm.stopped.clear()
            with client.stream("POST", "/api/v1/ask/stream", json={"question": "old singers?"}) as stream:
                events = read_events(stream.iter_lines())
            assert [k for k, _ in events] == ["schema", "examples", "error"]
            assert events[-1][1]["status"] == 504 and "deadline" in events[-1][1]["detail"]
            assert llm.stopped.wait(5)
        assert service.store.history() == []
    finally:
        service.close()


def test_a_question_that_waited_past_its_deadline_never_reaches_the_model(tmp_path) -> None:
    llm = SlowLLM(ANSWER, delay=1.5, stoppable=False)  # the first question holds the model past both deadlines
    service = make_service(tmp_path, llm, deadline=1.0)
    try:
        with LiveServer(make_app(service)) as server, server.client() as client:
            first = threading.Thread(target=client.post, args=("/api/v1/ask",), kwargs={"json": {"question": "a?"}})
            first.start()
            assert llm.started.wait(5)
            second = client.post("/api/v1/ask", json={"question": "b?"})
            first.join(10)
            deadline = time.monotonic() + 5
            while (service.worker.busy or service.worker.waiting) and time.monotonic() < deadline:
                time.sleep(0.01)
        assert second.status_code == 504
        assert llm.calls == 1  # the second question was dropped from the queue, not sent to the model
        assert service.store.history() == []  # the first one's late answer went to nobody and is not recorded
    finally:
        service.close()


# --- client gone ----------------------------------------------------------------------------------------
def test_client_disconnect_stops_generation(tmp_path) -> None:
    llm = SlowLLM(ANSWER, delay=30)
    service = make_service(tmp_path, llm)
    try:
        with LiveServer(make_app(service)) as server:
            body = json_body({"question": "old singers?"})
            sock = raw_request(server.port, "POST /api/v1/ask HTTP/1.1\nHost: 127.0.0.1\nContent-Type: "
                               f"application/json\nContent-Length: {len(body)}", body)
            assert llm.started.wait(10)
            sock.close()
            assert llm.stopped.wait(5), "the model went on after its client left"
            deadline = time.monotonic() + 5
            while service.worker.busy and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not service.worker.busy

            llm.started.clear()
            llm.stopped.clear()
            with server.client() as client, client.stream("POST", "/api/v1/ask/stream",
                                                           json={"question": "old singers?"}) as stream:
                lines = stream.iter_lines()
                assert next(lines) == "event: schema"
                assert llm.started.wait(10)
            assert llm.stopped.wait(5), "the model went on after the event stream's client left"
        assert service.store.history() == []  # no answer was given, none recorded
    finally:
        service.close()


# --- the event stream over real HTTP -----------------------------------------------------------------
def test_event_stream_over_http_arrives_in_order(service) -> None:
    with LiveServer(make_app(service, token=TOKEN)) as server, server.client() as client, client.stream(
            "POST", "/api/v1/ask/stream", json={"question": "old singers?"},
            headers={"Authorization": f"Bearer {TOKEN}"}) as stream:
        assert stream.headers["cache-control"] == "no-cache"
        events = read_events(stream.iter_lines())
    assert [k for k, _ in events] == ["schema", "examples", "candidate", "vote", "answer"]
    assert events[-1][1]["id"] == service.store.history()[0].id
