"""Metrics: EX, Soft-F1, R-VES buckets, TrustSQL RS(c), breakdowns, latency, exclusions."""

from __future__ import annotations

import math

import pytest

from sqlwright.eval.metrics import (
    drop_outliers,
    percentile,
    r_ves,
    reliability_scores,
    summarize,
    trust_score,
    ves_reward,
    ves_reward_from_times,
)
from sqlwright.eval.types import Example, Verdict


def ex(i, db="d1", feasible=True, difficulty=None, category=None):
    return Example(id=str(i), question="q", db=db, gold="SELECT 1", feasible=feasible,
                   difficulty=difficulty, category=category)


def v(i, correct, abstained=False, **kw):
    return Verdict(id=str(i), correct=correct, pred_sql=None if abstained else "SELECT 1", abstained=abstained, **kw)


@pytest.mark.parametrize(
    ("ratio", "reward"),
    [(0, 0), (2.0, 1.25), (5, 1.25), (1.0, 1.0), (1.99, 1.0), (0.5, 0.75), (0.99, 0.75), (0.25, 0.5), (0.1, 0.25)],
)
def test_ves_reward_buckets(ratio, reward):
    assert ves_reward(ratio) == reward


def test_ves_from_times_drops_outliers_and_keeps_equal_values():
    assert drop_outliers([1.0, 1.0, 1.0]) == [1.0, 1.0, 1.0]  # std 0: BIRD would divide by zero
    values = [1.0] * 20 + [100.0]
    assert 100.0 not in drop_outliers(values)
    # gold twice as slow as the prediction every time -> ratio 2 -> 1.25
    assert ves_reward_from_times([0.2, 0.2, 0.2], [0.1, 0.1, 0.1]) == 1.25
    assert ves_reward_from_times([0.1], [0.5]) == 0.25


def test_r_ves_is_mean_sqrt_reward():
    assert r_ves([1.25, 0.0, 1.0, None]) == pytest.approx((math.sqrt(1.25) + 1.0) / 4)


def test_trust_score_cases():
    assert trust_score(ex(1), v(1, True), 10) == 1
    assert trust_score(ex(1), v(1, False), 10) == -10
    assert trust_score(ex(1), v(1, False, abstained=True), 10) == 0
    assert trust_score(ex(1, feasible=False), v(1, True, abstained=True), 10) == 1
    assert trust_score(ex(1, feasible=False), v(1, False), 10) == -10


def test_reliability_scores_for_0_10_and_n():
    pairs = [
        (ex(1), v(1, True)),
        (ex(2), v(2, False)),
        (ex(3), v(3, False, abstained=True)),
        (ex(4, feasible=False), v(4, True, abstained=True)),
    ]
    rs = reliability_scores(pairs)
    assert rs["0"] == pytest.approx((1 + 0 + 0 + 1) / 4)
    assert rs["10"] == pytest.approx((1 - 10 + 0 + 1) / 4)
    assert rs["N"] == pytest.approx((1 - 4 + 0 + 1) / 4)


def test_summarize_breakdowns_latency_tokens_and_exclusion():
    pairs = [
        (ex(1, "a", difficulty="easy", category="join"), v(1, True, seconds=1.0, prompt_tokens=100, completion_tokens=10, soft_f1=1.0)),
        (ex(2, "a", difficulty="hard", category="join"), v(2, False, seconds=3.0, prompt_tokens=300, completion_tokens=30, soft_f1=0.5)),
        (ex(3, "wta_1", difficulty="easy"), v(3, False, seconds=2.0, error="timeout", soft_f1=0.0)),
    ]
    s = summarize(pairs, exclude_dbs=["wta_1"])
    assert s["count"] == 3 and s["ex"] == pytest.approx(1 / 3)
    assert s["soft_f1"] == pytest.approx(0.5)
    assert s["r_ves"] is None
    assert s["timeouts"] == 1 and s["errors"] == 1
    assert s["by_difficulty"] == {
        "easy": {"count": 2, "correct": 1, "ex": 0.5},
        "hard": {"count": 1, "correct": 0, "ex": 0.0},
    }
    assert s["by_category"]["join"]["count"] == 2 and "None" not in s["by_category"]
    assert s["by_db"]["wta_1"]["ex"] == 0.0
    assert s["latency"]["median"] == 2.0 and s["latency"]["mean"] == 2.0
    assert s["latency"]["p90"] == pytest.approx(2.8)
    assert s["tokens"]["prompt_mean"] == 200
    assert s["excluding"]["dbs"] == ["wta_1"] and s["excluding"]["ex"] == 0.5 and s["excluding"]["count"] == 2


def test_summarize_without_times_or_tokens():
    s = summarize([(ex(1), v(1, True))])
    assert s["latency"] is None and s["tokens"] is None and "excluding" not in s


def test_percentile_interpolates():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 90) == 5
    assert percentile([], 90) == 0.0
