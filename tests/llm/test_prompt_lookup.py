"""Prompt-lookup decoding in the embedded backend, on real text-to-SQL prompts: greedy replies identical to
plain greedy decoding, drafts taken and dropped correctly, and the KV cache left as the records say.

A draft token's distribution comes from a row of a batch, and llama.cpp's CPU kernels for a batch do not add
up in the same order as for one token: the logits agree to a few hundredths, not bit for bit. So where two best
tokens are that close (a near-tie), the two decodings may take different ones, as sampling several sequences
in one batch already may. The tests accept a difference only at such a near-tie of the plain distribution."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlwright.db import open_database, render_schema
from sqlwright.pipeline.prompt import build_messages, schema_block

pytestmark = pytest.mark.model

QUESTIONS = [
    ("concert_singer", "What are the names and release years for all the songs of the youngest singer?"),
    ("pets_1", "Find the average weight for each pet type."),
    ("car_1", "What is the name of the country with the most car makers?"),
    ("world_1", "What are the names of the countries in Asia whose population is over 50 million?"),
    ("employee_hire_evaluation", "Find the name of the employee who got the highest one time bonus."),
    ("flight_2", "Which airlines have flights departing from the city of Aberdeen?"),
]


@pytest.fixture(scope="module")
def prompts(spider_db) -> list[tuple[list[dict[str, str]], str]]:
    out = []
    for db_id, question in QUESTIONS:
        db = open_database(f"sqlite:///{spider_db(db_id)}")
        try:
            schema = render_schema(db.schema())
        finally:
            db.close()
        out.append((build_messages(schema, question, dialect="sqlite"), schema_block(schema, dialect="sqlite")))
    return out


@pytest.fixture(scope="module")
def pair(model_file: Path):
    from sqlwright.llm.llamacpp import EmbeddedLLM

    plain = EmbeddedLLM(model_file, n_ctx=4096, lookup_tokens=0)
    lookup = EmbeddedLLM(model_file, n_ctx=4096, lookup_tokens=6)
    yield plain, lookup
    plain.close()
    lookup.close()


def _cells_match_records(llm) -> None:
    """Sequence 0 holds exactly the tokens the backend records (prompt + kept continuation); no other lives."""
    import llama_cpp

    assert llama_cpp.llama_memory_seq_pos_max(llm._memory, 0) == len(llm._cached) - 1
    for seq in range(1, llm._n_seq):
        assert llama_cpp.llama_memory_seq_pos_max(llm._memory, seq) == -1
    assert set(llm._tips) == {0}


NEAR_TIE = 0.2  # nats between the two best tokens of the plain distribution


def _same_or_near_tie(plain, a, other, b) -> bool:
    """True when greedy replies `a` (from `plain`) and `b` (from `other`) are equal, or first part where the
    plain distribution's two best tokens are within NEAR_TIE (read from `plain`'s kept continuation)."""
    if a.text == b.text:
        assert b.completion_tokens == a.completion_tokens and b.finish_reason == a.finish_reason
        assert b.mean_logprob == pytest.approx(a.mean_logprob, abs=1e-2)
        return True
    n_prompt = plain._prompt_len
    mine, theirs = plain._cached[n_prompt:], other._cached[n_prompt:]
    at = next(i for i, (x, y) in enumerate(zip(mine, theirs, strict=False)) if x != y)
    dist = plain._cached_dists[n_prompt + at]
    assert dist.ids.size > 1 and -dist.logits[1] < NEAR_TIE, (at, dist.logits[:3], a.text, b.text)
    return False


def test_greedy_is_identical_with_prompt_lookup(pair, prompts) -> None:
    plain, lookup = pair
    drafted = accepted = identical = 0
    for messages, prefix in prompts:
        [a] = plain.complete(messages, max_tokens=120, shared_prefix=prefix)
        [b] = lookup.complete(messages, max_tokens=120, shared_prefix=prefix)
        identical += _same_or_near_tie(plain, a, lookup, b)
        drafted += lookup.last_draft_tokens
        accepted += lookup.last_draft_accepted
        _cells_match_records(lookup)
    assert drafted > 0 and 0 < accepted <= drafted
    assert identical >= len(prompts) - 2


@pytest.mark.parametrize("oracle", ["right", "wrong"])
def test_drafts_all_taken_or_all_dropped_leave_the_reply_unchanged(pair, prompts, oracle, monkeypatch) -> None:
    """Drafts that are the true continuation are all taken; drafts that are never right are all dropped
    (their cells removed, the sample going on in the same sequence); the reply is the plain one either way."""
    plain, lookup = pair
    messages, prefix = prompts[0]
    [expected] = plain.complete(messages, max_tokens=60, shared_prefix=prefix)
    truth = lookup._prompt_tokens(lookup.format_prompt(messages) + expected.text)
    n_prompt = len(lookup._prompt_tokens(lookup.format_prompt(messages)))

    def draft(node, max_depth):
        start = n_prompt + node.depth
        if oracle == "right":
            return truth[start : start + min(5, max_depth - node.depth)]
        return [11] * min(3, max_depth - node.depth)  # a token ("," ) that never follows here

    monkeypatch.setattr(lookup, "_lookup_draft", draft)
    lookup.reset_cache()
    [got] = lookup.complete(messages, max_tokens=60, shared_prefix=prefix)
    if oracle == "wrong":  # every token comes from the first row of its batch: the plain numbers exactly
        assert got.text == expected.text
    elif not _same_or_near_tie(plain, expected, lookup, got):
        return
    if oracle == "right":
        assert lookup.last_draft_accepted >= got.completion_tokens // 2
    else:
        assert lookup.last_draft_accepted <= 2 and lookup.last_draft_tokens > 10
    _cells_match_records(lookup)


def test_samples_with_prompt_lookup(pair, prompts) -> None:
    """Samples walk the drafts like any other node: they finish, differ from each other, are reproducible,
    and the greedy reply and samples leave the cache consistent."""
    _, lookup = pair
    messages, prefix = prompts[1]

    def greedy_then_samples():
        lookup.reset_cache()
        lookup.complete(messages, max_tokens=80, shared_prefix=prefix)
        return lookup.complete(messages, n=4, temperature=0.8, max_tokens=80, seed=7, shared_prefix=prefix)

    first = greedy_then_samples()
    _cells_match_records(lookup)
    assert lookup.last_draft_tokens > 0
    again = greedy_then_samples()
    assert [c.text for c in again] == [c.text for c in first]
    assert len({c.text for c in first}) > 1
    assert all("SELECT" in c.text.upper() for c in first)
    assert all(c.mean_logprob is not None and c.mean_logprob < 0 for c in first)
    _cells_match_records(lookup)
