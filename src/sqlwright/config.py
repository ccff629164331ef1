"""Settings, declared once: each has a default, an environment variable SQLWRIGHT_<NAME>, and help text.

Precedence: explicit argument (CLI flag or API keyword) > environment variable > default.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sqlwright.db.base import MAX_ROWS_LIMIT
from sqlwright.errors import ConfigError

# Seconds an OpenAI-compatible server has to answer the quick GET /models that tells a hung server from a slow
# one (capped by request_timeout). A working server answers it at once, even while it generates for others.
LIVENESS_TIMEOUT = 20.0


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sqlwright"


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sqlwright"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        "qwen2.5-coder-1.5b",
        description="Model: a registered name (sqlwright models list), a path to a .gguf file, "
        "or 'openai:NAME' for an OpenAI-compatible server at base_url.",
    )
    lora: str | None = Field(
        None, description="A LoRA adapter (a GGUF from `sqlwright train export`) applied to the embedded "
        "model, whose weights stay as they are; refused when it was made for another model file.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where assembled models, value indexes and built wheels are kept.",
    )
    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="Where sqlwright keeps what it learns and is taught: examples and notes per database, "
        "the history of answers and feedback on them (state.db, SQLite; see state_url). "
        "Default $XDG_STATE_HOME/sqlwright, else ~/.local/state/sqlwright.",
    )
    state_url: str | None = Field(
        None, description="A PostgreSQL URL (postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME) where "
        "sqlwright keeps its state (examples, notes, history, feedback) instead of state_dir, in the schema "
        "`sqlwright`: several servers given the same URL share it. The database must exist; its password is "
        "never shown.",
        repr=False,  # it may hold a password: logs and tracebacks that print the settings must not show it
    )
    timeout: float = Field(10.0, gt=0, description="Wall-clock seconds allowed per SQL statement.")
    max_rows: int = Field(1000, gt=0, le=MAX_ROWS_LIMIT, description="Rows returned per statement; more are cut and flagged.")
    threads: int | None = Field(None, gt=0, description="CPU threads for the embedded model (default: all).")
    n_ctx: int = Field(8192, gt=0, description="Context window of the embedded model, in tokens.")
    prompt_cache_mb: int = Field(
        2048, ge=0, description="Disk space (MiB) for the embedded model's saved prompt states (system message "
        "+ schema, per model and database) under cache_dir/prompt-cache, so that a new process skips their "
        "prefill; least recently used states go first; 0 turns the cache off.",
    )
    prompt_lookup_tokens: int = Field(
        0, ge=0, le=16, description="Prompt-lookup decoding in the embedded model: draft tokens copied from "
        "the prompt after a matching n-gram and checked in the same batch (0: off; off by default because on "
        "2 CPU cores a batch costs more than the drafts it saves, see docs/benchmarks.md).",
    )
    max_question_chars: int = Field(
        4000, gt=0, description="Longest question (and evidence) accepted, in characters; a longer one is "
        "refused before any model work (the longest Spider, BIRD and SQL-Eval questions are under 1,000).",
    )
    base_url: str | None = Field(None, description="Base URL of an OpenAI-compatible server (openai models).")
    api_key: str | None = Field(None, description="API key for the OpenAI-compatible server.", repr=False)
    request_timeout: float = Field(
        120.0, gt=0,
        description="Seconds an OpenAI-compatible server has to finish one completion: its generation "
        "deadline (completions are not streamed, so no byte comes before the whole answer). A server that "
        "accepts connections but never answers is found sooner: before the first request, and after a "
        f"failure, it must answer GET /models within min(request_timeout, {LIVENESS_TIMEOUT:g}) seconds, so "
        "with the defaults a hung server is reported within 30 s while a slow working one keeps the whole "
        "deadline. Timeouts are not retried.",
    )
    connect_timeout: float = Field(
        5.0, gt=0, description="Seconds an OpenAI-compatible server has to accept a connection (and to take "
        "the request); an address where nothing answers fails after this.",
    )
    retries: int = Field(
        2, ge=0, description="Retries, with backoff, of a request to an OpenAI-compatible server that lost "
        "its connection or got HTTP 408/409/429/5xx (a timeout is never retried).",
    )


ENV_PREFIX = "SQLWRIGHT_"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with non-None `overrides` on top."""
    values: dict[str, object] = {}
    for name in Settings.model_fields:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env not in (None, ""):
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - set(Settings.model_fields)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    try:
        return Settings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"invalid setting {field} (SQLWRIGHT_{field.upper()}): {err['msg']}") from exc
