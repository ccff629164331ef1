"""Fuzzing `open_database`: whatever text it is given, it returns a Database or raises a SqlwrightError
with a one-line message; it never raises anything else, never creates a file, and never waits long.

Server URLs are built to name loopback hosts only (a closed port, or the real servers' ports), and a
name that random text still makes up is answered "not found" at once by a stand-in resolver, so no
example waits on DNS; connection attempts are bounded by the backends' CONNECT_TIMEOUT (5 s).
Examples are derandomized, so CI sees the same inputs every run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlwright.db import Database, dialect_names, get_dialect, open_database
from sqlwright.errors import SqlwrightError

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOWEST_OPEN = 6.0  # seconds: CONNECT_TIMEOUT plus slack; a closed loopback port answers at once


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CLOSED_PORT = _closed_port()
SCHEMES = sorted({s for name in dialect_names() for s in (name, *get_dialect(name).schemes)})
ODD_SCHEMES = ["http", "https", "file", "ftp", "postgress", "sqlit", "SQLITE", "Postgres", "oracle", "", "x"]
SEPARATORS = ["://", ":///", "://///", ":/", ":", "//", "/", ":\\\\", ":\\", ": //", " ://", ":/ /", "::", ""]
USERINFO = ["", "u@", "u:p@", "postgres@", "root@", ":@", "@", "u:p:q@", "%zz@", "%ff@", "u%40x@", "ü:ö@"]
HOSTS = ["127.0.0.1", "localhost", "[::1]", "", "[::1", "::1]", "127.0.0.1,127.0.0.1", "%31%32%37.0.0.1"]
PORTS = ["", ":", f":{CLOSED_PORT}", ":0", ":1", ":65535", ":65536", ":99999999999999999999", ":-1", ":abc",
         ": 5432", ":5432", ":3306", ":٣٣٠٦"]
QUERIES = ["", "?", "?x=1", "?connect_timeout=0", "?connect_timeout=abc", "?sslmode=bogus", "?mode=rw",
           "?options=-c%20default_transaction_read_only%3Doff", "#frag", "?&&=="]


LOOPBACK_NAMES = {None, "", "localhost", "127.0.0.1", "::1", b"localhost", b"127.0.0.1", b"::1"}


@pytest.fixture(scope="module", autouse=True)
def no_dns_lookups():
    """Resolve loopback names only: random text can spell a host name, and a lookup may take seconds."""
    real = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in LOOPBACK_NAMES:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (no lookups in this test)")
        return real(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", loopback_only)
        yield


@pytest.fixture(scope="module")
def playground(tmp_path_factory) -> Path:
    """A folder of things that are not databases, and two that are."""
    root = tmp_path_factory.mktemp("open_fuzz")
    (root / "dir.sqlite").mkdir()
    (root / "dir").mkdir()
    (root / "notes.db").write_text("not a database at all\n" * 50)
    (root / "bad.duckdb").write_bytes(b"\x00garbage\xff" * 500)
    (root / "empty.sqlite").write_bytes(b"")
    (root / "half.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x00" * 84)
    with contextlib.closing(sqlite3.connect(root / "good.sqlite")) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.commit()
    (root / "data.csv").write_text("a,b\n1,2\n")
    os.mkfifo(root / "pipe.sqlite")  # opening a FIFO would wait for a writer forever
    (root / "loop.db").symlink_to(root / "loop.db")
    (root / "to_null.sqlite").symlink_to("/dev/null")
    return root


PLAYGROUND_NAMES = ["dir.sqlite", "dir", "notes.db", "bad.duckdb", "empty.sqlite", "half.sqlite", "good.sqlite",
                    "data.csv", "pipe.sqlite", "loop.db", "to_null.sqlite", "missing.sqlite", "missing.duckdb",
                    "missing", ".", "..", ""]
DEVICES = ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/stdin", "/proc/self/status", "/", "/etc/passwd",
           "/root", "/nonexistent/x.db", "~", "~/x.sqlite", "~nobody_sqlwright/x.db"]


def _snapshot(root: Path) -> set[tuple[str, int]]:
    """What lies under `root` (names and sizes), to see that opening created or wrote nothing."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            size = os.lstat(path).st_size
            found.add((os.path.relpath(path, root), size))
    return found


def _check_open(url: object, root: Path) -> None:
    before = _snapshot(root)
    start = time.perf_counter()
    try:
        with contextlib.chdir(root):
            db = open_database(url)  # type: ignore[arg-type]
    except SqlwrightError as exc:
        message = str(exc)
        assert message.strip(), f"empty message for {url!r}"
        assert len(message.splitlines()) == 1, f"message of {url!r} is not one line: {message!r}"
    else:
        assert isinstance(db, Database)
        db.close()
    elapsed = time.perf_counter() - start
    assert elapsed < SLOWEST_OPEN, f"open_database({url!r}) took {elapsed:.1f} s"
    assert _snapshot(root) == before, f"open_database({url!r}) changed the folder"


# --- strategies ------------------------------------------------------------------------------------
# Text from every plane, control characters and NUL included; lone surrogates added on purpose.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)
surrogate_text = st.builds(lambda a, b: a + "\ud800" + b, st.text(max_size=10), st.text(max_size=10))
huge_text = st.builds(lambda ch, n: ch * n, st.sampled_from(["a", "/", "é", "%", ".", "\x00"]),
                      st.sampled_from([255, 256, 4096, 5000, 100_000]))
encoded = any_text.map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe=""))


@st.composite
def url_shaped(draw) -> str:
    """A URL with a known (or nearly known) scheme, its parts drawn from lists of odd values; random text
    only where it cannot change the host (percent-encoded, or after the host)."""
    scheme = draw(st.sampled_from(SCHEMES + ODD_SCHEMES))
    separator = draw(st.sampled_from(SEPARATORS))
    userinfo = draw(st.sampled_from(USERINFO) | encoded.map(lambda t: t + "@"))
    host = draw(st.sampled_from(HOSTS))
    port = draw(st.sampled_from(PORTS) | encoded.map(lambda t: ":" + t))
    path = draw(st.sampled_from(["", "/", "/db", "/postgres", "/mysql", "//", "/good.sqlite", "/%00", "/%ff",
                                 "/%0a", "/a%2Fb"]) | any_text.map(lambda t: "/" + t.replace("@", "%40")))
    query = draw(st.sampled_from(QUERIES))
    return f"{scheme}{separator}{userinfo}{host}{port}{path}{query}"


@st.composite
def file_shaped(draw) -> str:
    """A file URL or bare path at something in the playground, a device, or a mangled form of those."""
    target = draw(st.sampled_from(PLAYGROUND_NAMES + DEVICES) | any_text)
    scheme = draw(st.sampled_from(["", "sqlite", "sqlite3", "duckdb", "SQLite", "sqlite:", "file"]))
    separator = draw(st.sampled_from(["://", ":///", ":////", ":/", ":", "//", ""]))
    suffix = draw(st.sampled_from(["", ".db", ".sqlite", ".duckdb", "?mode=rw", "?mode=rwc", "%00", "/"]))
    return f"{scheme}{separator if scheme else ''}{target}{suffix}"


# --- the properties ----------------------------------------------------------------------------------
@FUZZ
@given(url=any_text | surrogate_text | huge_text)
def test_random_text(playground, url):
    _check_open(url, playground)


@FUZZ
@given(url=url_shaped())
def test_url_shaped_strings(playground, url):
    _check_open(url, playground)


@FUZZ
@given(url=file_shaped())
def test_file_paths_and_devices(playground, url):
    _check_open(url, playground)


@pytest.mark.parametrize("url", [None, 42, b"sqlite:///x.db", ["sqlite:///x.db"], Path("missing.sqlite")])
def test_non_text_arguments(playground, url):
    _check_open(url, playground)
