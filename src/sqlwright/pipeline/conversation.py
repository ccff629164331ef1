"""Conversations: earlier questions and their SQL, so that a question may follow up on them ("and in 2023?",
"only the top 3").

The earlier turns go to the model as user/assistant messages after the schema block (prompt.build_messages),
so the system message and the schema, the prefix every question on a database shares, stay byte-identical and
the backend's prompt cache keeps working. Only the last `MAX_TURNS` turns are sent: a follow-up refers to
what was just asked, and every turn costs prompt tokens on every later question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlwright.errors import InvalidQuestion

MAX_TURNS = 5  # earlier turns sent with a question, the most recent ones
NO_SQL_REPLY = "-- (no SQL answered this question)"


@dataclass(frozen=True)
class Turn:
    """One earlier question of a conversation and the SQL that answered it (None: it was not answered)."""

    question: str
    sql: str | None = None

    def reply(self) -> str:
        """The assistant's turn as the model sees it: the SQL in a fenced block, as it was asked to write it."""
        sql = (self.sql or "").strip()
        return f"```sql\n{sql}\n```" if sql else NO_SQL_REPLY


def checked_turns(turns: Sequence[Turn] | None, *, limit: int = MAX_TURNS) -> tuple[Turn, ...]:
    """The last `limit` of `turns` that hold a question, or InvalidQuestion when one is not a Turn."""
    if turns is None:
        return ()
    if isinstance(turns, str | bytes) or not isinstance(turns, Sequence):
        raise InvalidQuestion("turns must be a sequence of Turn(question, sql)")
    kept: list[Turn] = []
    for turn in turns:
        if not isinstance(turn, Turn) or not isinstance(turn.question, str) or (
                turn.sql is not None and not isinstance(turn.sql, str)):
            raise InvalidQuestion("turns must be a sequence of Turn(question, sql)")
        if turn.question.strip():
            kept.append(Turn(turn.question.strip(), turn.sql.strip() if turn.sql and turn.sql.strip() else None))
    return tuple(kept[-limit:]) if limit > 0 else ()


def conversation_text(turns: Sequence[Turn], question: str) -> str:
    """The questions of the conversation, the new one last: what a follow-up's words are looked up with
    (schema linking, value hints, stored examples), since "and in 2023?" alone names little."""
    return "\n".join([*(t.question for t in turns), question])


def conversation_sql(turns: Sequence[Turn]) -> str:
    """The earlier turns' SQL, one per line: it names the tables and columns a follow-up goes on using."""
    return "\n".join(t.sql for t in turns if t.sql)
