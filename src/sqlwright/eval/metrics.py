"""Metrics over verdicts: execution accuracy, Soft-F1, R-VES, TrustSQL's reliability score, breakdowns,
latency and tokens. Every function takes plain data and returns plain (JSON-safe) data.

Scales: every score is a fraction (EX 0–1; R-VES is BIRD's mean of sqrt(reward), 0–1.118, i.e. BIRD's
figure divided by 100; RS(c) is the mean per-question score, at most 1).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence

from sqlwright.eval.types import Example, Verdict

Pair = tuple[Example, Verdict]


# --- R-VES ---------------------------------------------------------------------------------------
def drop_outliers(values: Sequence[float]) -> list[float]:
    """BIRD's ``clean_abnormal``: keep values strictly within mean ± 3 standard deviations (population).
    When that keeps nothing (all values equal, so the std is 0) the values are kept as they are —
    BIRD's script divides by zero there and scores the question 0, which is a bug, not a rule."""
    if not values:
        return []
    mean = statistics.fmean(values)
    std = statistics.pstdev(values)
    kept = [v for v in values if mean - 3 * std < v < mean + 3 * std]
    return kept or list(values)


def ves_reward(time_ratio: float) -> float:
    """BIRD mini-dev's R-VES reward for a correct prediction whose gold/predicted time ratio is given."""
    if time_ratio <= 0:
        return 0.0
    if time_ratio >= 2:
        return 1.25
    if time_ratio >= 1:
        return 1.0
    if time_ratio >= 0.5:
        return 0.75
    if time_ratio >= 0.25:
        return 0.5
    return 0.25


def ves_reward_from_times(gold_seconds: Sequence[float], pred_seconds: Sequence[float]) -> float:
    """Reward from paired timings of repeated runs: mean of gold/pred ratios after dropping outliers."""
    ratios = [g / p for g, p in zip(gold_seconds, pred_seconds, strict=True) if p > 0]
    if not ratios:
        return 0.0
    kept = drop_outliers(ratios)
    return ves_reward(sum(kept) / len(kept))


def r_ves(rewards: Iterable[float | None]) -> float:
    """R-VES: mean of sqrt(reward) over all questions (None counts as 0)."""
    values = [math.sqrt(r or 0.0) for r in rewards]
    return sum(values) / len(values) if values else 0.0


# --- TrustSQL ------------------------------------------------------------------------------------
def trust_score(example: Example, verdict: Verdict, penalty: float) -> float:
    """TrustSQL's per-question score: +1 for a correct answer or an abstention on an infeasible
    question, 0 for an abstention on a feasible one, −penalty for a wrong answer or any answer to an
    infeasible question."""
    if verdict.abstained:
        return 0.0 if example.feasible else 1.0
    if not example.feasible:
        return -penalty
    return 1.0 if verdict.correct else -penalty


def reliability_scores(pairs: Sequence[Pair]) -> dict[str, float]:
    """RS(c) for c in 0, 10 and N (the number of questions), as mean per-question scores."""
    n = len(pairs)
    out: dict[str, float] = {}
    for label, c in (("0", 0.0), ("10", 10.0), ("N", float(n))):
        out[label] = sum(trust_score(e, v, c) for e, v in pairs) / n if n else 0.0
    return out


# --- summaries -----------------------------------------------------------------------------------
def execution_accuracy(verdicts: Sequence[Verdict]) -> float:
    """Fraction of verdicts that are correct (0 for none)."""
    return sum(1 for v in verdicts if v.correct) / len(verdicts) if verdicts else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency(verdicts: Sequence[Verdict]) -> dict[str, float] | None:
    """Median, mean and p90 seconds per question over verdicts that carry a time; None if none do."""
    secs = [v.seconds for v in verdicts if v.seconds is not None]
    if not secs:
        return None
    return {
        "median": statistics.median(secs),
        "mean": statistics.fmean(secs),
        "p90": percentile(secs, 90),
        "count": len(secs),
    }


def tokens(verdicts: Sequence[Verdict]) -> dict[str, float] | None:
    """Mean prompt and completion tokens per question over verdicts that report them; None if none do."""
    prompt = [v.prompt_tokens for v in verdicts if v.prompt_tokens is not None]
    completion = [v.completion_tokens for v in verdicts if v.completion_tokens is not None]
    if not prompt and not completion:
        return None
    return {
        "prompt_mean": statistics.fmean(prompt) if prompt else 0.0,
        "completion_mean": statistics.fmean(completion) if completion else 0.0,
        "count": max(len(prompt), len(completion)),
    }


def breakdown(pairs: Sequence[Pair], key: Callable[[Example], str | None]) -> dict[str, dict]:
    """Count, EX and Soft-F1 per value of `key(example)` (examples whose key is None are left out),
    in sorted key order."""
    groups: dict[str, list[Verdict]] = {}
    for example, verdict in pairs:
        k = key(example)
        if k is not None:
            groups.setdefault(str(k), []).append(verdict)
    return {
        k: {"count": len(vs), "correct": sum(v.correct for v in vs), "ex": execution_accuracy(vs)}
        for k, vs in sorted(groups.items())
    }


def _core(pairs: Sequence[Pair]) -> dict:
    verdicts = [v for _, v in pairs]
    f1 = [v.soft_f1 for v in verdicts if v.soft_f1 is not None]
    out = {
        "count": len(pairs),
        "correct": sum(v.correct for v in verdicts),
        "ex": execution_accuracy(verdicts),
        "soft_f1": (sum(v.soft_f1 or 0.0 for v in verdicts) / len(verdicts)) if f1 else None,
        "r_ves": r_ves(v.ves for v in verdicts) if any(v.ves is not None for v in verdicts) else None,
        "rs": reliability_scores(pairs),
        "abstained": sum(v.abstained for v in verdicts),
        "errors": sum(1 for v in verdicts if v.error),
        "timeouts": sum(1 for v in verdicts if v.error == "timeout"),
        "gold_errors": sum(1 for v in verdicts if v.gold_error),
    }
    return out


def summarize(pairs: Sequence[Pair], *, exclude_dbs: Iterable[str] = ()) -> dict:
    """The full metrics of a run: the core scores, breakdowns by difficulty, category and database,
    latency and tokens, and — when `exclude_dbs` is given — the core scores without those databases
    (e.g. Spider's rebuilt wta_1)."""
    verdicts = [v for _, v in pairs]
    summary = _core(pairs)
    summary["by_difficulty"] = breakdown(pairs, lambda e: e.difficulty)
    summary["by_category"] = breakdown(pairs, lambda e: e.category)
    summary["by_db"] = breakdown(pairs, lambda e: e.db)
    summary["latency"] = latency(verdicts)
    summary["tokens"] = tokens(verdicts)
    excluded = sorted(set(exclude_dbs))
    if excluded:
        kept = [(e, v) for e, v in pairs if e.db not in excluded]
        summary["excluding"] = {"dbs": excluded, **_core(kept)}
    return summary
