"""The exception hierarchy. Every error a user can cause is a `UserError` (CLI exit code 2);
everything else sqlwright raises on purpose is a `SqlwrightError` (exit code 1).

Library errors (sqlite3, psycopg, pymysql, duckdb, llama_cpp, openai, httpx) are converted at the
boundary where sqlwright touches them, with ``raise ... from exc`` so ``--debug`` still shows the cause.
"""

from __future__ import annotations


class SqlwrightError(Exception):
    """Base of every error sqlwright raises on purpose."""

    exit_code = 1


class Cancelled(SqlwrightError):
    """The work was stopped on request (a client went away, Ctrl-C in `chat`) before it finished."""


class UserError(SqlwrightError):
    """Something the user can fix: a bad URL, a missing file, an unknown model, a refused query."""

    exit_code = 2


class ConfigError(UserError):
    """An invalid setting, option or flag value."""


class InvalidQuestion(UserError):
    """The question cannot be asked: empty, only whitespace, or longer than max_question_chars."""


# --- databases -------------------------------------------------------------------------------
class DatabaseError(SqlwrightError):
    """Base of database errors."""


class ConnectionFailed(DatabaseError, UserError):
    """The database could not be opened: bad URL, missing or corrupt file, server down, bad credentials."""


class UnsupportedDatabase(ConnectionFailed):
    """The URL names a dialect sqlwright does not support."""


class EmptyDatabase(DatabaseError, UserError):
    """The database has no tables or views: there is nothing to ask about (often the wrong file)."""


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
    """A completion request failed (server error, timeout, bad response)."""


# A model server the user pointed at wrongly is a user error (exit 2), like an unreachable database; these
# subclass LLMRequestFailed so that code catching a failed request still catches them.
class ModelServerUnreachable(LLMRequestFailed, UserError):
    """The model server could not be connected to: connection refused, unknown host, no connection in time."""


class ModelServerNotAnswering(ModelServerUnreachable):
    """The model server accepted the connection but sent no answer in time (hung, or not an HTTP server)."""


class ModelAPIKeyRefused(LLMRequestFailed, UserError):
    """The model server refused the API key, or needs one (HTTP 401/403)."""


class ModelNotServed(LLMRequestFailed, UserError):
    """The model server does not know the model name, or the URL is not its API root (HTTP 404)."""


# --- sqlwright's own state (examples, notes) ------------------------------------------------------
class StateStoreError(UserError):
    """The state store cannot be opened or used: an unwritable or corrupt state directory or file, or a state
    database (SQLWRIGHT_STATE_URL) that cannot be reached."""


class UnknownHistoryEntry(StateStoreError):
    """No history entry has the given id (feedback or a lookup named one that was never stored)."""


class ExampleRejected(UserError):
    """An example (question and SQL) was not stored: its SQL is refused by the guard or does not run."""


# --- datasets and evaluation -----------------------------------------------------------------
class DatasetError(UserError):
    """A dataset or predictions file is missing or malformed."""


# --- training ----------------------------------------------------------------------------------
class TrainingUnavailable(UserError):
    """The [train] extra (torch, transformers, trl, peft, datasets) is not installed."""


class AdapterMismatch(UserError):
    """A LoRA adapter directory that is not one sqlwright wrote, or was trained on another base model."""
