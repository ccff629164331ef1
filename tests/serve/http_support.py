"""What the HTTP tests share: small SQLite databases, scripted models (quick, slow, endless), a Service built
over them, and a real uvicorn server on a loopback port in a thread."""

from __future__ import annotations

import importlib.util
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import uvicorn

from sqlwright.config import load_settings
from sqlwright.errors import Cancelled
from sqlwright.llm.base import Completion
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import AskOptions
from sqlwright.serve.app import create_app
from sqlwright.serve.databases import DatabaseSet
from sqlwright.serve.security import allowed_host_names
from sqlwright.serve.service import Service
from sqlwright.store import open_state_store

TOKEN = "s3cret-token-of-32-characters-xx"
HERE = Path(__file__).resolve().parent


def fenced(sql: str) -> str:
    return f"```sql\n{sql}\n```"


def make_sqlite(path: Path) -> Path:
    """singer(singer_id, name, country, age) with 5 rows and concert(concert_id, concert_name, year)."""
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, age INTEGER);"
        "INSERT INTO singer VALUES (1, 'Joe Sharp', 'Netherlands', 52), (2, 'Timbaland', 'United States', 32),"
        " (3, 'Justin Brown', 'France', 29), (4, 'Rose White', 'France', 41), (5, 'O''Neil', NULL, 43);"
        "CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INTEGER);"
        "INSERT INTO concert VALUES (1, 'Auditions', 2014), (2, 'Super bootcamp', 2014), (3, 'Home Visits', 2015);")
    con.commit()
    con.close()
    return path


def checksum_sqlite(path: Path) -> str:
    """The catalog and every row of a SQLite file, as one string (order-independent)."""
    con = sqlite3.connect(path)
    try:
        parts = [repr(sorted(con.execute("SELECT type, name, sql FROM sqlite_master").fetchall()))]
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            parts.append(f"{table}:{sorted(map(repr, con.execute(f'SELECT * FROM {table}').fetchall()))}")
    finally:
        con.close()
    return "\n".join(parts)


class EndlessLLM(ScriptedLLM):
    """A scripted model that answers every prompt with `reply(messages)` (never runs out)."""

    def __init__(self, reply: str | Callable[[list], str]) -> None:
        super().__init__()
        self.reply = reply

    def complete(self, messages, *, n: int = 1, **kwargs) -> list[Completion]:
        text = self.reply(messages) if callable(self.reply) else self.reply
        self.queue(*[text] * n)
        return super().complete(messages, n=n, **kwargs)


class SlowLLM(EndlessLLM):
    """An endless scripted model that takes `delay` seconds per call, polling `should_stop` as a real backend
    does between tokens (unless not `stoppable`: a call stuck in one long step): `started` is set when a call
    begins, `stopped` when it was told to stop."""

    def __init__(self, reply: str | Callable[[list], str], delay: float, *, stoppable: bool = True) -> None:
        super().__init__(reply)
        self.delay = delay
        self.stoppable = stoppable
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.calls = 0
        self.finished = 0

    def complete(self, messages, *, n: int = 1, should_stop=None, **kwargs) -> list[Completion]:
        self.calls += 1
        self.started.set()
        end = time.monotonic() + self.delay
        while time.monotonic() < end:
            if self.stoppable and should_stop is not None and should_stop():
                self.stopped.set()
                raise Cancelled("stopped")
            time.sleep(0.01)
        out = super().complete(messages, n=n, should_stop=should_stop, **kwargs)
        self.finished += 1
        return out


def use_bm25(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stored examples ranked by BM25: the tests never load the MiniLM embedding model."""
    monkeypatch.setattr("sqlwright.pipeline.ask.load_default_embedder", lambda cache_dir=None: None)


def make_service(tmp_path: Path, llm, databases: Sequence[str] | None = None, **kwargs) -> Service:
    """A Service over `databases` (default: one SQLite file named `shop`), state in tmp_path/state, greedy
    options (one model call per question), the given scripted `llm`."""
    if databases is None:
        databases = [f"shop={make_sqlite(tmp_path / 'shop.sqlite')}"]
    settings = load_settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", timeout=5)
    kwargs.setdefault("options", AskOptions.greedy())
    return Service(DatabaseSet.open(databases, settings), llm, open_state_store(settings), settings, **kwargs)


def make_app(service: Service, *, token: str | None = None, max_body_bytes: int = 1_000_000,
             extra_hosts: Sequence[str] = ()):
    return create_app(service, token=token, allowed_hosts=allowed_host_names("127.0.0.1", extra_hosts),
                      max_body_bytes=max_body_bytes)


class LiveServer:
    """The app served by uvicorn on 127.0.0.1 (a free port), in a thread, for the length of a `with`."""

    def __init__(self, app) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30), **kwargs)


def raw_request(port: int, head: str, body: bytes = b"") -> socket.socket:
    """A socket that has sent `head` (request line and headers, without the blank line) and `body`."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body)
    return sock


def json_body(data: object) -> bytes:
    """`data` as JSON bytes with every non-ASCII character escaped (lone surrogates survive)."""
    return json.dumps(data).encode()


def read_events(lines: Iterator[str]) -> list[tuple[str, dict]]:
    """Server-sent events from response lines: [(kind, data), ...]; comments skipped."""
    events: list[tuple[str, dict]] = []
    kind = None
    for line in lines:
        if line.startswith(":"):
            continue
        if line.startswith("event: "):
            kind = line[len("event: "):]
        elif line.startswith("data: "):
            events.append((kind or "message", json.loads(line[len("data: "):])))
            kind = None
    return events


def hostile_corpus() -> ModuleType:
    """tests/db/hostile_sql.py, the corpus the guard's own tests use."""
    spec = importlib.util.spec_from_file_location("hostile_sql_for_http", HERE.parent / "db" / "hostile_sql.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
