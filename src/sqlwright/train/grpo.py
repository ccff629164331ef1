"""GRPO with an execution reward (experimental): for each question the model samples a group of replies, each
is executed, and the LoRA learns towards the replies scored above their group's mean (TRL's GRPOTrainer).

The reward is Arctic-Text2SQL-R1's: 1 when the reply's SQL returns the gold result, 0.1 when it runs but
returns something else, 0 when it holds no SQL, is refused by the guard or fails. Every query runs through
the guard, read-only, with the timeout and row cap of any execution; results are compared with the
evaluator's rule (Spider's by default, as synthesis verifies). The questions are SFT records (their `sql` is
the gold); their databases are found as `train pairs` finds them (--db-dir, --db NAME=URL).

Sampling on a CPU is slow (every step generates `num_generations` replies per question): this is for a GPU,
or for a tiny model in a test.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlwright.config import Settings, load_settings
from sqlwright.db.base import Database
from sqlwright.db.result import Result
from sqlwright.errors import ConfigError, DatasetError
from sqlwright.pipeline.execute import run_sql
from sqlwright.pipeline.extract import parse_reply
from sqlwright.train.fit import FitOptions, Method, TrainReport, run_fit
from sqlwright.train.records import read_records

log = logging.getLogger(__name__)

CORRECT_REWARD = 1.0
RUNS_REWARD = 0.1
FAILS_REWARD = 0.0
GRPO_COLUMNS = ("prompt", "database", "dialect", "question", "sql")


def _reply_text(completion: object) -> str:
    """The text of a completion: a string, or (conversational) a list of assistant messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence):
        return "".join(m.get("content") or "" for m in completion if isinstance(m, Mapping))
    return ""


class DatabaseCache:
    """Databases opened once by name for the run: a name resolves through `databases` (name -> URL), else
    `db_dir` (``<name>/<name>.sqlite`` or ``<name>.sqlite``), as `train pairs` resolves them."""

    def __init__(self, *, db_dir: Path | None = None, databases: Mapping[str, str] | None = None,
                 timeout: float | None = None, max_rows: int | None = None) -> None:
        from sqlwright.train.sources import SynthDataset

        self._resolver = SynthDataset("grpo", [], databases=databases or {}, db_dir=db_dir, dialects={})
        self.timeout = timeout
        self.max_rows = max_rows
        self.open: dict[str, Database] = {}

    def get(self, name: str) -> Database:
        if name not in self.open:
            from sqlwright.db import open_database

            kwargs = {"timeout": self.timeout} if self.timeout is not None else {}
            self.open[name] = open_database(self._resolver.database_url(name), **kwargs)
        return self.open[name]

    def close(self) -> None:
        for db in self.open.values():
            db.close()
        self.open.clear()


class ExecutionReward:
    """Arctic-Text2SQL-R1's reward for TRL: called with the group's completions and the records' columns."""

    __name__ = "execution_reward"  # TRL names the reward's metrics after it

    def __init__(self, databases: DatabaseCache, *, rule: str = "spider") -> None:
        from sqlwright.eval.compare import get_rule

        self.databases = databases
        self.rule = get_rule(rule)
        self._gold: dict[tuple[str, str], Result | None] = {}

    def gold(self, database: str, sql: str) -> Result | None:
        """The gold query's result (None when it fails or is empty: no label), computed once."""
        key = (database, sql)
        if key not in self._gold:
            outcome = run_sql(self.databases.get(database), sql, max_rows=self.databases.max_rows)
            self._gold[key] = (Result(outcome.columns, outcome.rows or ())
                               if outcome.error is None and outcome.rows else None)
        return self._gold[key]

    def score(self, reply: str, *, database: str, sql: str, question: str = "", dialect: str | None = None) -> float:
        """1 right, 0.1 runs but wrong, 0 no SQL / refused / fails."""
        pred_sql = parse_reply(reply).sql
        if not pred_sql:
            return FAILS_REWARD
        outcome = run_sql(self.databases.get(database), pred_sql, max_rows=self.databases.max_rows)
        if outcome.error is not None or outcome.rows is None:
            return FAILS_REWARD
        gold = self.gold(database, sql)
        if gold is None:
            return RUNS_REWARD
        from sqlwright.eval.compare import judge

        verdict = judge(self.rule, gold, Result(outcome.columns, outcome.rows), gold_sql=sql, question=question,
                        dialect=dialect, pred_sql=pred_sql)
        return CORRECT_REWARD if verdict.correct else RUNS_REWARD

    def __call__(self, prompts: list, completions: list, *, database: list[str], sql: list[str],
                 question: list[str] | None = None, dialect: list[str] | None = None, **_: Any) -> list[float]:
        return [self.score(_reply_text(c), database=database[i], sql=sql[i],
                           question=question[i] if question else "", dialect=dialect[i] if dialect else None)
                for i, c in enumerate(completions)]


def labelled_records(records: list[dict], reward: ExecutionReward) -> list[dict]:
    """One record per question whose gold runs and returns rows (an empty or failing gold is no label)."""
    kept, seen, skipped = [], set(), 0
    for r in records:
        key = (r["database"], r["question"])
        if key in seen:
            continue
        seen.add(key)
        if reward.gold(r["database"], r["sql"]) is None:
            skipped += 1
            continue
        kept.append(r)
    if skipped:
        log.warning("%d questions left out: their gold SQL fails or returns no rows", skipped)
    if not kept:
        raise DatasetError("no question with a gold result to reward against (every gold SQL failed or was empty)")
    return kept


def _last_reward(trainer: Any) -> dict[str, object]:
    """The mean reward of the last logged step, for the report and the model card."""
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    return {"last_mean_reward": rewards[-1] if rewards else None}


def train_grpo(records_path: Path, *, model: str, out_dir: Path, db_dir: Path | None = None,
               databases: Mapping[str, str] | None = None, rule: str = "spider", num_generations: int = 4,
               max_completion_length: int = 256, temperature: float = 1.0, beta: float = 0.0,
               epochs: float = 1.0, lr: float = 1e-5, lora_r: int = 16, lora_alpha: int = 32, batch_size: int = 1,
               grad_accum: int = 1, max_steps: int | None = None, resume: bool = True, seed: int = 0,
               save_steps: int = 20, progress: bool = False, bf16: bool = False,
               settings: Settings | None = None, console: Any = None) -> TrainReport:
    """Train a LoRA adapter by GRPO on the questions of the SFT records at `records_path` (experimental).
    `batch_size` is in questions: each optimizer micro-step scores `num_generations` replies per question."""
    if num_generations < 2:
        raise ConfigError("--num-generations must be at least 2 (GRPO compares replies within a group)")
    settings = settings or load_settings()
    records = read_records(Path(records_path), "sft")
    cache = DatabaseCache(db_dir=db_dir, databases=databases, timeout=settings.timeout, max_rows=settings.max_rows)
    reward = ExecutionReward(cache, rule=rule)
    try:
        questions = labelled_records(records, reward)
        options = FitOptions(epochs=epochs, lr=lr, lora_r=lora_r, lora_alpha=lora_alpha,
                             batch_size=batch_size * num_generations, grad_accum=grad_accum, max_steps=max_steps,
                             save_steps=save_steps, seed=seed, resume=resume, progress=progress, bf16=bf16)

        def make_trainer(peft_model: Any, tokenizer: Any, dataset: Any, args: dict, callbacks: list) -> Any:
            from trl import GRPOConfig, GRPOTrainer

            args = {k: v for k, v in args.items() if k != "max_length"}
            config = GRPOConfig(**args, num_generations=num_generations, max_completion_length=max_completion_length,
                                temperature=temperature, beta=beta, remove_unused_columns=False)
            return GRPOTrainer(model=peft_model, reward_funcs=[reward], args=config, train_dataset=dataset,
                               processing_class=tokenizer, callbacks=callbacks)

        hyper = {"rule": rule, "num_generations": num_generations, "max_completion_length": max_completion_length,
                 "temperature": temperature, "beta": beta,
                 "reward": f"{CORRECT_REWARD} right, {RUNS_REWARD} runs but wrong, {FAILS_REWARD} fails"}
        method = Method(kind="grpo", columns=GRPO_COLUMNS, make_trainer=make_trainer, hyper=hyper,
                        after_stages=_last_reward)
        return run_fit(method, Path(records_path), questions, model=model, out_dir=Path(out_dir), options=options,
                       settings=settings, console=console)
    finally:
        cache.close()
