"""ExCoT's loop (Zhai et al., 2025): DPO rounds on execution-labelled pairs, each scored on a held-out split,
stopping when the score no longer improves.

    round 0   the base model scored (the number every round must beat)
    round 1   off-policy: pairs from a teacher, from given pairs, or from the base model's own samples;
              DPO from the base (reference: the base)
    round r   on-policy: pairs sampled with the last round's adapter through llama.cpp (EXPORT's GGUF adapter),
              labelled, DPO continuing that adapter (reference: that adapter, frozen)

Each step is a callable of `ExcotSteps` (`default_steps` wires `train pairs`, FIT's `train_dpo`, EXPORT's
`export_gguf_adapter` and eval's runner), so that the loop's logic is tested on its own. Every finished round
writes ``OUT/round-N/round.json``; started again, the loop reuses finished rounds and each step resumes its own
work (the pairs work file, the trainer's checkpoints, the held-out run file). ``OUT/excot.json`` sums it up.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlwright.errors import ConfigError

log = logging.getLogger(__name__)

ROUND_FILE = "round.json"
SUMMARY_FILE = "excot.json"
CONFIG_FILE = "excot.config.json"
BASE, OFF_POLICY, ON_POLICY = "base", "off-policy", "on-policy"


@dataclass(frozen=True)
class PairsMade:
    """What a pairs step produced: the DPO records file and how many pairs it holds."""

    path: Path
    pairs: int
    extra: dict = field(default_factory=dict)  # e.g. the pairs summary (labelled, correct, skipped)


@dataclass
class ExcotSteps:
    """The loop's steps. `round_dir` is the round's own folder (each step keeps its work files there).

    pairs(round, gguf_adapter or None (the base), round_dir) -> PairsMade     sample with that model and label
    train(round, pairs_path, init_adapter or None, round_dir) -> adapter_dir   DPO (a PEFT adapter folder)
    export(adapter_dir, round_dir) -> gguf_adapter                            the adapter for llama.cpp
    score(round, gguf_adapter or None, round_dir) -> float                    the held-out score (EX, 0..1)
    """

    pairs: Callable[[int, Path | None, Path], PairsMade]
    train: Callable[[int, Path, Path | None, Path], Path]
    export: Callable[[Path, Path], Path]
    score: Callable[[int, Path | None, Path], float]


@dataclass
class RoundLog:
    """One round, as round.json records it."""

    round: int
    kind: str  # base | off-policy | on-policy
    score: float
    improved: bool  # better than every earlier round by more than min_improvement
    best_so_far: float
    pairs: int | None = None
    pairs_path: str | None = None
    adapter: str | None = None  # the PEFT adapter folder
    gguf: str | None = None  # the GGUF adapter llama.cpp loads
    init_adapter: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # per step
    pairs_info: dict = field(default_factory=dict)
    finished: str = ""

    @classmethod
    def read(cls, path: Path) -> RoundLog:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class ExcotReport:
    out_dir: Path
    rounds: list[RoundLog]
    best_round: int
    best_score: float
    stopped: str  # why the loop ended

    @property
    def best(self) -> RoundLog:
        return next(r for r in self.rounds if r.round == self.best_round)

    def to_dict(self) -> dict:
        return {"out_dir": str(self.out_dir), "best_round": self.best_round, "best_score": self.best_score,
                "best_adapter": self.best.adapter, "best_gguf": self.best.gguf, "stopped": self.stopped,
                "rounds": [asdict(r) for r in self.rounds]}


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def bind_config(out_dir: Path, config: dict) -> bool:
    """Store the loop's configuration in `out_dir`, or check it against the stored one (ConfigError naming what
    differs; the number of rounds may grow). True when resuming."""
    path = Path(out_dir) / CONFIG_FILE
    config = json.loads(json.dumps(config, sort_keys=True, default=str))
    if not path.is_file():
        _write_json(path, config)
        return False
    old = json.loads(path.read_text(encoding="utf-8"))
    differ = sorted(k for k in set(old) | set(config) if k != "rounds" and old.get(k) != config.get(k))
    if differ:
        raise ConfigError(f"{out_dir} holds an ExCoT run with other settings (differs in: {', '.join(differ)}); "
                          "use the same settings or another --out folder")
    if old.get("rounds") != config.get("rounds"):
        _write_json(path, config)
    return True


def round_dir(out_dir: Path, number: int) -> Path:
    return Path(out_dir) / f"round-{number}"


def run_excot(steps: ExcotSteps, out_dir: Path, *, rounds: int, min_improvement: float = 0.0,
              on_round: Callable[[RoundLog], None] | None = None) -> ExcotReport:
    """Run (or resume) the loop in `out_dir`: the base scored, then up to `rounds` DPO rounds, stopping at the
    first round whose score is not above the best so far by more than `min_improvement`, or that has no pair
    to learn from. The best round's adapter is the result (none of them: the base stays best)."""
    if rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, not {rounds}")
    if min_improvement < 0:
        raise ConfigError(f"--min-improvement must not be negative, not {min_improvement}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    logs: list[RoundLog] = []

    def finish(log_: RoundLog) -> RoundLog:
        log_.finished = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        _write_json(round_dir(out_dir, log_.round) / ROUND_FILE, asdict(log_))
        logs.append(log_)
        if on_round is not None:
            on_round(log_)
        return log_

    base = _done(out_dir, 0)
    if base is None:
        started = time.perf_counter()
        score = steps.score(0, None, round_dir(out_dir, 0))
        base = finish(RoundLog(0, BASE, score, improved=False, best_so_far=score,
                               seconds={"score": time.perf_counter() - started}))
    else:
        logs.append(base)
    best, best_round = base.score, 0
    stopped = f"{rounds} round(s) done"
    last_adapter: Path | None = None
    last_gguf: Path | None = None
    for number in range(1, rounds + 1):
        done = _done(out_dir, number)
        if done is None:
            done = _round(steps, out_dir, number, last_adapter, last_gguf, best, min_improvement)
            if done is None:
                stopped = f"round {number} has no pair to learn from"
                break
            finish(done)
        else:
            logs.append(done)
        if done.improved:
            best, best_round = done.score, number
            last_adapter = Path(done.adapter) if done.adapter else None
            last_gguf = Path(done.gguf) if done.gguf else None
        else:
            stopped = (f"round {number} did not improve the held-out score ({done.score:.4f} vs the best "
                       f"{best:.4f} of round {best_round})")
            break
    report = ExcotReport(out_dir, logs, best_round, best, stopped)
    _write_json(out_dir / SUMMARY_FILE, report.to_dict())
    return report


def _done(out_dir: Path, number: int) -> RoundLog | None:
    path = round_dir(out_dir, number) / ROUND_FILE
    return RoundLog.read(path) if path.is_file() else None


def _round(steps: ExcotSteps, out_dir: Path, number: int, last_adapter: Path | None, last_gguf: Path | None,
           best: float, min_improvement: float) -> RoundLog | None:
    """One DPO round; None when its pairs are none (nothing to learn: the model is always right, or never)."""
    folder = round_dir(out_dir, number)
    folder.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    made = steps.pairs(number, last_gguf, folder)
    seconds["pairs"] = time.perf_counter() - t
    log.info("round %d: %d pairs in %s", number, made.pairs, made.path)
    if made.pairs == 0:
        _write_json(folder / "no-pairs.json", {"round": number, "pairs_path": str(made.path), **made.extra})
        return None
    t = time.perf_counter()
    adapter = steps.train(number, made.path, last_adapter, folder)
    seconds["train"] = time.perf_counter() - t
    t = time.perf_counter()
    gguf = steps.export(adapter, folder)
    seconds["export"] = time.perf_counter() - t
    t = time.perf_counter()
    score = steps.score(number, gguf, folder)
    seconds["score"] = time.perf_counter() - t
    improved = score > best + min_improvement
    return RoundLog(number, OFF_POLICY if number == 1 else ON_POLICY, score, improved=improved,
                    best_so_far=score if improved else best, pairs=made.pairs, pairs_path=str(made.path),
                    adapter=str(adapter), gguf=str(gguf), init_adapter=str(last_adapter) if last_adapter else None,
                    seconds=seconds, pairs_info=made.extra)


# --- the real steps ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DpoOptions:
    """FIT's train_dpo hyper-parameters for every round."""

    beta: float = 0.1
    epochs: float = 1.0
    lr: float = 5e-5
    lora_r: int = 16
    lora_alpha: int = 32
    batch_size: int = 1
    grad_accum: int = 4
    max_steps: int | None = None
    seed: int = 0


def default_steps(data: Any, heldout: Any, *, model: str, pairs_options: Any, dpo: DpoOptions,
                  teacher: str | None = None, off_policy_pairs: Path | None = None, base_url: str | None = None,
                  ask_options: Any = None, workers: int = 2, progress: bool = False) -> ExcotSteps:
    """The steps over the real parts: `train pairs` on `data` (eval Datasets, both), FIT's `train_dpo` on
    `model`, EXPORT's `export_gguf_adapter`, and eval's runner on `heldout` through the ask pipeline with the
    embedded model and the round's adapter. Round 1 takes `off_policy_pairs` when given, else samples from
    `teacher` (off-policy), else from the base model."""
    from sqlwright.train.pairs import FILES

    def load(name: str, gguf: Path | None):
        from sqlwright.config import load_settings
        from sqlwright.llm import load_llm

        overrides: dict[str, object] = {"base_url": base_url}
        if gguf is not None:
            overrides["lora"] = str(gguf)
        return load_llm(name, load_settings(**overrides))

    def pairs(number: int, gguf: Path | None, folder: Path) -> PairsMade:
        from sqlwright.train.pairs import build_pairs
        from sqlwright.train.records import read_records

        if number == 1 and off_policy_pairs is not None:
            return PairsMade(Path(off_policy_pairs), len(read_records(Path(off_policy_pairs), "dpo")),
                             {"given": str(off_policy_pairs)})
        from sqlwright.train.pairs import model_label

        name = teacher if number == 1 and teacher is not None else model
        llm = load(name, gguf)
        label = model_label(name, gguf)
        summary = build_pairs(data, llm, folder / "pairs", model=label, options=pairs_options,
                              ask_options=ask_options)
        extra = {"model": label, "labelled": summary.labelled, "candidates": summary.candidates,
                 "correct": summary.correct, "skipped": summary.skipped, "samples_per_hour": summary.samples_per_hour}
        return PairsMade(folder / "pairs" / FILES["dpo"], summary.records.get("dpo", 0), extra)

    def train(number: int, pairs_path: Path, init_adapter: Path | None, folder: Path) -> Path:
        from sqlwright.train.dpo import train_dpo

        out = folder / "adapter"
        train_dpo(pairs_path, model=model, out_dir=out, beta=dpo.beta, ref=init_adapter or "base",
                  init_adapter=init_adapter, epochs=dpo.epochs, lr=dpo.lr, lora_r=dpo.lora_r,
                  lora_alpha=dpo.lora_alpha, batch_size=dpo.batch_size, grad_accum=dpo.grad_accum,
                  max_steps=dpo.max_steps, seed=dpo.seed, progress=progress)
        return out

    def export(adapter: Path, folder: Path) -> Path:
        from sqlwright.train.export import export_gguf_adapter

        return export_gguf_adapter(adapter, folder / "adapter.gguf")

    def score(number: int, gguf: Path | None, folder: Path) -> float:
        from sqlwright.eval.predictors import PipelinePredictor
        from sqlwright.eval.runner import run_eval
        from sqlwright.pipeline.ask import AskOptions, Engine

        options = ask_options or AskOptions(examples=0, notes=0, cot=getattr(pairs_options, "cot", False))
        predictor = PipelinePredictor(Engine(load(model, gguf), options))
        try:
            summary = run_eval(heldout, predictor, run_file=folder / "heldout.sqlite", workers=workers,
                               progress=progress, config={"model": model, "lora": str(gguf) if gguf else None,
                                                          "pipeline": options.model_dump()})
        finally:
            predictor.close()
        return float(summary.ex)

    return ExcotSteps(pairs=pairs, train=train, export=export, score=score)
