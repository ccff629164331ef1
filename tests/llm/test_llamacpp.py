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


# --- batched multi-sequence sampling -------------------------------------------------------------------
OPEN_ENDED = [{"role": "user", "content": "Name one animal and describe it in a single sentence."}]
WIDE_SCHEMA = SCHEMA + "".join(
    f"CREATE TABLE extra_{i} (id INTEGER PRIMARY KEY, label TEXT, amount REAL, created_at TEXT);\n" for i in range(8)
)


def test_n_samples_differ_and_each_is_complete(embedded_llm) -> None:
    samples = embedded_llm.complete(OPEN_ENDED, n=4, temperature=0.8, max_tokens=24, seed=11)
    assert len(samples) == 4
    assert len({s.text for s in samples}) >= 3, [s.text for s in samples]
    for s in samples:
        assert s.text and 0 < s.completion_tokens <= 24
        assert s.prompt_tokens == samples[0].prompt_tokens
        assert s.mean_logprob is not None and s.mean_logprob < 0
        assert s.finish_reason in ("stop", "length") and s.seconds > 0


def test_samples_are_reproducible_for_a_seed(embedded_llm) -> None:
    def draw(seed: int) -> list[tuple[str, float | None]]:
        embedded_llm.reset_cache()
        return [(s.text, s.mean_logprob) for s in
                embedded_llm.complete(OPEN_ENDED, n=4, temperature=0.8, max_tokens=20, seed=seed)]

    first = draw(5)
    assert draw(5) == first
    assert draw(6) != first
    # A single sample is reproducible too, whatever the cache holds before it. (Whether it equals sample 0 of
    # an n=4 call depends on the build: a batch of 4 rows is summed by other CPU kernels than one row, and on
    # an AVX2-only build the difference is large enough to flip a draw near a boundary.)
    embedded_llm.reset_cache()
    [single] = embedded_llm.complete(OPEN_ENDED, n=1, temperature=0.8, max_tokens=20, seed=5)
    embedded_llm.complete(OPEN_ENDED, n=1, temperature=0.0, max_tokens=8)  # another state in the cache
    [again] = embedded_llm.complete(OPEN_ENDED, n=1, temperature=0.8, max_tokens=20, seed=5)
    assert (again.text, again.mean_logprob) == (single.text, single.mean_logprob)


def test_greedy_matches_llama_cpp_generate(embedded_llm, model_file: Path) -> None:
    """The single-sequence greedy path gives the reply llama-cpp-python's own generate loop gives (the code
    path the backend used before batched sampling)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    messages = _messages("For each country, how many singers are older than 30? Order by the count.")
    prompt = embedded_llm._prompt_tokens(embedded_llm.format_prompt(messages))
    reference = llama_cpp.Llama(model_path=str(model_file), n_ctx=1024, seed=0, verbose=False)
    try:
        tokens: list[int] = []
        for token in reference.generate(prompt, temp=0.0, repeat_penalty=1.0):
            if llama_cpp.llama_vocab_is_eog(reference._model.vocab, token) or len(tokens) == 48:
                break
            tokens.append(token)
        expected = reference.detokenize(tokens).decode("utf-8", errors="ignore")
    finally:
        reference.close()
    embedded_llm.reset_cache()
    [c] = embedded_llm.complete(messages, max_tokens=48)
    assert c.text == expected
    assert "SELECT" in c.text.upper()


def test_greedy_again_and_samples_after_greedy_reuse_the_decoded_reply(embedded_llm) -> None:
    messages = _messages("What is the average age of singers from each country?", WIDE_SCHEMA)
    embedded_llm.reset_cache()
    [greedy] = embedded_llm.complete(messages, max_tokens=64)
    assert embedded_llm.last_decoded_tokens == greedy.completion_tokens - 1  # the last (EOS) is not decoded
    [again] = embedded_llm.complete(messages, max_tokens=64)
    assert again.text == greedy.text and again.mean_logprob == greedy.mean_logprob
    assert embedded_llm.last_prefill_tokens == 0 and embedded_llm.last_decoded_tokens == 0
    # The pipeline's pattern: samples after the greedy call walk the greedy reply where they agree with it,
    # and samples that agree with each other share their decoding.
    samples = embedded_llm.complete(messages, n=4, temperature=0.7, max_tokens=64, seed=2)
    assert embedded_llm.last_prefill_tokens == 0
    assert embedded_llm.last_decoded_tokens < sum(s.completion_tokens for s in samples) - 4
    greedy_at_four = embedded_llm.complete(messages, n=4, max_tokens=64)
    assert [c.text for c in greedy_at_four] == [greedy.text] * 4


def test_n_samples_are_decoded_together(embedded_llm) -> None:
    # How much faster that is belongs to bench/sampling_speed.py (no timed tests); here: the n sequences
    # share decode calls, so there are clearly fewer calls than tokens generated.
    messages = _messages("For each country, list the number of singers and their average age.", WIDE_SCHEMA)
    embedded_llm.complete(messages, max_tokens=1)  # prompt in the cache: measure decoding only
    samples = embedded_llm.complete(messages, n=4, temperature=0.8, max_tokens=48, seed=3)
    generated = sum(s.completion_tokens for s in samples)
    assert len(samples) == 4 and generated >= 8
    assert embedded_llm.last_decode_calls < 0.75 * generated, (embedded_llm.last_decode_calls, generated)


def test_cross_request_prefix_reuse_with_samples(embedded_llm) -> None:
    first = _messages("How many singers are there?", WIDE_SCHEMA)
    second = _messages("Which concerts took place in 2014?", WIDE_SCHEMA)
    embedded_llm.reset_cache()
    [one] = embedded_llm.complete(first, max_tokens=16)
    assert embedded_llm.last_prefill_tokens == one.prompt_tokens > 200
    warm = embedded_llm.complete(second, n=4, temperature=0.8, max_tokens=24, seed=9)
    # Only the question (and the end of the prompt) after the shared system prompt + schema is evaluated.
    assert 0 < embedded_llm.last_prefill_tokens < one.prompt_tokens // 4
    # The kept prefix holds the same cells as a fresh prefill: the samples come out the same.
    embedded_llm.reset_cache()
    cold = embedded_llm.complete(second, n=4, temperature=0.8, max_tokens=24, seed=9)
    assert embedded_llm.last_prefill_tokens == cold[0].prompt_tokens
    assert [c.text for c in warm] == [c.text for c in cold]


def test_more_samples_than_parallel_sequences_run_in_rounds(embedded_llm) -> None:
    assert embedded_llm.max_parallel < 10
    samples = embedded_llm.complete(OPEN_ENDED, n=10, temperature=0.9, max_tokens=12, seed=4)
    assert len(samples) == 10 and all(s.text for s in samples)
    assert len({s.text for s in samples}) >= 5


def test_small_context_runs_samples_in_rounds_and_rejects_long_prompts(model_file: Path) -> None:
    pytest.importorskip("llama_cpp")
    from sqlwright.errors import LLMRequestFailed
    from sqlwright.llm.llamacpp import EmbeddedLLM

    llm = EmbeddedLLM(model_file, n_ctx=256, max_parallel=4, seed=0)
    try:
        messages = _messages("How many singers are there?")
        prompt_tokens = llm.complete(messages, max_tokens=1)[0].prompt_tokens
        # 256 cells hold the prompt and one 120-token sample at a time: four samples take four rounds.
        max_tokens = 256 - prompt_tokens - 10
        samples = llm.complete(messages, n=4, temperature=0.8, max_tokens=max_tokens, seed=1)
        assert len(samples) == 4 and all("SELECT" in s.text.upper() for s in samples)
        with pytest.raises(LLMRequestFailed, match="context holds 256"):
            llm.complete(_messages("How many singers are there?", WIDE_SCHEMA), max_tokens=8)
        # The failed request leaves the backend usable.
        assert llm.complete(messages, max_tokens=8)[0].text
    finally:
        llm.close()


def test_batched_steps_decode_several_sequences_per_call(embedded_llm) -> None:
    """With min_batch 2 every step with two or more new tokens is one llama_decode over several sequences."""
    saved = embedded_llm.min_batch
    embedded_llm.min_batch = 2
    try:
        embedded_llm.reset_cache()
        first = embedded_llm.complete(OPEN_ENDED, n=4, temperature=0.9, max_tokens=16, seed=21)
        assert embedded_llm.last_decode_calls < embedded_llm.last_decoded_tokens
        embedded_llm.reset_cache()
        second = embedded_llm.complete(OPEN_ENDED, n=4, temperature=0.9, max_tokens=16, seed=21)
    finally:
        embedded_llm.min_batch = saved
    assert [c.text for c in first] == [c.text for c in second]
    assert len({c.text for c in first}) >= 3
    assert all(c.mean_logprob is not None and c.mean_logprob < 0 for c in first)


def test_should_stop_cancels_generation_between_tokens(embedded_llm) -> None:
    """A cancel that comes after a few decoded tokens ends the call at the next token with Cancelled, and
    the model answers normally afterwards (the half-written KV cache is forgotten)."""
    from sqlwright.errors import Cancelled

    messages = _messages("List the name, country and age of every singer, ordered by age, then by name.")
    polls = 0
    stopped_at = 0.0

    def should_stop() -> bool:
        nonlocal polls, stopped_at
        polls += 1
        if polls > 5:  # polled at the start, before the prompt's one batch, then before each decoding step
            stopped_at = stopped_at or time.perf_counter()
            return True
        return False

    with pytest.raises(Cancelled):
        embedded_llm.complete(messages, n=2, temperature=0.8, max_tokens=200, should_stop=should_stop)
    assert polls == 6 and time.perf_counter() - stopped_at < 0.5  # at once, not after 200 tokens
    assert embedded_llm.last_decoded_tokens >= 3  # it did stop during the generation
    [after] = embedded_llm.complete(messages, max_tokens=24, should_stop=lambda: False)
    embedded_llm.reset_cache()
    [fresh] = embedded_llm.complete(messages, max_tokens=24)
    assert after.text == fresh.text and "SELECT" in after.text.upper()
