"""The databases a server offers, by name: `sqlwright serve sample shop=postgresql://…/shop data/x.sqlite`.

Each argument is a URL, a path or `sample`, optionally named `NAME=URL`; without a name, a file's stem, a
server database's name, or `sample`. Names are what clients send (`db=`), never URLs: a client cannot make
the server open anything it was not started with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlwright.api import resolve_url
from sqlwright.config import Settings
from sqlwright.db import Database, open_database
from sqlwright.errors import ConfigError, UserError
from sqlwright.sample import SAMPLE_NAME

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class UnknownDatabase(UserError):
    """A client named a database the server does not offer (HTTP 404)."""


@dataclass(frozen=True)
class DatabaseSpec:
    name: str
    url: str  # as given (before `sample` is resolved to its file)


def _default_name(url: str) -> str:
    if url == SAMPLE_NAME:
        return SAMPLE_NAME
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower().split("+")[0] not in ("sqlite", "duckdb"):
        name = urlsplit(url).path.strip("/").split("/")[-1]  # the server database's name
    else:
        name = Path(rest if sep else url).stem
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.-")[:64]
    return name or "db"


def parse_spec(text: str) -> DatabaseSpec:
    """`NAME=URL` or `URL`. A prefix before `=` names the database only when it is a plain name (no `:` or
    `/`), so URLs whose query strings hold `=` stay URLs."""
    text = text.strip()
    if not text:
        raise ConfigError("an empty database argument: give a URL, a path or 'sample' (optionally NAME=URL)")
    name, sep, url = text.partition("=")
    if sep and NAME_PATTERN.fullmatch(name):
        if not url.strip():
            raise ConfigError(f"no URL after {name}=: give NAME=URL, e.g. {name}=sqlite:///data/{name}.sqlite")
        return DatabaseSpec(name, url.strip())
    if sep and not any(c in name for c in ":/\\") and name:
        raise ConfigError(f"bad database name {name!r}: use letters, digits, '_', '.' and '-' (at most 64), "
                          "starting with a letter or digit")
    return DatabaseSpec(_default_name(text), text)


def parse_specs(texts: Iterable[str]) -> list[DatabaseSpec]:
    """Every argument parsed; two databases with one name is an error that says how to name them."""
    specs = [parse_spec(t) for t in texts]
    if not specs:
        raise ConfigError("no database given: name at least one URL, path or 'sample'")
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"two databases are named {spec.name!r} ({seen[spec.name]} and {spec.url}): "
                              "name them, e.g. a=URL b=URL")
        seen[spec.name] = spec.url
    return specs


class DatabaseSet:
    """The named, opened, read-only databases of a server (closed together)."""

    def __init__(self, databases: dict[str, Database]) -> None:
        self._databases = dict(databases)

    @classmethod
    def open(cls, texts: Sequence[str], settings: Settings) -> DatabaseSet:
        """Open every database named in `texts`; if one fails, the ones opened are closed and the error
        (one line, naming the database) is raised."""
        opened: dict[str, Database] = {}
        try:
            for spec in parse_specs(texts):
                opened[spec.name] = open_database(resolve_url(spec.url, settings), timeout=settings.timeout,
                                                  max_rows=settings.max_rows)
        except BaseException:
            for db in opened.values():
                db.close()
            raise
        return cls(opened)

    @property
    def names(self) -> list[str]:
        return list(self._databases)

    def get(self, name: str | None) -> Database:
        """The database called `name`; with one database, `name` may be omitted."""
        if name is None or name == "":
            if len(self._databases) == 1:
                return next(iter(self._databases.values()))
            raise UnknownDatabase(f"name a database: one of {', '.join(self._databases)}")
        try:
            return self._databases[name]
        except KeyError:
            raise UnknownDatabase(f"no database named {name!r}: this server offers "
                                  f"{', '.join(self._databases)}") from None

    def items(self) -> list[tuple[str, Database]]:
        return list(self._databases.items())

    def close(self) -> None:
        for db in self._databases.values():
            db.close()
