"""The on-disk prompt cache: files that are whole, for this model and these tokens, or else ignored; atomic
writes from several processes; the size bound; and, with the real model, the same answers with and without
it, a new process skipping the prefill, and a changed database never served a stale state."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from pathlib import Path

import pytest

from sqlwright.llm.prompt_cache import SUFFIX, PromptCache

MODEL = "model=abc llama_cpp=0.3 layout"
TOKENS = list(range(100, 400))
STATE = bytes(range(256)) * 40


def _cache(tmp_path: Path, max_bytes: int = 10**8) -> PromptCache:
    return PromptCache(tmp_path / "prompt-cache", max_bytes)


def test_round_trip_and_miss(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    assert cache.load(MODEL, TOKENS) is None
    path = cache.store(MODEL, TOKENS, STATE)
    assert path is not None and path.exists()
    assert cache.load(MODEL, TOKENS) == STATE
    assert cache.load(MODEL, TOKENS[:-1]) is None  # another prefix
    assert cache.load("model=other", TOKENS) is None  # another model


@pytest.mark.parametrize("damage", ["truncate", "flip_state", "flip_token", "garbage", "empty", "bad_header"])
def test_damaged_file_is_ignored_then_rewritten(tmp_path: Path, damage: str) -> None:
    cache = _cache(tmp_path)
    path = cache.store(MODEL, TOKENS, STATE)
    assert path is not None
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 100]
    elif damage == "flip_state":
        data[-10] ^= 0xFF
    elif damage == "flip_token":
        data[len(data) - len(STATE) - 8] ^= 0x01
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif damage == "empty":
        data = bytearray()
    else:
        data[12:20] = b"{not json"
    path.write_bytes(bytes(data))
    assert cache.load(MODEL, TOKENS) is None
    cache.store(MODEL, TOKENS, STATE)
    assert cache.load(MODEL, TOKENS) == STATE


def test_foreign_file_under_the_right_name_is_ignored(tmp_path: Path) -> None:
    """A whole, valid file made for other tokens or another model, found under this key's name, is refused."""
    cache = _cache(tmp_path)
    other = cache.store("model=other", TOKENS, STATE)
    assert other is not None
    other.replace(cache.path_for(MODEL, TOKENS))
    assert cache.load(MODEL, TOKENS) is None
    shorter = cache.store(MODEL, TOKENS[:10], STATE)
    assert shorter is not None
    shorter.replace(cache.path_for(MODEL, TOKENS))
    assert cache.load(MODEL, TOKENS) is None


def test_least_recently_used_states_are_evicted(tmp_path: Path) -> None:
    one = len(STATE) + 2000  # a file's size, header and tokens included
    cache = _cache(tmp_path, max_bytes=3 * one)
    for i in range(3):
        cache.store(MODEL, [i, *TOKENS], STATE)
        time.sleep(0.02)
    assert cache.load(MODEL, [0, *TOKENS]) == STATE  # used: now the most recent
    time.sleep(0.02)
    cache.store(MODEL, [3, *TOKENS], STATE)
    assert cache.total_bytes() <= 3 * one
    assert cache.load(MODEL, [1, *TOKENS]) is None  # the least recently used went first
    assert cache.load(MODEL, [0, *TOKENS]) == STATE
    assert cache.load(MODEL, [3, *TOKENS]) == STATE
    # A state larger than the whole bound is not written at all.
    assert _cache(tmp_path / "small", max_bytes=100).store(MODEL, TOKENS, STATE) is None


def test_unwritable_directory_is_a_miss_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = PromptCache(blocker / "prompt-cache", 10**8)
    assert cache.store(MODEL, TOKENS, STATE) is None
    assert cache.load(MODEL, TOKENS) is None


def _writer(directory: str, seed: int) -> None:
    cache = PromptCache(Path(directory), 10**9)
    for i in range(30):
        key = [i % 3, *TOKENS]
        cache.store(MODEL, key, STATE * (1 + i % 3))
        loaded = cache.load(MODEL, key)
        assert loaded is None or loaded == STATE * (1 + i % 3)


def test_processes_writing_at_once_leave_whole_files(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(directory), s)) for s in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    cache = PromptCache(directory, 10**9)
    for i in range(3):
        assert cache.load(MODEL, [i, *TOKENS]) == STATE * (1 + i)
    assert sorted(p.suffix for p in directory.iterdir()) == [SUFFIX] * 3  # no temporary file left


# --- with the real model ------------------------------------------------------------------------------------

SYSTEM = "You write SQLite SQL. Answer with one SQL query in a ```sql block and nothing else."


def _shop(path: Path, extra_column: bool = False) -> str:
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, city TEXT);"
        "CREATE TABLE purchase (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer, amount REAL,"
        " day TEXT);"
        "INSERT INTO customer VALUES (1, 'Ada', 'Paris'), (2, 'Bob', 'Rome'), (3, 'Cy', 'Paris');"
        "INSERT INTO purchase VALUES (1, 1, 10.5, '2024-01-02'), (2, 1, 4, '2024-02-03'), (3, 2, 7, '2024-03-01');"
    )
    if extra_column:
        con.executescript("ALTER TABLE customer ADD COLUMN loyalty_tier TEXT;"
                          "UPDATE customer SET loyalty_tier = CASE id WHEN 1 THEN 'gold' ELSE 'basic' END;")
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def _messages(schema: str, question: str) -> tuple[list[dict[str, str]], str]:
    prefix = f"Database schema:\n{schema}"
    return ([{"role": "system", "content": SYSTEM},
             {"role": "user", "content": f"{prefix}\n\nQuestion:\n{question}"}], prefix)


@pytest.mark.model
def test_new_model_instance_restores_the_prefix_with_the_same_answers(model_file: Path, tmp_path: Path) -> None:
    from sqlwright.llm.llamacpp import EmbeddedLLM

    schema = "\n".join(
        f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, label_{i} TEXT, amount_{i} REAL, day_{i} TEXT);"
        for i in range(12)
    )
    messages, prefix = _messages(schema, "What is the total amount_3 per label_3?")
    cache = _cache(tmp_path)
    plain = EmbeddedLLM(model_file, n_ctx=2048)
    first = EmbeddedLLM(model_file, n_ctx=2048, prompt_cache=cache)
    try:
        expected_greedy = plain.complete(messages, max_tokens=40, shared_prefix=prefix)
        expected_samples = plain.complete(messages, n=3, temperature=0.8, max_tokens=30, seed=4,
                                          shared_prefix=prefix)
        [made] = first.complete(messages, max_tokens=40, shared_prefix=prefix)
        assert made.text == expected_greedy[0].text  # the prefill stops at the prefix either way
        assert first.last_prefix_restored == 0
        assert len(list(cache.directory.glob(f"*{SUFFIX}"))) == 1
    finally:
        first.close()
    second = EmbeddedLLM(model_file, n_ctx=2048, prompt_cache=cache)  # as a new process would
    try:
        [greedy] = second.complete(messages, max_tokens=40, shared_prefix=prefix)
        prompt_tokens = greedy.prompt_tokens
        assert second.last_prefix_restored > 300
        assert second.last_prefill_tokens == prompt_tokens - second.last_prefix_restored
        assert greedy.text == expected_greedy[0].text
        # The samples after the greedy reply, as in `plain` (same cache history, so the same numbers).
        samples = second.complete(messages, n=3, temperature=0.8, max_tokens=30, seed=4, shared_prefix=prefix)
        assert second.last_prefill_tokens == 0
        assert [s.text for s in samples] == [s.text for s in expected_samples]
    finally:
        second.close()
        plain.close()


@pytest.mark.model
def test_state_llama_cpp_refuses_falls_back_to_the_prefill(model_file: Path, tmp_path: Path) -> None:
    """A file that passes every check of ours but holds no valid state: llama.cpp refuses it, the prompt is
    evaluated instead, the answer is unchanged and the file is replaced by a good one."""
    from sqlwright.llm.llamacpp import EmbeddedLLM

    messages, prefix = _messages("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER);",
                                 "How many singers are older than 30?")
    cache = _cache(tmp_path)
    llm = EmbeddedLLM(model_file, n_ctx=1024, prompt_cache=cache)
    try:
        [expected] = llm.complete(messages, max_tokens=30, shared_prefix=prefix)
        [path] = cache.directory.glob(f"*{SUFFIX}")
        text = llm.format_prompt(messages)
        tokens = llm._prompt_tokens(text)[: llm._shared_boundary(text, llm._prompt_tokens(text), prefix)]
        cache.store(llm.model_id(), tokens, b"\x00" * 4096)  # checksummed, for the right tokens, but no state
        llm.reset_cache()
        [again] = llm.complete(messages, max_tokens=30, shared_prefix=prefix)
        assert again.text == expected.text
        assert llm.last_prefix_restored == 0 and llm.last_prefill_tokens == again.prompt_tokens
        llm.reset_cache()
        llm.complete(messages, max_tokens=30, shared_prefix=prefix)
        assert llm.last_prefix_restored == len(tokens)  # the good state was written back
        assert path.exists()
    finally:
        llm.close()


@pytest.mark.model
def test_a_changed_database_is_never_answered_from_a_stale_state(test_model_name: str, model_cache_dir: Path,
                                                                  tmp_path: Path) -> None:
    """Through the pipeline: a second question restores the schema's state; after a column is added the
    prompt is another one, a new state is made, and the answer uses the new column."""
    import sqlwright
    from sqlwright.config import load_settings
    from sqlwright.llm import clear_loaded_models, load_llm

    url = _shop(tmp_path / "shop.db")
    settings = load_settings(cache_dir=model_cache_dir, model=test_model_name, n_ctx=4096)
    options = {"candidates": 1, "repair_rounds": 0}
    cache_dir = model_cache_dir / "prompt-cache"
    before = set(cache_dir.glob(f"*{SUFFIX}")) if cache_dir.exists() else set()
    clear_loaded_models()
    try:
        with sqlwright.connect(url, model=test_model_name, cache_dir=model_cache_dir, n_ctx=4096) as conn:
            conn.ask("How many customers are there?", **options)
            made = set(cache_dir.glob(f"*{SUFFIX}")) - before
            assert len(made) == 1
            llm = load_llm(test_model_name, settings)
            llm.reset_cache()  # forget the in-memory prefix: the state comes from disk
            answer = conn.ask("How many customers live in Paris?", **options)
            assert llm.last_prefix_restored > 0
            assert list(answer.rows) == [(2,)]
        _shop(tmp_path / "shop.db", extra_column=True)
        with sqlwright.connect(url, model=test_model_name, cache_dir=model_cache_dir, n_ctx=4096) as conn:
            answer = conn.ask("Show the name of every customer whose loyalty_tier is 'gold'.", **options)
            assert llm.last_prefix_restored == 0  # nothing on disk for the new schema
            assert "loyalty_tier" in answer.sql
            assert list(answer.rows) == [("Ada",)]
        assert len(set(cache_dir.glob(f"*{SUFFIX}")) - before) == 2
    finally:
        clear_loaded_models()


def test_a_gguf_sqlwright_did_not_assemble_is_hashed_once(tmp_path: Path, monkeypatch) -> None:
    """The prompt cache's model identity needs the file's sha256: remembered beside the states, so a new
    process does not read the whole file again, and computed again once the file changes."""
    import hashlib

    from sqlwright.llm import models

    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF" + bytes(5000))
    memo = tmp_path / "prompt-cache"
    assert models.known_sha256(gguf, memo) == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert len(list(memo.glob("model-*.json"))) == 1

    def no_read(path: Path) -> str:
        raise AssertionError("hashed again")

    monkeypatch.setattr(models, "file_sha256", no_read)
    assert models.known_sha256(gguf, memo) == hashlib.sha256(gguf.read_bytes()).hexdigest()
    monkeypatch.undo()
    gguf.write_bytes(b"GGUF" + bytes(6000))
    assert models.known_sha256(gguf, memo) == hashlib.sha256(gguf.read_bytes()).hexdigest()
