"""The training records: JSON Lines in the Hugging Face `datasets` / TRL conversational format.

SFT (one prompt, the reply to learn)::

    {"prompt": [{"role": "system", "content": …}, {"role": "user", "content": …}],
     "completion": [{"role": "assistant", "content": REPLY}],
     "database", "dialect", "question", "sql", "difficulty", "source": "gold"|"sampled", "model", "prompt_version"}

DPO (one prompt, a preferred and a dispreferred reply; SENSE pairs have the same shape)::

    {"prompt": […], "chosen": [{"role": "assistant", …}], "rejected": [{"role": "assistant", …}],
     "database", "dialect", "question", "pairing": "random"|"nearest"|"farthest"|"sense", "chosen_sql",
     "rejected_sql", "rejected_reason": "wrong result"|"error: …", "model", "prompt_version"}

The prompt is exactly what `ask` sends for the question (`Engine.prompt`), and REPLY is in the format ask's
extractor parses (`pipeline/extract.py`): a ```sql block, after the reasoning in chain-of-thought mode. Every
file loads with ``datasets.load_dataset("json", data_files=…)``: each field keeps one JSON type in every
line (text, or null where a value is unknown).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from sqlwright.errors import DatasetError
from sqlwright.llm.base import Message
from sqlwright.pipeline.extract import parse_reply, strip_special_tokens
from sqlwright.pipeline.prompt import system_message, user_message

RecordKind = Literal["sft", "dpo"]

COMMON_FIELDS = ("prompt", "database", "dialect", "question", "model", "prompt_version")
SFT_FIELDS = (*COMMON_FIELDS, "completion", "sql", "difficulty", "source")
DPO_FIELDS = (*COMMON_FIELDS, "chosen", "rejected", "pairing", "chosen_sql", "rejected_sql", "rejected_reason")
FIELDS: dict[str, tuple[str, ...]] = {"sft": SFT_FIELDS, "dpo": DPO_FIELDS}
SOURCES = ("gold", "sampled")
PAIRINGS = ("random", "nearest", "farthest", "sense")
WRONG_RESULT = "wrong result"  # the rejected_reason of a query that ran and returned another answer
ROLES = ("system", "user", "assistant")


# --- building ------------------------------------------------------------------------------------------
def sql_reply(sql: str, reasoning: str | None = None) -> str:
    """A reply in the format `ask` parses: the SQL in one ```sql block, after the reasoning when given."""
    block = f"```sql\n{sql.strip()}\n```"
    return f"{reasoning.strip()}\n\n{block}" if reasoning and reasoning.strip() else block


def clean_reply(reply: str) -> str:
    """A model's reply as a training target: chat-template tokens that leaked into it removed, trimmed."""
    return strip_special_tokens(reply).strip()


def prompt_version(dialect: str, *, cot: bool = False) -> str:
    """A short digest of the prompt's wording and layout for `dialect` (the system message and a user message
    with every part): records made with another wording never pass as this one's."""
    probe = user_message("CREATE TABLE t (a INT)", "q?", dialect=dialect, value_hints="v", evidence="e",
                         examples="x", notes="n")
    digest = hashlib.sha256(f"{system_message(dialect, cot=cot)}\0{probe}".encode()).hexdigest()
    return f"ask-{digest[:12]}"


def assistant(content: str) -> list[Message]:
    return [{"role": "assistant", "content": content}]


def sft_record(prompt: Sequence[Message], reply: str, *, database: str, dialect: str, question: str, sql: str,
               difficulty: str | None, source: str, model: str | None, prompt_version: str) -> dict:
    """One SFT record (see the module's docstring)."""
    return {"prompt": [dict(m) for m in prompt], "completion": assistant(reply), "database": database,
            "dialect": dialect, "question": question, "sql": sql, "difficulty": difficulty, "source": source,
            "model": model, "prompt_version": prompt_version}


def dpo_record(prompt: Sequence[Message], chosen: str, rejected: str, *, database: str, dialect: str,
               question: str, pairing: str, chosen_sql: str, rejected_sql: str | None, rejected_reason: str,
               model: str | None, prompt_version: str) -> dict:
    """One DPO (or SENSE) record (see the module's docstring)."""
    return {"prompt": [dict(m) for m in prompt], "chosen": assistant(chosen), "rejected": assistant(rejected),
            "database": database, "dialect": dialect, "question": question, "pairing": pairing,
            "chosen_sql": chosen_sql, "rejected_sql": rejected_sql, "rejected_reason": rejected_reason,
            "model": model, "prompt_version": prompt_version}


# --- checking ------------------------------------------------------------------------------------------
def record_kind(record: Mapping) -> RecordKind:
    """"dpo" for a record with chosen/rejected replies, else "sft"."""
    return "dpo" if "chosen" in record else "sft"


def _messages(value: object, field: str, where: str, *, assistant_only: bool = False) -> None:
    if not isinstance(value, list) or not value:
        raise DatasetError(f"{where}: '{field}' must be a non-empty list of chat messages")
    for message in value:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise DatasetError(f"{where}: '{field}' holds something that is not a chat message "
                               "({\"role\": …, \"content\": text})")
        role = message.get("role")
        if role not in ROLES or (assistant_only and role != "assistant"):
            wanted = "assistant" if assistant_only else "system, user or assistant"
            raise DatasetError(f"{where}: '{field}' has a message with role {role!r} (expected {wanted})")
    if assistant_only and (len(value) != 1 or not value[0]["content"].strip()):
        raise DatasetError(f"{where}: '{field}' must be one non-empty assistant reply")


def _text(record: Mapping, field: str, where: str, *, required: bool = True) -> None:
    value = record.get(field)
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value.strip()):
        raise DatasetError(f"{where}: '{field}' must be {'non-empty ' if required else ''}text")


def check_record(record: object, kind: RecordKind, where: str) -> dict:
    """`record` if it is a well-formed `kind` record, else DatasetError naming `where` and what is wrong."""
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected a JSON object, not {type(record).__name__}")
    if kind == "sft" and "chosen" in record:
        raise DatasetError(f"{where}: a DPO pair, where SFT records belong")
    if kind == "dpo" and "completion" in record:
        raise DatasetError(f"{where}: an SFT record, where DPO records belong")
    missing = [f for f in FIELDS[kind] if f not in record]
    if kind == "sft" and "sql" in missing:
        raise DatasetError(f"{where}: no gold SQL (field 'sql'): an SFT record needs the query it teaches")
    if missing:
        raise DatasetError(f"{where}: not a {kind.upper()} record: missing field(s) {', '.join(missing)}")
    _messages(record["prompt"], "prompt", where)
    if record["prompt"][-1]["role"] != "user":
        raise DatasetError(f"{where}: the prompt must end with the user's question")
    for field in ("database", "dialect", "question"):
        _text(record, field, where)
    for field in ("model", "prompt_version"):
        _text(record, field, where, required=False)
    if kind == "sft":
        _messages(record["completion"], "completion", where, assistant_only=True)
        if not isinstance(record["sql"], str) or not record["sql"].strip():
            raise DatasetError(f"{where}: no gold SQL (field 'sql' is empty): an SFT record needs the query it "
                               "teaches")
        _text(record, "difficulty", where, required=False)
        if record["source"] not in SOURCES:
            raise DatasetError(f"{where}: 'source' must be one of {', '.join(SOURCES)}, not {record['source']!r}")
    else:
        _messages(record["chosen"], "chosen", where, assistant_only=True)
        _messages(record["rejected"], "rejected", where, assistant_only=True)
        _text(record, "chosen_sql", where)
        _text(record, "rejected_sql", where, required=False)
        _text(record, "rejected_reason", where)
        if record["pairing"] not in PAIRINGS:
            raise DatasetError(f"{where}: 'pairing' must be one of {', '.join(PAIRINGS)}, not {record['pairing']!r}")
    return record


def reply_sql(reply: str) -> str | None:
    """The SQL `ask` would take from `reply` (None when it holds none)."""
    return parse_reply(reply).sql


# --- files ---------------------------------------------------------------------------------------------
def write_records(path: Path, records: Iterable[Mapping]) -> int:
    """Write `records` (each checked) as JSON Lines to `path`, replacing the file whole (never left
    half-written). Returns how many were written."""
    path = Path(path)
    lines = []
    for i, record in enumerate(records, start=1):
        check_record(dict(record), record_kind(record), f"record {i} for {path}")
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, path)
    return len(lines)


def read_records(path: Path, kind: RecordKind) -> list[dict]:
    """The `kind` records in the JSON Lines file at `path`, each checked; DatasetError (one line naming the
    file and line) when the file is missing, empty, or holds anything else."""
    path = Path(path)
    if kind not in FIELDS:
        raise DatasetError(f"unknown record kind {kind!r} (known: {', '.join(FIELDS)})")
    if not path.is_file():
        raise DatasetError(f"{kind.upper()} records not found: {path}")
    records = []
    with path.open("rb") as handle:
        for number, data in enumerate(handle, start=1):
            where = f"{path}:{number}"
            try:
                text = data.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{where}: not UTF-8 text") from exc
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: malformed JSON: {exc.msg}") from exc
            except RecursionError as exc:
                raise DatasetError(f"{where}: JSON nested too deeply") from exc
            records.append(check_record(record, kind, where))
    if not records:
        raise DatasetError(f"{path}: no {kind.upper()} records in the file")
    return records
