"""The synthesis prompts, after OmniSQL (Li et al., 2025, "OmniSQL: Synthesizing High-quality Text-to-SQL
Data at Scale"): SQL at four complexity levels, questions back-translated from SQL (explanation first) in
nine styles. Their wording follows OmniSQL's prompts, shortened for small models, and the back-translation
is two calls (explain the query; write the question from the explanation) where OmniSQL makes one: see
questions.py for why.

`PROMPT_VERSION` names the wording: it is recorded in every work file and every exported pair, so change it
whenever a prompt here changes what a model would write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlwright.llm.base import Message
from sqlwright.pipeline.prompt import dialect_display_name

PROMPT_VERSION = "synth-1"

# --- SQL complexity (OmniSQL's four levels) ---------------------------------------------------------
LEVELS: tuple[str, ...] = ("simple", "moderate", "complex", "highly-complex")

COMPLEXITY: dict[str, str] = {
    "simple": (
        "Simple SQL queries may satisfy one or more of the following criteria:\n"
        "- They select data from a single table only (no joins).\n"
        "- They filter rows with simple WHERE conditions.\n"
        "- They may use basic aggregate functions such as COUNT, SUM, AVG, MIN, MAX.\n"
        "- They may sort or limit the result."
    ),
    "moderate": (
        "Moderate SQL queries may satisfy one or more of the following criteria:\n"
        "- They join two or more tables (JOIN, INNER JOIN, LEFT JOIN, ...).\n"
        "- They use aggregate functions with a GROUP BY clause, or a HAVING clause on aggregated results.\n"
        "- They use WHERE conditions with IN, BETWEEN or LIKE, or a simple subquery."
    ),
    "complex": (
        "Complex SQL queries may satisfy one or more of the following criteria:\n"
        "- They contain nested subqueries (correlated or not).\n"
        "- They join several tables, with different join types or self-joins.\n"
        "- They group rows with GROUP BY and filter the groups with HAVING.\n"
        "- They use advanced aggregates such as COUNT(DISTINCT ...) or conditional aggregation (CASE WHEN ...)."
    ),
    "highly-complex": (
        "Highly complex SQL queries may satisfy one or more of the following criteria:\n"
        "- They use common table expressions (WITH ...), possibly several of them.\n"
        "- They use window functions (ROW_NUMBER, RANK, DENSE_RANK, LAG, LEAD, running SUM ... OVER ...).\n"
        "- They combine result sets with set operations (UNION, UNION ALL, INTERSECT, EXCEPT).\n"
        "- They combine nested subqueries, several joins and analytical functions."
    ),
}

# --- a few functions per dialect, for OmniSQL's "advanced features" section ---------------------------
_WINDOW_AND_AGGREGATES = (
    "COUNT(DISTINCT x): the number of distinct values in a group",
    "ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...): number the rows of each partition",
    "RANK() OVER (ORDER BY ...) / DENSE_RANK(): rank rows, ties sharing a rank",
    "LAG(x) OVER (ORDER BY ...) / LEAD(x): the previous or next row's value",
    "SUM(x) OVER (ORDER BY ...): a running total",
    "CASE WHEN condition THEN a ELSE b END: a value chosen by a condition",
    "COALESCE(a, b, ...): the first argument that is not NULL",
    "ROUND(x, digits): a number rounded",
)

DIALECT_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "sqlite": (
        "STRFTIME('%Y', date): a part of a date as text (year '%Y', month '%m')",
        "JULIANDAY(date): the date as a day number; a difference of two is a number of days",
        "DATE(value, '+1 month'): a date, optionally shifted",
        "SUBSTR(text, start, length): a part of a string",
        "INSTR(text, part): where `part` starts in `text` (0 when absent)",
        "LENGTH(text): the number of characters",
        "UPPER(text) / LOWER(text): the text in upper or lower case",
        "IIF(condition, a, b): a when the condition holds, else b",
        "CAST(x AS REAL): x as another type",
        "GROUP_CONCAT(x, ', '): a group's values joined into one string",
        "NTILE(n) OVER (ORDER BY ...): split the rows into n buckets",
        *_WINDOW_AND_AGGREGATES,
    ),
    "postgres": (
        "EXTRACT(YEAR FROM date): a part of a date",
        "DATE_TRUNC('month', ts): a timestamp cut down to the month",
        "AGE(ts1, ts2): the interval between two timestamps",
        "TO_CHAR(value, 'YYYY-MM'): a date or number formatted as text",
        "STRING_AGG(text, ', '): a group's strings joined",
        "SPLIT_PART(text, ',', 2): one field of a delimited string",
        "x ILIKE '%word%': case-insensitive pattern match",
        "NULLIF(a, b): NULL when a equals b, else a",
        "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY x): the median",
        "COUNT(*) FILTER (WHERE condition): an aggregate over some rows of the group",
        "x::numeric: a cast",
        *_WINDOW_AND_AGGREGATES,
    ),
    "mysql": (
        "YEAR(date) / MONTH(date): a part of a date",
        "DATE_FORMAT(date, '%Y-%m'): a date formatted as text",
        "DATEDIFF(a, b): days between two dates",
        "TIMESTAMPDIFF(MONTH, a, b): the difference of two dates in a unit",
        "CONCAT(a, ' ', b): strings joined",
        "GROUP_CONCAT(x SEPARATOR ', '): a group's values joined",
        "IFNULL(a, b): b when a is NULL",
        "IF(condition, a, b): a when the condition holds, else b",
        "LOCATE(part, text): where `part` starts in `text`",
        "CHAR_LENGTH(text): the number of characters",
        *_WINDOW_AND_AGGREGATES,
    ),
    "duckdb": (
        "DATE_PART('year', date): a part of a date",
        "DATE_TRUNC('month', ts): a timestamp cut down to the month",
        "DATE_DIFF('day', a, b): the difference of two dates in a unit",
        "STRFTIME(date, '%Y-%m'): a date formatted as text",
        "STRING_AGG(text, ', '): a group's strings joined",
        "MEDIAN(x) / QUANTILE_CONT(x, 0.9): the median, a quantile",
        "ARG_MAX(arg, value): the `arg` of the row with the largest `value`",
        "COUNT(*) FILTER (WHERE condition): an aggregate over some rows of the group",
        "QUALIFY: filter on a window function's result",
        "REGEXP_MATCHES(text, pattern): whether a regular expression matches",
        *_WINDOW_AND_AGGREGATES,
    ),
}


def dialect_functions(dialect: str) -> tuple[str, ...]:
    """The functions offered to the model for `dialect` (the common aggregates and window functions for a
    dialect without its own list)."""
    return DIALECT_FUNCTIONS.get(dialect, _WINDOW_AND_AGGREGATES)


_SQL_TASK = """\
**Task Overview**
Create one executable {engine} SQL query over the database below.

**Database Schema**
{schema}

**Sample Rows**
{rows}

**SQL Query Complexity**
The query must match the {level} level, defined as follows:
{complexity}

**Advanced Features**
Use some of these {engine} functions where they fit (they are not mandatory):
{functions}
{focus}
**SQL Query Requirements**
1. Use the syntax of the {engine} database engine. Write one read-only query (SELECT, or WITH ... SELECT).
2. Use only the tables and columns of the schema.
3. Answer a real data analysis need; avoid trivial or nonsensical queries.
4. Take the values in conditions from the sample rows, so that the query returns rows.
5. (Very important) The query must select exactly {columns} column{plural}.

**Output Format Requirements**
Return only the SQL query, in one code block:
```sql
-- your SQL query here
```"""


def sql_shared_prefix(*, schema_text: str, rows_text: str) -> str:
    """The part of every SQL prompt on a database that ends where its items start to differ (after the sample
    rows): what a backend may prefill once and keep (see `LLM.complete`'s `shared_prefix`)."""
    return f"**Sample Rows**\n{rows_text.strip() or '(none)'}"


def sql_messages(*, dialect: str, schema_text: str, rows_text: str, level: str, functions: tuple[str, ...],
                 column_count: int, focus_table: str | None) -> list[Message]:
    """The chat asking for one SQL query at `level` (OmniSQL's SQL synthesis prompt). Everything that
    differs between the items of a database comes after `sql_shared_prefix`."""
    engine = dialect_display_name(dialect)
    focus = (f"\n**Focus**\nBuild the query around the table {focus_table} (join other tables as needed).\n"
             if focus_table else "")
    text = _SQL_TASK.format(
        engine=engine, schema=schema_text.strip(), rows=rows_text.strip() or "(none)",
        level=level.replace("-", " "), complexity=COMPLEXITY[level],
        functions="\n".join(f"- {f}" for f in functions) or "- (none)", focus=focus,
        columns=column_count, plural="" if column_count == 1 else "s",
    )
    return [
        {"role": "system", "content": f"You are an expert in {engine} SQL who writes realistic analysis queries."},
        {"role": "user", "content": text},
    ]


# --- question styles (OmniSQL's nine) -------------------------------------------------------------
@dataclass(frozen=True)
class Style:
    name: str
    description: str
    needs_knowledge: bool = False  # vague and metaphorical questions come with the knowledge they assume
    dialogue: bool = False


# OmniSQL's prompt shows an example question per style (about students older than 18); small models copy it
# word for word instead of writing about the database at hand, so the descriptions here say what the example
# showed.
STYLES: tuple[Style, ...] = (
    Style("formal", "Formal style: standard grammar and vocabulary, like a written request."),
    Style("colloquial", "Colloquial style: informal, chatty vocabulary and expressions, as said to a colleague."),
    Style("imperative", "Imperative style: a command or directive (\"Find ...\", \"List ...\", \"Give me ...\")."),
    Style("interrogative", "Interrogative style: a direct question (\"What ...?\", \"Which ...?\", \"How many ...?\")."),
    Style("descriptive", "Descriptive style: a detailed description of what is wanted, with context "
          "(\"I want to know ...\")."),
    Style("concise", "Concise style: as short as possible, a few words."),
    Style("vague", "Vague style: ambiguous words that need inference (\"older singers\" for an age limit); the "
          "external knowledge says what they mean in terms of the data.", needs_knowledge=True),
    Style("metaphorical", "Metaphorical style: metaphors or figurative expressions (\"veterans of the stage\" for "
          "an age limit); the external knowledge says what they mean in terms of the data.", needs_knowledge=True),
    Style("multi-turn", "Multi-turn dialogue style: a short dialogue in which the user's need is clarified step "
          "by step, each line one turn starting with 'User:' or 'Assistant:', the user speaking first and last.",
          dialogue=True),
)
STYLE_NAMES: tuple[str, ...] = tuple(s.name for s in STYLES)


def get_style(name: str) -> Style:
    for style in STYLES:
        if style.name == name:
            return style
    raise KeyError(name)


_EXPLAIN_TASK = """\
**Database**
{schema}

**SQL Query**
```sql
{sql}
```

Explain in one or two plain sentences what this query returns: what each returned column is, and which rows, \
with every condition and value the query uses. Write only the explanation."""

_QUESTION_TASK = """\
The data wanted:
{explanation}

Write the question a user of this {engine} database would ask to get exactly this data, in this style:
{style}
Keep every condition and value, and any ordering or limit. Do not mention SQL, queries or tables.

{output}"""

_OUTPUT_QUESTION = "Reply with the question only, on one line."
_OUTPUT_KNOWLEDGE = ("Reply with two lines: 'Question: ' and the question, then 'Knowledge: ' and what its vague "
                     "or figurative words mean in terms of the data.")
_OUTPUT_DIALOGUE = "Reply with the dialogue only, one turn per line, each starting with 'User:' or 'Assistant:'."


def explanation_messages(*, dialect: str, schema_text: str, sql: str) -> list[Message]:
    """The chat asking the model to explain `sql`: the first step of OmniSQL's back-translation."""
    engine = dialect_display_name(dialect)
    return [
        {"role": "system", "content": f"You are a data analyst who knows {engine} SQL and explains queries in "
                                      "plain words."},
        {"role": "user", "content": _EXPLAIN_TASK.format(schema=schema_text.strip(), sql=sql.strip())},
    ]


def question_messages(*, dialect: str, explanation: str, style: Style) -> list[Message]:
    """The chat asking for the question a user would ask to get the data `explanation` describes (the
    model's explanation of the query), in `style`. The query itself is not shown: small models shown it
    write SQL, or a question about the SQL, instead of a user's question."""
    output = _OUTPUT_DIALOGUE if style.dialogue else _OUTPUT_KNOWLEDGE if style.needs_knowledge else _OUTPUT_QUESTION
    text = _QUESTION_TASK.format(explanation=explanation.strip() or "(none)", engine=dialect_display_name(dialect),
                                 style=style.description, output=output)
    return [
        {"role": "system", "content": "You turn descriptions of data into the questions people ask, in a given style."},
        {"role": "user", "content": text},
    ]


def clean_explanation(text: str) -> str:
    """An explanation reply without markers, labels or fences, on one line."""
    text = re.sub(r"\[/?[A-Z-]+(?:-START|-END)?\]", " ", text)
    text = re.sub(r"^\W*explanation\W*:?", "", text.strip(), flags=re.I)
    return " ".join(text.replace("```", " ").split())


@dataclass(frozen=True)
class ParsedQuestion:
    question: str
    explanation: str | None = None
    evidence: str | None = None  # the external knowledge of a vague or metaphorical question


def _section(text: str, name: str) -> str | None:
    """The text between [NAME-START] and [NAME-END] (or the next section, or the end)."""
    match = re.search(rf"\[{name}-START\](.*?)(?:\[{name}-END\]|\[[A-Z-]+-START\]|\Z)", text, re.S | re.I)
    return match.group(1).strip() if match else None


# "Question: ..." on one line, or a "**Question**" / "### Question:" heading with the text on the next line
_QUESTION_LABEL = re.compile(r"^[\W_]*(?:natural[- ]language\s+)?question[\W_]*?:\s*(\S.*)$", re.I | re.M)
_QUESTION_HEADING = re.compile(r"^[\W_]*(?:natural[- ]language\s+)?question[\W_]*\n+\s*(\S.*)$", re.I | re.M)
_TURN = re.compile(r"^\W*(User|Assistant)\s*:\s*(.*?)[\]\s]*$", re.I)
# Small models sometimes describe the question instead of writing it, or ask about the SQL.
_META = re.compile(r"^(?:the|this)\s+(?:natural[- ]language\s+)?(?:question|sql|query)\b|\bSQL\b|"
                   r"\b(?:the|a|what|which|this)\s+query\b", re.I)
# What a reply says around its question ("I want to know ..." is a descriptive question, "I cannot ..." not).
_CHATTER = re.compile(r"^\W*(?:Sorry|Sure|Here|As an? AI|Certainly|Of course|Okay|I cannot|I can't|I'm sorry|"
                      r"I am sorry|I don't|I do not|I'm not sure|I am not sure)\b", re.I)
_MIN_WORDS = 3
_SHORT_REPLY_LINES = 3
MAX_QUESTION_CHARS = 2000


def _clean(text: str, *, dialogue: bool) -> str:
    text = text.strip().strip("`").strip()
    if dialogue:  # its turns (other lines dropped), up to the user's last: the dialogue ends with the question
        turns = [m for line in text.splitlines() if (m := _TURN.match(line.strip()))]
        last_user = max((i for i, m in enumerate(turns) if m.group(1).lower() == "user"), default=-1)
        return "\n".join(f"{m.group(1).capitalize()}: {' '.join(m.group(2).split())}" for m in turns[: last_user + 1])
    text = " ".join(text.split())
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text.strip("*").strip()


_KNOWLEDGE_LINE = re.compile(r"^[\W_]*(?:external\s+)?knowledge[\W_]*?:\s*(.*)$", re.I)


def _question_text(text: str, style: Style) -> str | None:
    body = _section(text, "QUESTION")
    if body is not None:
        return body
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _KNOWLEDGE_LINE.match(line.strip())]
    if style.dialogue:  # a dialogue written without the markers: its turns
        return "\n".join(line for line in lines if _TURN.match(line)) or None
    found = _QUESTION_LABEL.findall(text) or _QUESTION_HEADING.findall(text)
    if found:
        return found[-1]
    # a short reply without markers ("Sure, here it is:\nWhich ...?"): its last line, unless that is chatter
    if 0 < len(lines) <= _SHORT_REPLY_LINES and not lines[-1].endswith(":") and not _CHATTER.match(lines[-1]):
        return lines[-1]
    return None


def _knowledge(text: str) -> str | None:
    section = _section(text, "EXTERNAL-KNOWLEDGE")
    if section is not None:
        return section
    found = [m.group(1) for line in text.splitlines() if (m := _KNOWLEDGE_LINE.match(line.strip()))]
    return found[0] if found and found[0].strip() else None


def parse_question_reply(text: str, style: Style) -> ParsedQuestion | None:
    """The question (and explanation, external knowledge) in a reply, or None when it holds none usable:
    no question section, "Question:" line or heading, nor a short reply of at most three lines (whose last
    line is taken; for a dialogue: no User turn), fewer than three words, SQL in the question or a question
    about SQL or a query, a description of the question instead of one ("The question asks ..."), or longer
    than MAX_QUESTION_CHARS. The external knowledge of a vague or metaphorical question is its
    [EXTERNAL-KNOWLEDGE] section or its "Knowledge:" line."""
    body = _question_text(text, style)
    if body is None:
        return None
    question = _clean(body, dialogue=style.dialogue)
    if len(question.split()) < _MIN_WORDS or len(question) > MAX_QUESTION_CHARS:
        return None
    if "```" in question or re.search(r"\bSELECT\b.+\bFROM\b", question) or _META.search(question):
        return None
    if style.dialogue and not re.search(r"^User:", question, re.M):
        return None
    explanation = _section(text, "EXPLANATION")
    evidence = _knowledge(text) if style.needs_knowledge else None
    evidence = _clean(evidence, dialogue=False) if evidence else None
    return ParsedQuestion(question, explanation or None, evidence or None)
