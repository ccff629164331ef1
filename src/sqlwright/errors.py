"""The exception hierarchy. Every error a user can cause is a `UserError` (CLI exit code 2);
everything else sqlwright raises on purpose is a `SqlwrightError` (exit code 1).

Library errors (sqlite3, psycopg, pymysql, duckdb, llama_cpp, openai, httpx) are converted at the
boundary where sqlwright touches them, with ``raise ... from exc`` so ``--debug`` still shows the cause.
"""

from __future__ import annotations


class SqlwrightError(Exception):
    """Base of every error sqlwright raises on purpose."""

    exit_code = 1


class UserError(SqlwrightError):
    """Something the user can fix: a bad URL, a missing file, an unknown model, a refused query."""

    exit_code = 2


class ConfigError(UserError):
    """An invalid setting, option or flag value."""


class InvalidQuestion(UserError):
    """The question cannot be asked: empty or only whitespace."""


# --- databases -------------------------------------------------------------------------------
class DatabaseError(SqlwrightError):
    """Base of database errors."""


class ConnectionFailed(DatabaseError, UserError):
    """The database could not be opened: bad URL, missing or corrupt file, server down, bad credentials."""


class UnsupportedDatabase(ConnectionFailed):
    """The URL names a dialect sqlwright does not support."""


class QueryRefused(DatabaseError, UserError):
    """The guard refused a statement (not exactly one read-only statement)."""


class QueryFailed(DatabaseError):
    """The database raised an error while running an accepted statement."""


class QueryTimeout(QueryFailed):
    """A statement ran past its wall-clock limit and was interrupted."""


# --- models ------------------------------------------------------------------------------------
class ModelError(SqlwrightError):
    """Base of model errors."""


class UnknownModel(ModelError, UserError):
    """The model name is neither a registered model nor a path to a GGUF file."""


class ModelMissing(ModelError, UserError):
    """The model's files or packages are not installed; the message says what to install."""


class ModelCorrupt(ModelError, UserError):
    """An assembled or given model file has the wrong size or checksum."""


class ModelLoadFailed(ModelError, UserError):
    """The backend could not load the model (bad GGUF, missing llama-cpp-python, out of memory)."""


class LLMRequestFailed(ModelError):
    """A completion request failed (server down, timeout after retries, bad response)."""


# --- datasets and evaluation -----------------------------------------------------------------
class DatasetError(UserError):
    """A dataset or predictions file is missing or malformed."""
