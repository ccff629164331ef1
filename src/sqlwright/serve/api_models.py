"""The HTTP API's request and response shapes (Pydantic), as the OpenAPI schema (/openapi.json) shows them.

Requests forbid unknown fields and refuse text no store or model can take (NUL, lone surrogates), so that a
malformed request is a 422 with one line, never a failure further in. SQL fields are the exception: their
text goes to the guard, which refuses such statements with its own reason.

Responses are built as plain dicts by the service (see service.py) and sent as they are; the models below
document them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DB_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # as serve.databases.NAME_PATTERN
CONVERSATION_ID = r"^[A-Za-z0-9_-]{1,64}$"
HISTORY_ID = r"^[A-Za-z0-9_-]{1,64}$"
MAX_SQL_CHARS = 100_000  # SQL a person writes; the body cap bounds it too
MAX_COMMENT_CHARS = 2_000
MAX_NOTE_CHARS = 4_000


def plain_text(value: object) -> object:
    """`value` unchanged, or ValueError when it is text holding NUL or a lone surrogate."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("the text holds a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the text is not valid Unicode (a lone surrogate)") from None
    return value


class Request(BaseModel):
    """Base of request bodies: unknown fields are an error; free text must be plain Unicode."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _plain(cls, value: object, info: Any) -> object:
        return value if info.field_name == "sql" else plain_text(value)


class AskRequest(Request):
    db: str | None = Field(None, pattern=DB_NAME, description="A database name from GET /api/v1/databases "
                           "(may be omitted when the server offers one).")
    question: str = Field(..., description="The question in plain words (at most max_question_chars).")
    conversation_id: str | None = Field(
        None, pattern=CONVERSATION_ID, description="Continue a conversation: the earlier questions and their SQL "
        "go to the model, so the question may follow up on them. Omitted: a new conversation (its id is returned).")
    evidence: str | None = Field(None, description="Hints: definitions, formulas (BIRD's 'evidence').")
    summarize: bool | None = Field(None, description="Add a one-sentence answer in words (default: the server's "
                                   "--summarize).")


class SqlRequest(Request):
    db: str | None = Field(None, pattern=DB_NAME)
    sql: str = Field(..., max_length=MAX_SQL_CHARS, description="One read-only statement, checked by the same guard "
                     "as the model's SQL and run with the same timeout and row cap.")
    validate_only: bool = Field(False, description="Only check the statement with the guard; do not run it.")


class FeedbackRequest(Request):
    id: str = Field(..., pattern=HISTORY_ID, description="The history entry (an answer's `id`).")
    rating: Literal["up", "down"]
    sql: str | None = Field(None, max_length=MAX_SQL_CHARS, description="With 'down': the SQL that answers the "
                            "question; checked (guard, then run) and stored as an example.")
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)


class ExampleRequest(Request):
    db: str | None = Field(None, pattern=DB_NAME)
    question: str
    sql: str = Field(..., max_length=MAX_SQL_CHARS, description="Checked like `sqlwright examples add`: it must "
                     "pass the guard and run.")


class NoteRequest(Request):
    db: str | None = Field(None, pattern=DB_NAME)
    text: str = Field(..., max_length=MAX_NOTE_CHARS)


# --- responses (documentation) ---------------------------------------------------------------------
class ErrorResponse(BaseModel):
    detail: str = Field(..., description="What went wrong, in one line.")


class CandidateModel(BaseModel):
    sql: str
    origin: str
    error: str | None
    row_count: int | None
    group: int | None
    mean_logprob: float | str | None
    unanswerable: str | None
    prompt_tokens: int
    completion_tokens: int


class AskResponse(BaseModel):
    id: str | None = Field(..., description="The history entry (for feedback and CSV); null if it could not be "
                           "stored.")
    db: str
    question: str
    sql: str | None
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    confidence: float
    abstained: bool
    reason: str | None
    candidates: list[CandidateModel]
    chart: dict[str, Any] | None = Field(..., description="A chart spec made by sqlwright's code (bar, line, "
                                         "point) with the data inline, or null.")
    summary: str | None
    timings: dict[str, float]
    conversation_id: str
    examples: list[dict[str, Any]] = Field(..., description="Stored examples shown to the model.")
    notes: list[dict[str, Any]] = Field(..., description="Stored notes shown to the model.")


class SqlResponse(BaseModel):
    id: str | None
    db: str
    sql: str
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    seconds: float
    chart: dict[str, Any] | None = Field(..., description="A chart of the result, chosen by sqlwright's code.")


class SqlValidation(BaseModel):
    db: str
    valid: bool
    detail: str | None = Field(..., description="Why the guard refuses the statement (null when valid).")


class DatabaseInfo(BaseModel):
    name: str
    dialect: str
    tables: int


class DatabasesResponse(BaseModel):
    databases: list[DatabaseInfo]


class InfoResponse(BaseModel):
    name: str
    version: str
    model: str
    databases: list[str]
    read_only: bool
    token_required: bool
    queue: dict[str, Any]
    deadline_seconds: float
    summarize: bool
    max_question_chars: int
    max_rows: int
    timeout_seconds: float


class SchemaResponse(BaseModel):
    db: str
    dialect: str
    tables: list[dict[str, Any]]
    text: str = Field(..., description="The schema as the model sees it.")


class _HistoryFields(BaseModel):
    id: str
    database: str
    label: str
    question: str
    sql: str | None
    columns: list[str]
    truncated: bool
    confidence: float
    abstained: bool
    reason: str | None
    conversation_id: str | None
    summary: str | None
    chart: dict[str, Any] | None
    timings: dict[str, float]
    source: Literal["ask", "sql"]
    created: float


class HistoryListedModel(_HistoryFields):
    """A history entry as a listing shows it: no rows (GET /api/v1/history/{id} has them), their count."""

    row_count: int


class HistoryEntryModel(_HistoryFields):
    rows: list[list[Any]]


class HistoryResponse(BaseModel):
    entries: list[HistoryListedModel]


class FeedbackModel(BaseModel):
    id: int
    history_id: str
    rating: Literal["up", "down"]
    corrected_sql: str | None
    comment: str | None
    example_id: int | None
    created: float


class ExampleModel(BaseModel):
    id: int
    database: str
    schema_fingerprint: str
    question: str
    sql: str
    source: str
    verified: bool
    created: float
    provenance: dict[str, Any]


class FeedbackResponse(BaseModel):
    feedback: FeedbackModel
    example: ExampleModel | None = Field(..., description="The example stored from this feedback, if any.")


class ExamplesResponse(BaseModel):
    examples: list[ExampleModel]


class ExampleAdded(BaseModel):
    example: ExampleModel
    new: bool = Field(..., description="False when the same pair was already stored.")


class NoteModel(BaseModel):
    id: int
    database: str
    schema_fingerprint: str
    text: str
    created: float


class NotesResponse(BaseModel):
    notes: list[NoteModel]


class NoteAdded(BaseModel):
    note: NoteModel
    new: bool


class Removed(BaseModel):
    removed: int
