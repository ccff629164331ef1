"""serve/security.py: where a server may listen, the token check, the Host allow-list and the body cap of the
RequestGuard, driven as plain ASGI (the HTTP tests drive it through FastAPI and uvicorn)."""

from __future__ import annotations

import asyncio
import hmac
import json

import pytest

from sqlwright.errors import ConfigError
from sqlwright.serve.security import (
    RequestGuard,
    allowed_host_names,
    check_bind,
    host_name,
    is_loopback,
    token_matches,
)

TOKEN = "t" * 20


# --- bind -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST", "api.localhost", "::1",
                                  "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)
    check_bind(host, None)  # no token needed on loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "10.0.0.1", "example.org", "localhost.evil.org"])
def test_beyond_loopback_needs_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="without a token") as info:
        check_bind(host, None)
    assert "\n" not in str(info.value) and "--token" in str(info.value)
    check_bind(host, TOKEN)


@pytest.mark.parametrize("token", ["pässwörd-pässwörd-pässwörd", "a token with spaces in it", "tab\tseparated-token-x",
                                   "line\nbreak-in-the-token-x"])
def test_tokens_a_header_cannot_carry_are_refused(token: str) -> None:
    with pytest.raises(ConfigError, match="printable ASCII without spaces"):
        check_bind("0.0.0.0", token)


def test_short_tokens_are_refused_even_on_loopback() -> None:
    with pytest.raises(ConfigError, match="too short .5 characters.: use at least 16"):
        check_bind("127.0.0.1", "abcde")
    check_bind("127.0.0.1", "x" * 16)


# --- token --------------------------------------------------------------------------------------------
def test_token_matches_only_the_bearer_token() -> None:
    assert token_matches(f"Bearer {TOKEN}", TOKEN)
    assert token_matches(f"bearer   {TOKEN}  ", TOKEN)
    assert not token_matches(None, TOKEN)
    assert not token_matches("", TOKEN)
    assert not token_matches(TOKEN, TOKEN)  # no scheme
    assert not token_matches(f"Basic {TOKEN}", TOKEN)
    assert not token_matches(f"Bearer {TOKEN}x", TOKEN)
    assert not token_matches(f"Bearer {TOKEN[:-1]}", TOKEN)
    assert not token_matches("Bearer \udcff\u00e9", TOKEN)  # undecodable text is compared, not a crash


def test_token_is_compared_in_constant_time(monkeypatch) -> None:
    calls = []
    real_compare = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr("sqlwright.serve.security.hmac.compare_digest", spy)
    assert not token_matches("Bearer nope", TOKEN)
    assert token_matches(f"Bearer {TOKEN}", TOKEN)
    assert calls == [(b"nope", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


# --- Host names ----------------------------------------------------------------------------------------
def test_host_names_a_server_answers_to() -> None:
    assert allowed_host_names("127.0.0.1") == ("127.0.0.1", "::1", "localhost")
    assert allowed_host_names("10.1.2.3", ["Example.org ", ""]) == ("10.1.2.3", "127.0.0.1", "::1", "example.org",
                                                                   "localhost")
    assert allowed_host_names("0.0.0.0") is None  # every interface, no names given: any Host
    assert allowed_host_names("::") is None
    assert allowed_host_names("0.0.0.0", ["db.example.org"]) == ("127.0.0.1", "::1", "db.example.org", "localhost")
    assert allowed_host_names("127.0.0.1", ["*"]) is None
    assert allowed_host_names("[::1]") == ("127.0.0.1", "::1", "localhost")


@pytest.mark.parametrize(("header", "name"), [("example.org:8000", "example.org"), ("Example.ORG", "example.org"),
                                               ("[::1]:80", "::1"), ("[::1]", "::1"), ("127.0.0.1", "127.0.0.1"),
                                               ("", "")])
def test_host_name_drops_the_port(header: str, name: str) -> None:
    assert host_name(header) == name


# --- the guard as ASGI -----------------------------------------------------------------------------------
class EchoApp:
    """Reads the whole body and answers 200 with its length (or records that it saw a disconnect)."""

    def __init__(self) -> None:
        self.calls = 0
        self.saw_disconnect = False

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        if scope["type"] == "websocket":
            await send({"type": "websocket.accept"})
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.saw_disconnect = True
                # what FastAPI would do: answer an error; the guard must drop it
                await send({"type": "http.response.start", "status": 400, "headers": []})
                await send({"type": "http.response.body", "body": b"client gone"})
                raise RuntimeError("read after the client went away")
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})


def call(app, *, path: str = "/api/v1/x", headers: dict[str, str] | None = None, chunks: list[bytes] = (b"",),
         kind: str = "http") -> tuple[list[dict], int | None, dict]:
    """Run one request through `app`: (messages sent, status, JSON body or {})."""
    sent: list[dict] = []
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    scope = {"type": kind, "path": path, "method": "POST",
             "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]}

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next((m["status"] for m in sent if m["type"] == "http.response.start"), None)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {"raw": body.decode()}
    return sent, status, data


def guard(app, **kwargs) -> RequestGuard:
    kwargs.setdefault("token", TOKEN)
    kwargs.setdefault("allowed_hosts", allowed_host_names("127.0.0.1"))
    return RequestGuard(app, **kwargs)


HOST = {"host": "127.0.0.1:8000"}
AUTH = {**HOST, "authorization": f"Bearer {TOKEN}"}


def test_guard_lets_a_good_request_through() -> None:
    app = EchoApp()
    _, status, _ = call(guard(app), headers=AUTH, chunks=[b"abc", b"de"])
    assert status == 200 and app.calls == 1


def test_guard_refuses_a_missing_or_wrong_token_before_the_app() -> None:
    app = EchoApp()
    sent, status, data = call(guard(app), headers=HOST)
    assert status == 401 and data == {"detail": "a bearer token is required: send 'Authorization: Bearer <token>'"}
    assert (b"www-authenticate", b"Bearer") in sent[0]["headers"]
    assert call(guard(app), headers={**HOST, "authorization": "Bearer wrong"})[1] == 401
    assert app.calls == 0
    assert call(guard(app, token=None), headers=HOST)[1] == 200  # no token configured: none needed


def test_guard_public_paths_need_no_token_but_dot_dot_is_never_public() -> None:
    app = EchoApp()
    protected = guard(app, public_paths=("/healthz",), public_prefixes=("/static/",))
    assert call(protected, path="/healthz", headers=HOST)[1] == 200
    assert call(protected, path="/static/app.js", headers=HOST)[1] == 200
    assert call(protected, path="/static/../api/v1/info", headers=HOST)[1] == 401
    assert call(protected, path="/healthz/x", headers=HOST)[1] == 401


def test_guard_refuses_hosts_not_allowed_even_public_paths() -> None:
    app = EchoApp()
    _, status, data = call(guard(app, public_paths=("/healthz",)), path="/healthz", headers={"host": "evil.example"})
    assert status == 421 and "'evil.example'" in data["detail"] and "--allow-host" in data["detail"]
    assert call(guard(app), headers={"authorization": f"Bearer {TOKEN}"})[1] == 421  # no Host at all
    assert call(guard(app, allowed_hosts=None), headers={"host": "anything.example",
                                                         "authorization": f"Bearer {TOKEN}"})[1] == 200


def test_guard_body_cap_by_content_length() -> None:
    app = EchoApp()
    _, status, data = call(guard(app, max_body_bytes=10), headers={**AUTH, "content-length": "11"}, chunks=[b"x" * 11])
    assert status == 413 and data == {"detail": "the request body is over 10 bytes"} and app.calls == 0
    assert call(guard(app, max_body_bytes=10), headers={**AUTH, "content-length": "ten"})[1] == 400
    assert call(guard(app, max_body_bytes=10), headers={**AUTH, "content-length": "10"}, chunks=[b"x" * 10])[1] == 200


def test_guard_body_cap_while_a_chunked_body_is_read() -> None:
    """Past the cap the guard answers 413 itself; the app sees the client gone and what it then sends or raises
    goes nowhere (FastAPI would turn the failed read into a 400, Starlette's error middleware into a 500)."""
    app = EchoApp()
    sent, status, data = call(guard(app, max_body_bytes=10), headers=AUTH, chunks=[b"x" * 6, b"x" * 6, b"x" * 6])
    assert status == 413 and data == {"detail": "the request body is over 10 bytes"}
    assert app.saw_disconnect
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


def test_guard_closes_a_refused_websocket_and_passes_lifespan() -> None:
    app = EchoApp()
    sent, _, _ = call(guard(app), headers=HOST, kind="websocket")
    assert sent == [{"type": "websocket.close", "code": 1008,
                     "reason": "401: a bearer token is required: send 'Authorization: Bearer <token>'"}]
    sent, _, _ = call(guard(app), headers=AUTH, kind="websocket")
    assert sent == [{"type": "websocket.accept"}]

    seen = []

    async def lifespan_app(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(guard(lifespan_app)({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]
