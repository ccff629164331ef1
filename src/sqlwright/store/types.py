"""What the state store holds, as plain frozen data: stored examples (question and SQL) and notes."""

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
