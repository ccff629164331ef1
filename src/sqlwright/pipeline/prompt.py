"""Chat messages that ask the model for one read-only SQL query, in the database's dialect.

Layout, chosen for KV-cache reuse: the system message depends only on the dialect and the mode, and the
user message opens with the schema rendering and ends with the question. Two questions on the same
database (and the n samples of one question) therefore share the longest possible token prefix, which
the embedded backend prefills once.

With earlier turns of a conversation (pipeline/conversation.py), the first user message holds the schema,
the examples and notes and the first earlier question; each earlier SQL follows as the assistant's turn; the
new question comes last, marked as a follow-up, with its value hints and evidence. The system message and the
schema block open the prompt exactly as they do without turns.

Two modes: plain (reply with the SQL only, in a ```sql block) and chain-of-thought in the style of
OmniSQL (reason step by step, then the final SQL in a ```sql block). Either way the model may reply
``-- UNANSWERABLE: <reason>`` when the schema cannot answer the question (see `extract.parse_reply`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlwright.llm.base import Message

if TYPE_CHECKING:
    from sqlwright.pipeline.conversation import Turn

UNANSWERABLE_MARKER = "-- UNANSWERABLE:"

# Display names the model knows the engines by; an unknown dialect name is shown as given.
DIALECT_DISPLAY_NAMES = {
    "sqlite": "SQLite",
    "postgres": "PostgreSQL",
    "mysql": "MySQL",
    "duckdb": "DuckDB",
}


def dialect_display_name(dialect: str) -> str:
    """The engine's usual name ("PostgreSQL" for "postgres")."""
    return DIALECT_DISPLAY_NAMES.get(dialect, dialect)


_RULES = """\
Rules:
- Write exactly one read-only query (SELECT, or WITH ... SELECT) in {engine} syntax. Never modify data or schema.
- Use only the tables and columns listed in the schema; quote identifiers that contain spaces or clash with keywords.
- Return only the columns the question asks for, in the order it asks for them.
- If the question cannot be answered from this database at all (the data it needs is not in the schema), \
reply with exactly one line instead of SQL:
{marker} <short reason>"""

_PLAIN_FORMAT = """\
Output format: return only the SQL, in one fenced block, with no explanation:
```sql
SELECT ...
```"""

_COT_FORMAT = """\
Output format: think step by step first: which tables and columns the question needs, how they join, \
which filters, groupings and orderings apply. Then give the final SQL in one fenced block at the end:
```sql
SELECT ...
```"""


def system_message(dialect: str, *, cot: bool = False) -> str:
    """The system prompt: role, rules, unanswerable convention and output format for `dialect`."""
    engine = dialect_display_name(dialect)
    parts = [
        f"You are an expert in {engine} SQL. Given a database schema and a question, you answer with "
        f"one read-only {engine} query that answers the question.",
        _RULES.format(engine=engine, marker=UNANSWERABLE_MARKER),
        _COT_FORMAT if cot else _PLAIN_FORMAT,
    ]
    return "\n\n".join(parts)


def schema_block(schema_text: str, *, dialect: str) -> str:
    """The start of the user turn, the same for every question on a database: the engine and the schema.
    With the system message before it, it is the prompt prefix a backend may keep (see `shared_prefix`)."""
    return f"Database engine: {dialect_display_name(dialect)}\n\nDatabase schema:\n{schema_text.strip()}"


def user_message(
    schema_text: str,
    question: str,
    *,
    dialect: str,
    value_hints: str | None = None,
    evidence: str | None = None,
    examples: str | None = None,
    notes: str | None = None,
) -> str:
    """The user turn: schema first (shared prefix), then solved examples, notes, value hints and evidence,
    the question last. `examples` and `notes` are rendered blocks (pipeline/examples.py)."""
    parts = [schema_block(schema_text, dialect=dialect), *_database_parts(examples, notes),
             *_question_parts(value_hints, evidence), f"Question:\n{question.strip()}"]
    return "\n\n".join(parts)


FOLLOW_UP_NOTE = ("This question follows up on the questions above and may refer to them (their tables, "
                  "filters, groupings or results). Write one complete query that answers it on its own.")


def _database_parts(examples: str | None, notes: str | None) -> list[str]:
    """The blocks about the database as a whole: solved examples and notes."""
    parts = []
    if examples and examples.strip():
        parts.append(f"Examples of questions about this database and SQL that answers them:\n{examples.strip()}")
    if notes and notes.strip():
        parts.append(f"Notes from the people who use this database:\n{notes.strip()}")
    return parts


def _question_parts(value_hints: str | None, evidence: str | None) -> list[str]:
    """The blocks about the question being asked: matching database values and evidence."""
    parts = []
    if value_hints and value_hints.strip():
        parts.append(f"Values in the database that match words of the question:\n{value_hints.strip()}")
    if evidence and evidence.strip():
        parts.append(f"Hints and external knowledge:\n{evidence.strip()}")
    return parts


def conversation_messages(
    schema_text: str,
    turns: Sequence[Turn],
    question: str,
    *,
    dialect: str,
    value_hints: str | None = None,
    evidence: str | None = None,
    examples: str | None = None,
    notes: str | None = None,
) -> list[Message]:
    """The user and assistant messages of a follow-up: the schema block, examples and notes, then each
    earlier question with its SQL as the assistant's reply, then the new question, marked as a follow-up."""
    first = [schema_block(schema_text, dialect=dialect), *_database_parts(examples, notes),
             f"Question:\n{turns[0].question.strip()}"]
    messages: list[Message] = [{"role": "user", "content": "\n\n".join(first)}]
    for i, turn in enumerate(turns):
        messages.append({"role": "assistant", "content": turn.reply()})
        if i + 1 < len(turns):
            messages.append({"role": "user", "content": f"Question:\n{turns[i + 1].question.strip()}"})
    last = [*_question_parts(value_hints, evidence), FOLLOW_UP_NOTE, f"Question:\n{question.strip()}"]
    messages.append({"role": "user", "content": "\n\n".join(last)})
    return messages


def build_messages(
    schema_text: str,
    question: str,
    *,
    dialect: str,
    value_hints: str | None = None,
    evidence: str | None = None,
    cot: bool = False,
    examples: str | None = None,
    notes: str | None = None,
    turns: Sequence[Turn] = (),
) -> list[Message]:
    """The chat messages asking for the SQL that answers `question` over `schema_text`; with `turns`, as a
    follow-up of those earlier questions (`conversation_messages`)."""
    system: Message = {"role": "system", "content": system_message(dialect, cot=cot)}
    if turns:
        return [system, *conversation_messages(schema_text, turns, question, dialect=dialect,
                                               value_hints=value_hints, evidence=evidence, examples=examples,
                                               notes=notes)]
    return [
        system,
        {"role": "user", "content": user_message(schema_text, question, dialect=dialect, value_hints=value_hints,
                                                 evidence=evidence, examples=examples, notes=notes)},
    ]


REPAIR_REPLY_CHARS = 2000  # of a reply without SQL, the tail shown back to the model


def repair_messages(messages: list[Message], sql: str, observation: str, *, dialect: str,
                    reply: str | None = None, may_be_right: bool = False) -> list[Message]:
    """`messages` followed by the model's `sql` (as the assistant's turn) and a request to fix it.

    The assistant turn holds only the SQL, not any reasoning that led to it: shorter, and the reasoning
    may be what went wrong. When the reply held no SQL, the tail of `reply` stands in for it. A query that
    ran but looks wrong (`may_be_right`: no rows, only NULLs) may be returned unchanged; one that failed
    may not (small models otherwise return the failing query as it was)."""
    engine = dialect_display_name(dialect)
    if sql.strip():
        previous = f"```sql\n{sql.strip()}\n```"
    else:
        previous = (reply or "").strip()[-REPAIR_REPLY_CHARS:] or "(no reply)"
    follow_up = (
        f"{observation.strip()}\n\n"
        f"Fix the query so that it answers the question correctly in {engine}. "
        f"Use only the tables and columns of the schema above. "
        f"Return only the corrected SQL in one ```sql fenced block."
        + (" If the query was already right, return it unchanged." if may_be_right else "")
    )
    return [
        *messages,
        {"role": "assistant", "content": previous},
        {"role": "user", "content": follow_up},
    ]
