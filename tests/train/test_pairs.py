"""`train pairs`: candidates labelled by the evaluator's rule on real SQLite databases, ExCoT pairing, SENSE,
the prompt ask sends, resuming after SIGKILL, and files `datasets` loads."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pairs_helpers import (
    LABELLED,
    QUESTIONS,
    REPLIES,
    WEAK_REPLIES,
    make_db,
    replies,
    write_jsonl_dataset,
    write_synth_dataset,
)

from sqlwright.db import open_database
from sqlwright.errors import ConfigError, DatasetError, SqlwrightError
from sqlwright.eval.datasets.custom import CustomDataset
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline.ask import Engine
from sqlwright.pipeline.extract import parse_reply
from sqlwright.train.pairs import (
    WORK_FILE,
    PairsOptions,
    build_pairs,
    choose_pairs,
    edit_distance,
    export_pairs,
)
from sqlwright.train.pairs_work import PairsWorkFile
from sqlwright.train.records import read_records
from sqlwright.train.sources import open_source

HERE = Path(__file__).resolve().parent
OPTIONS = PairsOptions(k=3)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture()
def shop(tmp_path: Path) -> Path:
    return make_db(tmp_path / "shop.sqlite")


@pytest.fixture()
def data(tmp_path: Path, shop: Path) -> Path:
    return write_jsonl_dataset(tmp_path / "questions.jsonl", shop)


def run(data: Path, out: Path, llm, *, weak=None, options: PairsOptions = OPTIONS, cache: Path | None = None,
        **kwargs):
    with open_source(data) as dataset:
        return build_pairs(dataset, llm, out, model="strong-m", weak_llm=weak, weak_model="weak-m" if weak else None,
                           options=options, cache_dir=cache or out.parent / "cache", **kwargs)


# --- pairing ---------------------------------------------------------------------------------------------------
def test_edit_distance_counts_character_edits() -> None:
    assert edit_distance("", "") == 0
    assert edit_distance("abc", "") == 3
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("SELECT a FROM t", "SELECT b FROM t") == 1
    assert edit_distance("flaw", "lawn") == edit_distance("lawn", "flaw") == 2


def test_choose_pairs_nearest_farthest_and_random() -> None:
    chosen = ["SELECT name FROM t WHERE x = 1", "SELECT name FROM t"]
    rejected = ["SELECT name FROM t WHERE x = 2", "SELECT 1", "DELETE"]
    rng = random.Random(0)
    assert choose_pairs(chosen, rejected, strategy="nearest", n=1, rng=rng, text=str) == [(chosen[0], rejected[0])]
    far = choose_pairs(chosen, rejected, strategy="farthest", n=1, rng=rng, text=str)
    assert far == [(chosen[0], rejected[2])]  # the longest correct query against the shortest wrong one
    ranked = choose_pairs(chosen, rejected, strategy="nearest", n=6, rng=rng, text=str)
    distances = [edit_distance(a, b) for a, b in ranked]
    assert distances == sorted(distances) and len(ranked) == 6
    draw = choose_pairs(chosen, rejected, strategy="random", n=6, rng=random.Random(3), text=str)
    assert sorted(draw) == sorted(ranked)  # every pair once, in a drawn order
    assert draw == choose_pairs(chosen, rejected, strategy="random", n=6, rng=random.Random(3), text=str)
    assert choose_pairs([], rejected, strategy="nearest", n=1, rng=rng, text=str) == []
    with pytest.raises(ConfigError, match="unknown pairing"):
        choose_pairs(chosen, rejected, strategy="closest", n=1, rng=rng, text=str)
    with pytest.raises(ConfigError, match="unknown pairing"):
        PairsOptions(pairing="closest")


# --- labelling ---------------------------------------------------------------------------------------------------
def test_candidates_are_labelled_by_the_rule_and_empty_gold_is_skipped(tmp_path: Path, data: Path) -> None:
    llm = ScriptedLLM(replies())
    summary = run(data, tmp_path / "out", llm)
    assert llm.remaining == 0 and len(llm.requests) == len(LABELLED)  # no model call for the empty gold
    assert all(r["n"] == 3 and r["temperature"] == 0.8 for r in llm.requests)
    assert "Tokyo" not in json.dumps([r["messages"] for r in llm.requests])
    assert summary.skipped == {"empty gold": 1}
    assert (summary.questions, summary.labelled, summary.candidates, summary.correct) == (4, 3, 9, 4)
    assert summary.model_calls == 3

    labels = {(r["id"], r["candidate"]): r for r in lines(tmp_path / "out" / "labels.jsonl")}
    assert len(labels) == 9
    verdicts = {key: (r["correct"], r["reason"]) for key, r in labels.items()}
    assert verdicts[("count", 0)] == (True, None)  # COUNT(*) spelt otherwise, trailing ';': same answer
    assert verdicts[("count", 1)] == (False, "wrong result")
    assert verdicts[("count", 2)][1].startswith("error: ") and "no such column: nope" in verdicts[("count", 2)][1]
    assert verdicts[("paris", 2)] == (False, "error: the model says the question cannot be answered")
    assert verdicts[("spend", 0)] == (True, None)  # Spider's rule: any column order
    assert verdicts[("spend", 1)] == (False, "error: the reply holds no SQL query")
    assert summary.reasons == {"wrong result": 2, "error: SQLite error": 1,
                               "error: the model says the question cannot be answered": 1,
                               "error: the reply holds no SQL query": 1}

    sft = read_records(tmp_path / "out" / "sft.jsonl", "sft")
    # gold for each labelled question, plus the correct samples that are not the gold written otherwise
    assert [(r["question"][:8], r["source"]) for r in sft] == [
        ("How many", "gold"), ("Which cu", "gold"), ("How much", "gold"), ("How much", "sampled")]
    assert all(parse_reply(r["completion"][0]["content"]).sql == r["sql"] for r in sft)
    assert {r["model"] for r in sft if r["source"] == "sampled"} == {"strong-m"}
    assert {r["model"] for r in sft if r["source"] == "gold"} == {None}

    dpo = read_records(tmp_path / "out" / "dpo.jsonl", "dpo")
    by_question = {r["question"]: r for r in dpo}
    assert len(dpo) == 3
    paris = by_question["Which customers live in Paris?"]
    assert (paris["chosen_sql"], paris["rejected_sql"]) == (
        "SELECT name FROM customers WHERE city = 'Paris'", "SELECT name FROM customers WHERE city = 'Lyon'")
    count = by_question["How many customers are there?"]
    assert count["rejected_sql"] == "SELECT count(nope) FROM customers"  # nearer than "... FROM orders"
    assert count["rejected_reason"].startswith("error: ")
    for r in dpo:  # the chosen parse back to the chosen SQL, and it is one ask's extractor takes
        assert parse_reply(r["chosen"][0]["content"]).sql == r["chosen_sql"]
        assert parse_reply(r["rejected"][0]["content"]).sql == r["rejected_sql"]
    assert not (tmp_path / "out" / "sense.jsonl").exists()
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["skipped"] == {"empty gold": 1}


class BirdRules(CustomDataset):
    """The same questions judged by BIRD's rule (column order matters)."""

    kind = ""  # not registered: `jsonl` stays the custom kind
    comparison = "bird"


def test_the_datasets_own_rule_decides(tmp_path: Path, data: Path) -> None:
    with BirdRules.load(data) as dataset:
        build_pairs(dataset, ScriptedLLM(replies()), tmp_path / "out", options=OPTIONS, cache_dir=tmp_path / "c")
    labels = {(r["id"], r["candidate"]): r["correct"] for r in lines(tmp_path / "out" / "labels.jsonl")}
    assert labels[("spend", 0)] is False  # columns the other way round: wrong for BIRD, right for Spider
    assert labels[("spend", 2)] is True


def test_gold_errors_and_unanswerable_questions_are_skipped_and_counted(tmp_path: Path, shop: Path) -> None:
    path = tmp_path / "q.jsonl"
    rows = [{"id": "bad", "question": "q1", "db": str(shop), "sql": "SELECT nope FROM customers"},
            {"id": "none", "question": "q2", "db": str(shop), "sql": "", "feasible": False},
            {"id": "ok", "question": "How many customers are there?", "db": str(shop),
             "sql": "SELECT count(*) FROM customers"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    llm = ScriptedLLM(REPLIES["count"])
    summary = run(path, tmp_path / "out", llm)
    assert summary.skipped == {"gold error": 1, "infeasible": 1} and summary.labelled == 1
    assert len(llm.requests) == 1
    with PairsWorkFile(tmp_path / "out" / WORK_FILE) as work:
        detail = {q.id: q.detail for q in work.questions()}
    assert "no such column: nope" in detail["bad"]


def test_a_dataset_without_gold_is_refused(tmp_path: Path, shop: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "q", "db": str(shop), "sql": "", "feasible": False}) + "\n")
    with pytest.raises(DatasetError, match="no question has gold SQL"):
        run(path, tmp_path / "out", ScriptedLLM())
    synth = tmp_path / "s.jsonl"
    synth.write_text(json.dumps({"id": "x", "database": "shop", "dialect": "sqlite", "question": "q"}) + "\n")
    with pytest.raises(DatasetError, match=r"s.jsonl:1: no gold SQL"):
        open_source(synth)


# --- the prompt ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cot", [False, True])
def test_the_prompt_is_byte_identical_to_what_ask_sends(tmp_path: Path, data: Path, shop: Path, cot: bool) -> None:
    cache = tmp_path / "cache"
    pairs_llm = ScriptedLLM(replies())
    run(data, tmp_path / "out", pairs_llm, options=PairsOptions(k=3, cot=cot), cache=cache)
    records = {r["question"]: r for r in lines(tmp_path / "out" / "sft.jsonl")}
    for qid, question, _gold, evidence in QUESTIONS:
        if qid not in LABELLED:
            continue
        asked = ScriptedLLM(["```sql\nSELECT 1\n```"])
        with open_database(str(shop)) as db:
            Engine(asked, cache_dir=cache).ask(db, question, evidence=evidence, cot=cot, candidates=1,
                                               repair_rounds=0)
        sent = asked.requests[0]["messages"]
        assert records[question]["prompt"] == sent
        assert json.dumps(records[question]["prompt"]) == json.dumps(sent)  # byte for byte, key order too
        assert pairs_llm.requests[LABELLED.index(qid)]["messages"] == sent  # and what was sampled from
    paris = records["Which customers live in Paris?"]["prompt"][-1]["content"]
    assert "Paris is a city" in paris and "Values in the database" in paris  # evidence and value hints
    assert ("step by step" in records["Which customers live in Paris?"]["prompt"][0]["content"]) is cot


def test_chain_of_thought_gold_comes_from_the_synthesis_reasoning(tmp_path: Path, shop: Path) -> None:
    reasoning = "Customers are in the customers table; count them.\n\n```sql\nSELECT count(*) FROM customers\n```"
    data = write_synth_dataset(tmp_path / "s.jsonl", [QUESTIONS[0], QUESTIONS[1]], cot=reasoning)
    llm = ScriptedLLM([*REPLIES["count"], *REPLIES["paris"]])
    with open_source(data, databases={"shop": f"sqlite:///{shop}"}) as dataset:
        assert dataset.comparison == "spider" and dataset.examples[0].difficulty == "simple"
        build_pairs(dataset, llm, tmp_path / "out", options=PairsOptions(k=3, cot=True), cache_dir=tmp_path / "c")
    gold = [r for r in lines(tmp_path / "out" / "sft.jsonl") if r["source"] == "gold"]
    assert gold[0]["completion"][0]["content"] == reasoning and gold[0]["difficulty"] == "simple"


# --- SENSE ---------------------------------------------------------------------------------------------------------
def test_sense_pairs_a_strong_right_answer_with_a_weak_wrong_one(tmp_path: Path, data: Path) -> None:
    strong_replies = {**REPLIES, "paris": ["```sql\nSELECT 1\n```"] * 3}  # strong never right on paris
    strong, weak = ScriptedLLM(replies(strong_replies)), ScriptedLLM(replies(WEAK_REPLIES))
    summary = run(data, tmp_path / "out", strong, weak=weak)
    assert len(weak.requests) == 3 and weak.remaining == 0
    assert [r["messages"] for r in weak.requests] == [r["messages"] for r in strong.requests]  # the same prompt
    assert (summary.weak_candidates, summary.weak_correct) == (9, 2)
    sense = {r["question"]: r for r in read_records(tmp_path / "out" / "sense.jsonl", "dpo")}
    assert {r["pairing"] for r in sense.values()} == {"sense"}
    labels = lines(tmp_path / "out" / "labels.jsonl")
    weak_wrong = {r["sql"] for r in labels if r["role"] == "weak" and not r["correct"]}
    strong_right = {r["sql"] for r in labels if r["role"] == "strong" and r["correct"]}
    for r in sense.values():
        assert r["rejected_sql"] in weak_wrong
    assert sense["How many customers are there?"]["chosen_sql"] in strong_right
    # no right answer of the strong model: the gold (a strong model's, in SENSE) is the chosen one
    assert sense["Which customers live in Paris?"]["chosen_sql"] == "SELECT name FROM customers WHERE city = 'Paris'"
    assert "SELECT 4" not in {r["rejected_sql"] for r in sense.values()}  # right by execution: never rejected


# --- the work file -----------------------------------------------------------------------------------------------
def test_another_pairing_is_derived_from_the_labels_without_the_model(tmp_path: Path, data: Path) -> None:
    out = tmp_path / "out"
    run(data, out, ScriptedLLM(replies()))
    count = {}
    for strategy in ("nearest", "farthest", "random"):
        again = ScriptedLLM()  # no reply queued: any model call fails the test
        summary = run(data, out, again, options=PairsOptions(k=3, pairing=strategy, pairs_per_question=2))
        assert again.requests == [] and summary.model_calls == 0
        pairs = read_records(out / "dpo.jsonl", "dpo")
        assert {r["pairing"] for r in pairs} == {strategy}
        first = next(r for r in pairs if "many" in r["question"])  # the first pair of the question
        count[strategy] = {first["question"]: (first["chosen_sql"], first["rejected_sql"])}
    q = "How many customers are there?"
    assert count["nearest"][q][1] == "SELECT count(nope) FROM customers"
    assert count["farthest"][q][1] == "SELECT count(*) FROM orders"  # the farthest from COUNT(*) ... customers
    with PairsWorkFile(out / WORK_FILE) as work:  # and by hand, from the work file
        summary = export_pairs(work, tmp_path / "again", options=PairsOptions(k=3))
    assert summary.records["dpo"] == 3


def test_another_sampling_configuration_is_refused(tmp_path: Path, data: Path) -> None:
    run(data, tmp_path / "out", ScriptedLLM(replies()))
    with pytest.raises(ConfigError, match=r"differs in: k, temperature"):
        run(data, tmp_path / "out", ScriptedLLM(), options=PairsOptions(k=2, temperature=0.5))
    other = write_jsonl_dataset(tmp_path / "other.jsonl", tmp_path / "shop.sqlite",
                                [("count", "Another question?", "SELECT 1", None)])
    with pytest.raises(ConfigError, match="another question under id 'count'"):
        run(other, tmp_path / "out", ScriptedLLM())


RUN = """
import sys
sys.path.insert(0, {helpers!r})
from pathlib import Path
from pairs_helpers import HangingLLM, replies, WEAK_REPLIES
from sqlwright.train.pairs import PairsOptions, build_pairs
from sqlwright.train.sources import open_source

strong = HangingLLM(replies(), hang_at={strong_hang}, marker=Path({marker!r}))
weak = HangingLLM(replies(WEAK_REPLIES), hang_at={weak_hang}, marker=Path({marker!r}))
with open_source(Path({data!r})) as dataset:
    build_pairs(dataset, strong, Path({out!r}), model="strong-m", weak_llm=weak, weak_model="weak-m",
                options=PairsOptions(k=3), cache_dir=Path({cache!r}))
"""


@pytest.mark.parametrize(("strong_hang", "weak_hang"), [(2, 99), (99, 3)])
def test_sigkill_loses_nothing_recorded_and_resuming_asks_nothing_twice(tmp_path: Path, data: Path,
                                                                      strong_hang: int, weak_hang: int) -> None:
    out, marker, cache = tmp_path / "killed", tmp_path / "hanging", tmp_path / "cache"
    script = RUN.format(helpers=str(HERE), strong_hang=strong_hang, weak_hang=weak_hang, marker=str(marker),
                        data=str(data), out=str(out), cache=str(cache))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the hanging call: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "the run never reached the hanging call"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # in the middle of a model call: no cleanup runs
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with PairsWorkFile(out / WORK_FILE) as work:
        strong_done, weak_done = work.sampled("strong"), work.sampled("weak")
    # strong hangs on its 2nd call: 1 question sampled (and the empty gold is after it); weak on its 3rd: all
    # three strong questions and 2 weak ones
    assert (len(strong_done), len(weak_done)) == ((1, 1) if strong_hang == 2 else (3, 2))

    strong_left = [r for qid in LABELLED if qid not in strong_done for r in REPLIES[qid]]
    weak_left = [r for qid in LABELLED if qid not in weak_done for r in WEAK_REPLIES[qid]]
    strong, weak = ScriptedLLM(strong_left), ScriptedLLM(weak_left)
    resumed = run(data, out, strong, weak=weak, cache=cache)
    assert strong.remaining == 0 and weak.remaining == 0  # asked exactly what was missing, nothing twice
    assert resumed.model_calls == (3 - len(strong_done)) + (3 - len(weak_done))

    whole = run(data, tmp_path / "whole", ScriptedLLM(replies()), weak=ScriptedLLM(replies(WEAK_REPLIES)),
                cache=cache)
    for name in ("sft.jsonl", "dpo.jsonl", "sense.jsonl"):  # killed and resumed = never killed, byte for byte
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert len(lines(out / "labels.jsonl")) == len(lines(tmp_path / "whole" / "labels.jsonl")) == 18
    assert (resumed.candidates, resumed.correct, resumed.skipped) == (whole.candidates, whole.correct, whole.skipped)


# --- the files ----------------------------------------------------------------------------------------------------
def test_every_file_loads_with_hugging_face_datasets(tmp_path: Path, data: Path) -> None:
    datasets = pytest.importorskip("datasets")
    run(data, tmp_path / "out", ScriptedLLM(replies()), weak=ScriptedLLM(replies(WEAK_REPLIES)))
    sizes = {}
    for name in ("sft", "dpo", "sense", "labels"):
        loaded = datasets.load_dataset("json", data_files=str(tmp_path / "out" / f"{name}.jsonl"), split="train",
                                       cache_dir=str(tmp_path / "hf"))
        sizes[name] = loaded.num_rows
    assert sizes == {"sft": 4, "dpo": 3, "sense": 3, "labels": 18}


def test_an_evaluation_dataset_is_labelled_by_its_own_rule(tmp_path: Path, data_dir: Path) -> None:
    """Spider's own dev questions and databases, judged by Spider's rule: an ORDER BY gold needs the order."""
    spider = data_dir / "spider"
    if not (spider / "dev.json").is_file():
        pytest.skip("Spider dev not found")
    with open_source(spider) as dataset:
        assert dataset.kind == "spider"
        examples = dataset.examples[1:3]  # "total number of singers"; "name, country, age ... oldest first"
        llm = ScriptedLLM([
            "```sql\nSELECT COUNT(*) FROM singer\n```", "```sql\nSELECT count(*) FROM stadium\n```",
            "```sql\nSELECT name, country, age FROM singer ORDER BY age DESC\n```",
            "```sql\nSELECT name, country, age FROM singer ORDER BY age ASC\n```",  # the order is wrong
        ])
        summary = build_pairs(dataset, llm, tmp_path / "out", options=PairsOptions(k=2), examples=examples,
                              cache_dir=tmp_path / "cache")
    labels = [(r["id"], r["correct"], r["reason"]) for r in lines(tmp_path / "out" / "labels.jsonl")]
    assert labels == [("1", True, None), ("1", False, "wrong result"), ("2", True, None), ("2", False, "wrong result")]
    assert summary.records["dpo"] == 2
    sft = lines(tmp_path / "out" / "sft.jsonl")
    assert {r["difficulty"] for r in sft} == {"easy", "medium"} and {r["database"] for r in sft} == {"concert_singer"}


def test_a_model_is_named_with_its_adapter(tmp_path: Path) -> None:
    from sqlwright.train.pairs import model_label

    assert model_label("qwen2.5-coder-0.5b", cache_dir=tmp_path) == "qwen2.5-coder-0.5b"
    assert model_label("openai:big", "ignored.gguf", cache_dir=tmp_path) == "openai:big"  # a server takes none
    not_an_adapter = tmp_path / "x.gguf"
    not_an_adapter.write_bytes(b"not a gguf")
    with pytest.raises(SqlwrightError, match="not a GGUF LoRA adapter"):
        model_label("m", not_an_adapter, cache_dir=tmp_path)
