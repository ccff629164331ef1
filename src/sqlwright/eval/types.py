"""Plain data of the evaluator: an example to answer and the verdict on one prediction."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    id: str
    question: str
    db: str  # database id within the dataset (resolved to a URL by the dataset)
    gold: str  # gold SQL (SQL-Eval: may hold ';'-separated alternatives and {a,b} column sets)
    evidence: str | None = None  # BIRD evidence / SQL-Eval instructions, passed to the model as a hint
    category: str | None = None  # SQL-Eval query_category
    difficulty: str | None = None  # Spider hardness (easy/medium/hard/extra) or BIRD difficulty
    feasible: bool = True  # False: the question cannot be answered (abstention is correct)
    extra: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Prediction:
    id: str
    sql: str | None  # None: abstained
    seconds: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None  # the predictor's own failure (model error), if any
    # How a model predictor got there (the pipeline's candidates, votes, timings, confidence), as JSON data.
    trace: dict | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Verdict:
    id: str
    correct: bool
    pred_sql: str | None
    abstained: bool = False
    error: str | None = None  # prediction failed to run / timed out; or gold failed
    gold_error: str | None = None
    soft_f1: float | None = None
    ves: float | None = None
    seconds: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    note: str | None = None  # what the comparison rule points out (e.g. a Defog SQL-Eval quirk that decided)
