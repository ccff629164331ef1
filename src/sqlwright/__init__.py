"""sqlwright: self-hosted text-to-SQL with open models.

    import sqlwright
    db = sqlwright.connect("sqlite:///shop.db")
    answer = db.ask("Which customers ordered the most last year?")
    print(answer.sql, answer.rows)

The public names are imported lazily (PEP 562) so that `import sqlwright.db` or the CLI's start does not
pay for the model and pipeline modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "connect": "sqlwright.api",
    "Connection": "sqlwright.api",
    "Settings": "sqlwright.config",
    "load_settings": "sqlwright.config",
    "open_database": "sqlwright.db",
    "Database": "sqlwright.db",
    "Result": "sqlwright.db",
    "Schema": "sqlwright.db",
    "Table": "sqlwright.db",
    "Column": "sqlwright.db",
    "ForeignKey": "sqlwright.db",
    "SqlwrightError": "sqlwright.errors",
    "UserError": "sqlwright.errors",
    "ConnectionFailed": "sqlwright.errors",
    "QueryRefused": "sqlwright.errors",
    "QueryFailed": "sqlwright.errors",
    "QueryTimeout": "sqlwright.errors",
    "ModelError": "sqlwright.errors",
    "Cancelled": "sqlwright.errors",
    "LLM": "sqlwright.llm",
    "Completion": "sqlwright.llm",
    "load_llm": "sqlwright.llm",
    "Engine": "sqlwright.pipeline",
    "AskOptions": "sqlwright.pipeline",
    "Answer": "sqlwright.pipeline",
    "Candidate": "sqlwright.pipeline",
    "Turn": "sqlwright.pipeline",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sqlwright' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and IDEs
    from sqlwright.api import Connection, connect
    from sqlwright.config import Settings, load_settings
    from sqlwright.db import Column, Database, ForeignKey, Result, Schema, Table, open_database
    from sqlwright.errors import (
        Cancelled,
        ConnectionFailed,
        ModelError,
        QueryFailed,
        QueryRefused,
        QueryTimeout,
        SqlwrightError,
        UserError,
    )
    from sqlwright.llm import LLM, Completion, load_llm
    from sqlwright.pipeline import Answer, AskOptions, Candidate, Engine, Turn
