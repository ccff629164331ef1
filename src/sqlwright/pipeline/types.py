"""Plain data passed between pipeline stages and returned by `ask`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas

    from sqlwright.pipeline.examples import Demonstration, NoteHint


@dataclass(frozen=True)
class Candidate:
    sql: str
    origin: str  # "greedy", "sample-3", "cot-1", "repair-of-2", ...
    columns: tuple[str, ...] = ()
    rows: tuple[tuple, ...] | None = None  # None when it did not execute
    error: str | None = None  # guard refusal, database error or timeout, as one line
    truncated: bool = False
    mean_logprob: float | None = None
    group: int | None = None  # index of its execution-result group after the vote
    seconds: float = 0.0
    unanswerable: str | None = None  # the model's reason when it replied the question cannot be answered
    prompt_tokens: int = 0  # of the model call that produced it (a call's samples share one prompt)
    completion_tokens: int = 0
    reply: str | None = field(default=None, repr=False, compare=False)  # the model's raw reply text

    @property
    def ok(self) -> bool:
        return self.error is None and self.rows is not None


@dataclass(frozen=True)
class Answer:
    question: str
    sql: str | None
    columns: tuple[str, ...] = ()
    rows: tuple[tuple, ...] = ()
    truncated: bool = False
    confidence: float = 0.0
    abstained: bool = False
    reason: str | None = None  # why it abstained, or None
    candidates: tuple[Candidate, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds; "total"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    undrawn: int = 0  # candidates not drawn because the vote was already decided (pipeline/draw.py)
    examples: tuple[Demonstration, ...] = ()  # stored examples shown to the model (pipeline/examples.py)
    notes: tuple[NoteHint, ...] = ()  # stored notes shown to the model
    chart: dict | None = None  # a ChartSpec's to_dict() chosen from the result (pipeline/chart.py), or None
    summary: str | None = None  # the answer in one sentence, when asked for (pipeline/summary.py)

    def _repr_html_(self) -> str:
        """How Jupyter shows an answer: the question, the SQL, the first rows, the chart (all escaped)."""
        from sqlwright.pipeline.notebook import answer_html

        return answer_html(self)

    def to_pandas(self) -> pandas.DataFrame:
        """The result rows as a pandas DataFrame (decimals as floats; no columns when it abstained)."""
        import pandas

        records = [tuple(row) for row in self.rows]
        if not records:
            return pandas.DataFrame(columns=list(self.columns))
        return pandas.DataFrame.from_records(records, columns=list(self.columns), coerce_float=True)

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "sql": self.sql,
            "columns": list(self.columns),
            "rows": [list(r) for r in self.rows],
            "truncated": self.truncated,
            "confidence": self.confidence,
            "abstained": self.abstained,
            "reason": self.reason,
            "timings": self.timings,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "undrawn": self.undrawn,
            "examples": [d.to_dict() for d in self.examples],
            "notes": [n.to_dict() for n in self.notes],
            "chart": self.chart,
            "summary": self.summary,
            "candidates": [
                {
                    "sql": c.sql,
                    "origin": c.origin,
                    "error": c.error,
                    "row_count": None if c.rows is None else len(c.rows),
                    "group": c.group,
                    "mean_logprob": c.mean_logprob,
                    "unanswerable": c.unanswerable,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                }
                for c in self.candidates
            ],
        }
