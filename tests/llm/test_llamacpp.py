"""The embedded backend against the real GGUF (0.5B by default): completions, prefix sharing, logprobs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sqlwright.errors import ModelLoadFailed, ModelMissing
from sqlwright.llm.base import LLM

SYSTEM = "You write SQLite SQL. Answer with one SQL query and nothing else."
SCHEMA = (
    "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);\n"
    "CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INTEGER);\n"
    "CREATE TABLE singer_in_concert (concert_id INTEGER REFERENCES concert, singer_id INTEGER REFERENCES singer);\n"
)


def _messages(question: str, schema: str = SCHEMA) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{schema}\nQuestion: {question}"}]


pytestmark = pytest.mark.model


def test_greedy_text_to_sql(embedded_llm) -> None:
    assert isinstance(embedded_llm, LLM)
    [c] = embedded_llm.complete(_messages("How many singers are there?"), max_tokens=40)
    assert "SELECT" in c.text.upper()
    assert "singer" in c.text.lower()
    assert c.prompt_tokens > 50 and 0 < c.completion_tokens <= 40
    assert c.mean_logprob is not None and c.mean_logprob <= 0
    assert c.finish_reason in ("stop", "length") and c.seconds > 0


def test_greedy_is_deterministic_and_matches_across_cache_states(embedded_llm) -> None:
    messages = _messages("List the names of singers from France.")
    [a] = embedded_llm.complete(messages, max_tokens=24)
    [b] = embedded_llm.complete(messages, max_tokens=24)  # prompt now cached: only the last token replays
    embedded_llm.reset_cache()
    [c] = embedded_llm.complete(messages, max_tokens=24)
    assert a.text == b.text == c.text


def test_max_tokens_and_stop(embedded_llm) -> None:
    [c] = embedded_llm.complete(_messages("How many concerts are there?"), max_tokens=3)
    assert c.completion_tokens == 3 and c.finish_reason == "length"
    [s] = embedded_llm.complete(_messages("How many concerts are there?"), max_tokens=40, stop=["FROM"])
    assert "FROM" not in s.text and s.finish_reason == "stop"
    assert "SELECT" in s.text.upper()


@pytest.mark.slow
def test_n_samples_share_one_prefill(embedded_llm) -> None:
    # A long prompt so that the prefill dominates a short generation.
    schema = SCHEMA + "".join(
        f"CREATE TABLE extra_{i} (id INTEGER PRIMARY KEY, label TEXT, amount REAL, created_at TEXT);\n"
        for i in range(12)
    )
    messages = _messages("Which singers are older than 30?", schema)
    embedded_llm.complete([{"role": "user", "content": "hi"}], max_tokens=1)  # warm up the weights' pages

    embedded_llm.reset_cache()
    started = time.perf_counter()
    [single] = embedded_llm.complete(messages, n=1, temperature=0.8, max_tokens=6, seed=1)
    one_call = time.perf_counter() - started
    assert embedded_llm.last_prefill_tokens == single.prompt_tokens

    embedded_llm.reset_cache()
    started = time.perf_counter()
    samples = embedded_llm.complete(messages, n=3, temperature=0.8, max_tokens=6, seed=1)
    three = time.perf_counter() - started
    assert len(samples) == 3
    assert all(s.prompt_tokens == single.prompt_tokens > 300 for s in samples)
    # One prefill for the three samples (the later ones replay the prompt's last token only).
    assert embedded_llm.last_prefill_tokens <= single.prompt_tokens + 2
    assert three < 3 * one_call, (three, one_call)
    # Sample i uses seed + i: the first sample repeats the n=1 call with the same seed.
    assert samples[0].text == single.text
    assert all(s.mean_logprob is not None and s.mean_logprob <= 0 for s in samples)

    # The next question on the same schema reuses the cached schema prefix too.
    embedded_llm.complete(_messages("How many singers are there?", schema), max_tokens=2)
    assert embedded_llm.last_prefill_tokens < single.prompt_tokens // 4


def test_count_tokens(embedded_llm) -> None:
    assert embedded_llm.count_tokens("") == 0
    assert embedded_llm.count_tokens("SELECT") == 1
    short, long = embedded_llm.count_tokens("SELECT 1"), embedded_llm.count_tokens(SCHEMA)
    assert 1 < short < long < len(SCHEMA)


def test_chat_template_is_the_models_chatml(embedded_llm) -> None:
    prompt = embedded_llm.format_prompt([{"role": "user", "content": "hello"}])
    assert "<|im_start|>user\nhello<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_bogus_gguf_is_model_load_failed(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from sqlwright.llm.llamacpp import EmbeddedLLM

    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\x00" * 1000)
    with pytest.raises(ModelLoadFailed, match="cannot load model"):
        EmbeddedLLM(bogus, n_ctx=256)
    with pytest.raises(ModelMissing, match="not found"):
        EmbeddedLLM(tmp_path / "absent.gguf")
