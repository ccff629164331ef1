"""What every network face (HTTP API, web page, MCP over HTTP) checks before a request reaches sqlwright:
where it may listen, who may call it, which Host it answers to, and how large a request may be.

    check_bind(host, token)            # a bind beyond loopback needs a token (ConfigError otherwise)
    app = RequestGuard(app, token=…, allowed_hosts=…, max_body_bytes=…)

The guard is plain ASGI middleware, so FastAPI's app and the MCP SDK's Starlette app share it. Its refusals
are JSON `{"detail": "…"}` (FastAPI's error shape): 401 without the right bearer token, 421 for a Host that
is not allowed (DNS rebinding: a web page on another site that resolves its name to 127.0.0.1), 413 for a
body over the cap.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from sqlwright.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
DEFAULT_MAX_BODY_BYTES = 1_000_000  # a question is at most max_question_chars; SQL a person writes fits too
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """True when `host` (a name or an address) is this machine only: localhost, 127.0.0.0/8 or ::1."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token (ConfigError: one line, exit 2), and refuse a token
    short enough to guess."""
    if token is not None and not all("!" <= ch <= "~" for ch in token):
        # what an Authorization header carries as is (RFC 6750's token characters are a subset)
        raise ConfigError("the token must be printable ASCII without spaces, e.g. "
                          "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"the token is too short ({len(token)} characters): use at least {MIN_TOKEN_CHARS}, "
                          "e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if not is_loopback(host) and not token:
        raise ConfigError(f"refusing to listen on {host or '0.0.0.0'} without a token: anyone who can reach "
                          "the port could query your databases; give --token (or SQLWRIGHT_TOKEN), or bind "
                          "to 127.0.0.1")


def token_matches(authorization: str | None, token: str) -> bool:
    """True when the Authorization header is `Bearer <token>`; compared in constant time."""
    if not authorization:
        return False
    scheme, _, presented = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode("utf-8", "surrogatepass"),
                               token.encode("utf-8", "surrogatepass"))


def allowed_host_names(bind_host: str, extra: Iterable[str] = ()) -> tuple[str, ...] | None:
    """The Host header names a server answers to: loopback names, the bind address itself and `extra`
    (--allow-host). None means any Host: a server bound to every interface (with a token, as check_bind
    demands) and no --allow-host, which must answer to whatever name its clients use."""
    extra = tuple(h.strip().lower() for h in extra if h.strip())
    if "*" in extra:
        return None
    if bind_host.strip() in WILDCARD_HOSTS and not extra:
        return None
    names = {*LOOPBACK_NAMES, *extra}
    if bind_host.strip() not in WILDCARD_HOSTS:
        names.add(bind_host.strip().strip("[]").lower())
    return tuple(sorted(names))


def host_name(header: str) -> str:
    """The name in a Host header, without its port: `example.org:8000` -> `example.org`, `[::1]:80` -> `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header


async def _send_json(send: Send, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


async def _close_websocket(send: Send, status: int, detail: str,
                           headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "websocket.close", "code": 1008, "reason": f"{status}: {detail}"[:120]})


class BodyTooLarge(Exception):
    """Raised inside the app when a streamed request body passes the cap."""


class RequestGuard:
    """ASGI middleware: Host allow-list, bearer token (except on `public_paths`) and a body cap, checked
    before the wrapped app sees the request. Lifespan and other scope types pass through."""

    def __init__(self, app: ASGIApp, *, token: str | None, allowed_hosts: tuple[str, ...] | None,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 public_paths: Iterable[str] = ("/healthz",), public_prefixes: Iterable[str] = ()) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = None if allowed_hosts is None else frozenset(allowed_hosts)
        self.max_body_bytes = max_body_bytes
        self.public_paths = frozenset(public_paths)
        self.public_prefixes = tuple(public_prefixes)

    def _is_public(self, path: str) -> bool:
        if ".." in path.split("/"):  # /static/../api/…: never public, whatever the router makes of it
            return False
        return path in self.public_paths or any(path.startswith(p) for p in self.public_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        # A WebSocket is refused by closing it before it is accepted (an HTTP response is not a valid reply).
        refuse = _send_json if scope["type"] == "http" else _close_websocket
        if self.allowed_hosts is not None:
            name = host_name(headers.get("host", ""))
            if name not in self.allowed_hosts:
                await refuse(send, 421, f"this server does not answer to the host {name or '(none)'!r}; "
                             "start it with --allow-host to add a name")
                return
        if self.token and not self._is_public(scope.get("path", "")) \
                and not token_matches(headers.get("authorization"), self.token):
            await refuse(send, 401, "a bearer token is required: send 'Authorization: Bearer <token>'",
                         [(b"www-authenticate", b"Bearer")])
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = headers.get("content-length")
        if length is not None:
            try:
                too_large = int(length) > self.max_body_bytes
            except ValueError:
                await _send_json(send, 400, "the Content-Length header is not a number")
                return
            if too_large:
                await _send_json(send, 413, f"the request body is over {self.max_body_bytes:,} bytes")
                return
        await self._call_counting(scope, receive, send)

    async def _call_counting(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass a chunked body through while counting it; past the cap the client gets 413 (unless the app
        had already started its response) and the app sees the client gone.

        The 413 is sent here, at the read that passes the cap, rather than by raising into the app: FastAPI
        turns any error while it reads a body into a 400, and Starlette's error middleware answers a 500
        before the exception would come back up to this guard."""
        seen = 0
        started = False
        refused = False
        cap = self.max_body_bytes

        async def counting_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    refused = True
                    if not started:
                        await _send_json(send, 413, f"the request body is over {cap:,} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:  # the guard answered: what the app sends about the "disconnect" goes nowhere
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started and not refused:
                await _send_json(send, 413, f"the request body is over {cap:,} bytes")
        except Exception:
            if not refused:  # an app's error after the guard refused the body is the guard's doing
                raise
