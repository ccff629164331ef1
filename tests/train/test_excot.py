"""ExCoT's loop with its steps injected: rounds, off- then on-policy, stopping when the held-out score stops
improving, the per-round JSON log, and resuming a stopped loop without redoing finished rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlwright.errors import ConfigError
from sqlwright.train.excot import (
    BASE,
    OFF_POLICY,
    ON_POLICY,
    ROUND_FILE,
    SUMMARY_FILE,
    ExcotSteps,
    PairsMade,
    bind_config,
    round_dir,
    run_excot,
)


class Crash(Exception):
    pass


class FakeSteps:
    """Steps that record their calls and return the scores they are given, round by round."""

    def __init__(self, scores: dict[int, float], *, pairs: dict[int, int] | None = None,
                 crash_training_at: int | None = None) -> None:
        self.scores = scores
        self.pair_counts = pairs or {}
        self.crash_training_at = crash_training_at
        self.calls: list[tuple] = []

    def pairs(self, number: int, gguf: Path | None, folder: Path) -> PairsMade:
        self.calls.append(("pairs", number, gguf))
        path = folder / "dpo.jsonl"
        path.write_text("{}\n")
        return PairsMade(path, self.pair_counts.get(number, 5), {"labelled": 7})

    def train(self, number: int, pairs: Path, init: Path | None, folder: Path) -> Path:
        self.calls.append(("train", number, pairs, init))
        if number == self.crash_training_at:
            raise Crash(f"killed in round {number}")
        adapter = folder / "adapter"
        adapter.mkdir(exist_ok=True)
        return adapter

    def export(self, adapter: Path, folder: Path) -> Path:
        self.calls.append(("export", adapter))
        gguf = folder / "adapter.gguf"
        gguf.write_bytes(b"GGUF")
        return gguf

    def score(self, number: int, gguf: Path | None, folder: Path) -> float:
        self.calls.append(("score", number, gguf))
        return self.scores[number]

    def steps(self) -> ExcotSteps:
        return ExcotSteps(pairs=self.pairs, train=self.train, export=self.export, score=self.score)

    def of(self, kind: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == kind]


def test_rounds_go_on_while_the_heldout_score_improves(tmp_path: Path) -> None:
    fake = FakeSteps({0: 0.50, 1: 0.60, 2: 0.70, 3: 0.65, 4: 0.99})
    seen = []
    report = run_excot(fake.steps(), tmp_path, rounds=5, on_round=seen.append)
    assert [r.round for r in report.rounds] == [0, 1, 2, 3] and [r.round for r in seen] == [0, 1, 2, 3]
    assert [r.kind for r in report.rounds] == [BASE, OFF_POLICY, ON_POLICY, ON_POLICY]
    assert [r.improved for r in report.rounds] == [False, True, True, False]
    assert (report.best_round, report.best_score) == (2, 0.70)
    assert "round 3 did not improve" in report.stopped
    assert ("score", 4, None) not in fake.calls and len(fake.of("score")) == 4  # round 4 never ran

    r1, r2 = round_dir(tmp_path, 1), round_dir(tmp_path, 2)
    # round 1 samples from the base (no adapter) and trains from scratch; each later round samples with the
    # last adapter (its GGUF, through llama.cpp) and continues it
    assert fake.of("pairs") == [("pairs", 1, None), ("pairs", 2, r1 / "adapter.gguf"), ("pairs", 3, r2 / "adapter.gguf")]
    assert [c[3] for c in fake.of("train")] == [None, r1 / "adapter", r2 / "adapter"]
    assert fake.of("score")[0] == ("score", 0, None)  # the base model is scored first

    for number in range(4):
        logged = json.loads((round_dir(tmp_path, number) / ROUND_FILE).read_text())
        assert logged["round"] == number and logged["score"] == fake.scores[number] and logged["finished"]
    logged = json.loads((r2 / ROUND_FILE).read_text())
    assert logged["pairs"] == 5 and logged["pairs_info"] == {"labelled": 7}
    assert logged["adapter"] == str(r2 / "adapter") and logged["gguf"] == str(r2 / "adapter.gguf")
    assert set(logged["seconds"]) == {"pairs", "train", "export", "score"}
    assert logged["best_so_far"] == 0.70
    summary = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert summary["best_round"] == 2 and summary["best_gguf"] == str(r2 / "adapter.gguf")
    assert len(summary["rounds"]) == 4


def test_the_loop_stops_after_its_rounds(tmp_path: Path) -> None:
    report = run_excot(FakeSteps({0: 0.1, 1: 0.2, 2: 0.3}).steps(), tmp_path, rounds=2)
    assert (report.best_round, report.stopped) == (2, "2 round(s) done")


def test_a_first_round_worse_than_the_base_leaves_the_base_best(tmp_path: Path) -> None:
    fake = FakeSteps({0: 0.5, 1: 0.5})  # equal is no improvement
    report = run_excot(fake.steps(), tmp_path, rounds=3)
    assert report.best_round == 0 and report.best.gguf is None and len(fake.of("train")) == 1


def test_min_improvement_is_the_gain_a_round_must_make(tmp_path: Path) -> None:
    fake = FakeSteps({0: 0.50, 1: 0.505, 2: 0.9})
    report = run_excot(fake.steps(), tmp_path, rounds=3, min_improvement=0.01)
    assert report.best_round == 0 and [r.improved for r in report.rounds] == [False, False]


def test_a_round_without_pairs_ends_the_loop(tmp_path: Path) -> None:
    fake = FakeSteps({0: 0.5, 1: 0.6}, pairs={2: 0})
    report = run_excot(fake.steps(), tmp_path, rounds=4)
    assert report.best_round == 1 and report.stopped == "round 2 has no pair to learn from"
    assert len(fake.of("train")) == 1 and (round_dir(tmp_path, 2) / "no-pairs.json").is_file()
    assert not (round_dir(tmp_path, 2) / ROUND_FILE).exists()


def test_a_stopped_loop_resumes_without_redoing_finished_rounds(tmp_path: Path) -> None:
    scores = {0: 0.4, 1: 0.5, 2: 0.6, 3: 0.55}
    first = FakeSteps(scores, crash_training_at=2)
    with pytest.raises(Crash):
        run_excot(first.steps(), tmp_path, rounds=3)
    assert (round_dir(tmp_path, 1) / ROUND_FILE).is_file() and not (round_dir(tmp_path, 2) / ROUND_FILE).exists()

    again = FakeSteps(scores)
    report = run_excot(again.steps(), tmp_path, rounds=3)
    assert again.of("score") == [("score", 2, round_dir(tmp_path, 2) / "adapter.gguf"),
                                 ("score", 3, round_dir(tmp_path, 3) / "adapter.gguf")]  # not 0 nor 1 again
    assert again.of("pairs")[0] == ("pairs", 2, round_dir(tmp_path, 1) / "adapter.gguf")  # continues round 1's
    assert report.best_round == 2 and [r.round for r in report.rounds] == [0, 1, 2, 3]

    # the finished loop run once more does nothing but report
    idle = FakeSteps(scores)
    assert run_excot(idle.steps(), tmp_path, rounds=3).best_round == 2 and idle.calls == []


def test_bad_loop_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--rounds"):
        run_excot(FakeSteps({}).steps(), tmp_path, rounds=0)
    with pytest.raises(ConfigError, match="--min-improvement"):
        run_excot(FakeSteps({}).steps(), tmp_path, rounds=1, min_improvement=-1)


def test_a_run_folder_is_bound_to_its_settings_but_may_get_more_rounds(tmp_path: Path) -> None:
    assert bind_config(tmp_path, {"model": "a", "k": 4, "rounds": 2}) is False
    assert bind_config(tmp_path, {"model": "a", "k": 4, "rounds": 5}) is True
    with pytest.raises(ConfigError, match=r"differs in: k, model"):
        bind_config(tmp_path, {"model": "b", "k": 8, "rounds": 5})


# --- one real round on the tiny model ------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_real_round_on_the_tiny_model(tmp_path: Path, tiny_model, monkeypatch) -> None:
    """Given pairs -> FIT's DPO (2 steps) -> EXPORT's GGUF adapter -> the held-out scored through the ask pipeline
    on llama.cpp with the adapter; then an on-policy round sampled with that adapter (the random tiny model is
    never right: no pair, the loop ends). Scores are the real EX plus the round number, so the loop goes on."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("trl")
    from pairs_helpers import make_db, replies, write_jsonl_dataset

    from sqlwright.eval.runner import summary_from_run_file
    from sqlwright.llm.mock import ScriptedLLM
    from sqlwright.pipeline.ask import AskOptions
    from sqlwright.train.excot import DpoOptions, default_steps
    from sqlwright.train.pairs import PairsOptions, build_pairs
    from sqlwright.train.sources import open_source

    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SQLWRIGHT_THREADS", "2")
    db = make_db(tmp_path / "shop.sqlite")
    data = write_jsonl_dataset(tmp_path / "train.jsonl", db)
    heldout = write_jsonl_dataset(tmp_path / "heldout.jsonl", db,
                                  [("h1", "How many orders are there?", "SELECT count(*) FROM orders", None)])
    with open_source(data) as dataset:
        build_pairs(dataset, ScriptedLLM(replies()), tmp_path / "given", options=PairsOptions(k=3))
    real_scores: dict[int, float] = {}
    with open_source(data) as train_set, open_source(heldout) as heldout_set:
        steps = default_steps(train_set, heldout_set, model=str(tiny_model.gguf_path),
                              pairs_options=PairsOptions(k=2, max_tokens=48),
                              dpo=DpoOptions(max_steps=2, lora_r=4, lora_alpha=8, lr=1e-2, grad_accum=1),
                              off_policy_pairs=tmp_path / "given" / "dpo.jsonl", workers=0,
                              ask_options=AskOptions(candidates=1, repair_rounds=0, max_tokens=48, examples=0, notes=0))
        score = steps.score

        def shifted(number: int, gguf: Path | None, folder: Path) -> float:
            real_scores[number] = score(number, gguf, folder)
            return real_scores[number] + number

        steps.score = shifted
        report = run_excot(steps, tmp_path / "run", rounds=3)
    assert [r.round for r in report.rounds] == [0, 1] and report.stopped == "round 2 has no pair to learn from"
    assert set(real_scores) == {0, 1} and all(0.0 <= s <= 1.0 for s in real_scores.values())
    one = report.rounds[1]
    assert one.pairs == 3 and Path(one.adapter, "adapter_model.safetensors").is_file()
    assert Path(one.gguf).read_bytes()[:4] == b"GGUF"
    # the held-out run of round 1 is the adapted model's; round 0's the base's
    assert summary_from_run_file(round_dir(tmp_path / "run", 1) / "heldout.sqlite").config["lora"] == one.gguf
    assert summary_from_run_file(round_dir(tmp_path / "run", 0) / "heldout.sqlite").config["lora"] is None
    # round 2 sampled on-policy: the tiny model with round 1's adapter, through llama.cpp
    labels = [json.loads(line) for line in (round_dir(tmp_path / "run", 2) / "pairs" / "labels.jsonl").open()]
    assert len(labels) == 6 and {r["model"] for r in labels} == {f"{tiny_model.gguf_path}+lora:" +
                                                                 _sha256(Path(one.gguf))[:16]}


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
