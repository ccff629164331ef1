"""The embedded backend's numpy sampler on synthetic logits: candidates, normaliser and the filter chain
(top-k 40, top-p 0.95, min-p 0.05, temperature). No model needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sqlwright.llm.llamacpp import _draw, _reduce

VOCAB = 151_936


def _row(head: list[float], rest: float = -40.0) -> np.ndarray:
    """A logits row: `head` for tokens 0, 1, ..., every other token at `rest` (far out of reach)."""
    row = np.full(VOCAB, rest, dtype=np.float32)
    row[: len(head)] = head
    return row


def _frequencies(row: np.ndarray, temperature: float, draws: int = 4000, seed: int = 0) -> dict[int, float]:
    dist = _reduce(row, np.empty(VOCAB, dtype=np.float32))
    rng = np.random.default_rng(seed)
    tokens = [_draw(dist, temperature, rng)[0] for _ in range(draws)]
    ids, counts = np.unique(tokens, return_counts=True)
    return {int(i): c / draws for i, c in zip(ids, counts, strict=True)}


def test_reduce_keeps_the_best_candidates_and_the_full_normaliser() -> None:
    rng = np.random.default_rng(1)
    row = rng.normal(0, 3, VOCAB).astype(np.float32)
    dist = _reduce(row, np.empty(VOCAB, dtype=np.float32))
    assert dist.ids.size == 40
    assert list(dist.ids) == list(np.argsort(-row, kind="stable")[:40])
    assert dist.logits[0] == 0 and np.all(np.diff(dist.logits) <= 0)
    top = row.astype(np.float64).max()
    expected_log_z = math.log(np.exp(row.astype(np.float64) - top).sum())
    assert dist.log_z == pytest.approx(expected_log_z, rel=1e-6)


def test_greedy_takes_the_argmax_and_reports_its_log_softmax() -> None:
    row = _row([1.0, 3.0, 2.0])
    dist = _reduce(row, np.empty(VOCAB, dtype=np.float32))
    token, logprob = _draw(dist, 0.0, None)
    assert token == 1
    values = row.astype(np.float64)
    assert logprob == pytest.approx(values[1] - math.log(np.exp(values).sum()), abs=1e-6)


def test_temperature_sharpens_and_flattens() -> None:
    row = _row([0.0, -1.0])
    # p(best) = 1 / (1 + e^(-1/T)) among the two.
    for temperature in (0.5, 1.0, 2.0):
        freq = _frequencies(row, temperature)
        assert set(freq) == {0, 1}
        assert freq[0] == pytest.approx(1 / (1 + math.exp(-1 / temperature)), abs=0.03)


def test_min_p_drops_tokens_below_a_twentieth_of_the_best() -> None:
    freq = _frequencies(_row([0.0, -2.9, -3.1]), 1.0)
    assert set(freq) == {0, 1}  # e^-3.1 < 0.05 < e^-2.9


def test_top_p_keeps_the_head_reaching_95_percent() -> None:
    probs = [0.5, 0.3, 0.16, 0.04]  # cumulative 0.5, 0.8, 0.96: the fourth token is cut (min-p would keep it)
    freq = _frequencies(_row([math.log(p) for p in probs]), 1.0, draws=6000)
    assert set(freq) == {0, 1, 2}
    assert freq[0] == pytest.approx(0.5 / 0.96, abs=0.03)


def test_top_k_keeps_forty_tokens() -> None:
    row = _row([-0.001 * i for i in range(100)])  # 100 near-equal tokens: only top-k limits them
    freq = _frequencies(row, 1.0, draws=6000)
    assert set(freq) <= set(range(40)) and len(freq) >= 38


def test_the_draw_depends_on_the_generator_only() -> None:
    row = _row([0.0, -0.5, -1.0, -1.5])
    dist = _reduce(row, np.empty(VOCAB, dtype=np.float32))

    def draws(seed: list[int]) -> list[int]:
        rng = np.random.default_rng(seed)
        return [_draw(dist, 0.8, rng)[0] for _ in range(50)]

    assert draws([7, 1]) == draws([7, 1])
    assert draws([7, 1]) != draws([7, 2])
