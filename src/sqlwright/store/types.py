"""What the state store holds, as plain frozen data: stored examples (question and SQL), notes, history
entries (what was asked and answered) and feedback on them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Where an example came from. A person's word outranks a reported correction, which outranks a synthesized
# pair: re-adding a stored pair from a higher-ranked source upgrades its `source`.
SOURCES: tuple[str, ...] = ("synthesized", "feedback", "taught")
SOURCE_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SOURCES)}


@dataclass(frozen=True)
class StoredExample:
    """A question and the SQL that answers it, stored for one database.

    `database` is the database's key (dialect and location, no credentials) and `schema_fingerprint` the
    fingerprint of its schema when the example was stored (see sqlwright.db.identity)."""

    id: int
    database: str
    schema_fingerprint: str
    question: str
    sql: str
    source: str  # "taught" | "synthesized" | "feedback"
    verified: bool
    created: float  # seconds since the epoch
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)  # model, prompt version, seed, …

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "database": self.database, "schema_fingerprint": self.schema_fingerprint,
                "question": self.question, "sql": self.sql, "source": self.source, "verified": self.verified,
                "created": self.created, "provenance": dict(self.provenance)}


@dataclass(frozen=True)
class Note:
    """A business definition or instruction a person wrote for one database ("an active customer …")."""

    id: int
    database: str
    schema_fingerprint: str
    text: str
    created: float  # seconds since the epoch

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "database": self.database, "schema_fingerprint": self.schema_fingerprint,
                "text": self.text, "created": self.created}


# How a history entry came about: a question asked (the pipeline wrote the SQL), or SQL a person ran.
HISTORY_SOURCES: tuple[str, ...] = ("ask", "sql")
RATINGS: tuple[str, ...] = ("up", "down")


@dataclass(frozen=True)
class HistoryEntry:
    """One question (or SQL statement) a server or the CLI answered, with its result as shown: the rows
    capped and JSON-safe (see sqlwright.store.jsonsafe)."""

    id: str  # uuid4 hex: unique across servers sharing one state database
    database: str  # the database's key (sqlwright.db.identity.database_key)
    label: str  # the name the server or CLI showed the database under, e.g. "sample"
    question: str
    sql: str | None  # None when the pipeline abstained without SQL
    columns: tuple[str, ...]
    rows: tuple[tuple, ...]
    truncated: bool  # more rows existed than were kept
    confidence: float
    abstained: bool
    reason: str | None  # why it abstained (or failed)
    conversation_id: str | None  # entries sharing one are a conversation (follow-up questions)
    summary: str | None
    chart: dict[str, Any] | None  # the chart spec (sqlwright.pipeline.chart), as a dict
    timings: dict[str, float]  # seconds per stage
    source: str  # "ask" | "sql"
    created: float  # seconds since the epoch

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "database": self.database, "label": self.label, "question": self.question,
                "sql": self.sql, "columns": list(self.columns), "rows": [list(row) for row in self.rows],
                "truncated": self.truncated, "confidence": self.confidence, "abstained": self.abstained,
                "reason": self.reason, "conversation_id": self.conversation_id, "summary": self.summary,
                "chart": self.chart, "timings": dict(self.timings), "source": self.source,
                "created": self.created}


@dataclass(frozen=True)
class Feedback:
    """A person's verdict on a history entry: thumbs up or down, perhaps with the SQL that should have been
    written (stored as example `example_id` when it was checked and kept)."""

    id: int
    history_id: str
    rating: str  # "up" | "down"
    corrected_sql: str | None
    comment: str | None
    example_id: int | None  # the example this feedback stored, if any
    created: float  # seconds since the epoch

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "history_id": self.history_id, "rating": self.rating,
                "corrected_sql": self.corrected_sql, "comment": self.comment, "example_id": self.example_id,
                "created": self.created}
