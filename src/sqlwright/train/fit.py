"""The run every training method shares (SFT, DPO, GRPO): stages, checkpoints and resume, the LoRA, the
adapter directory, the metrics and the model card. `sft.py`, `dpo.py` and `grpo.py` add their records, their
TRL trainer and their hyper-parameters.

Layout of an output directory::

    OUT/adapter_config.json, adapter_model.safetensors   the LoRA (PEFT's save_pretrained)
    OUT/sqlwright-adapter.json                           base name and sha256, kind, created
    OUT/README.md                                        the model card
    OUT/metrics.jsonl                                    one JSON object per optimizer step
    OUT/checkpoints/run.json                             what the run trains on (data, base, hyper-parameters)
    OUT/checkpoints/<stage>/checkpoint-N/                the trainer's checkpoints (adapter, optimizer, scheduler, RNG)
    OUT/checkpoints/<stage>/stage.json, adapter/         a finished stage and its adapter

Started again on the same OUT, a run resumes from the last checkpoint of the first unfinished stage (the
optimizer's state included); a larger --max-steps or --epochs on a finished run continues it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlwright.config import Settings, load_settings
from sqlwright.errors import ConfigError, UserError
from sqlwright.train import require_train_extra
from sqlwright.train.card import write_model_card
from sqlwright.train.model import (
    LORA_TARGET_MODULES,
    BaseModelFile,
    load_base,
    quiet_libraries,
    read_adapter_meta,
    resolve_base,
    write_adapter_meta,
)
from sqlwright.train.progress import METRICS_FILE, callbacks, read_metrics

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
RUN_FILE = "run.json"
STAGE_FILE = "stage.json"
STAGE_ADAPTER = "adapter"

# SQLCoder's curriculum: easy and medium questions first, then hard and extra hard. Spider's hardness,
# BIRD's difficulty and the synthesis levels all map onto the two stages.
FIRST_STAGE = "easy-medium"
SECOND_STAGE = "hard-extra"
HARD_LEVELS = frozenset({"hard", "extra", "extra hard", "challenging", "complex", "highly-complex"})


class RunMismatch(UserError):
    """The output directory holds a run on other data, another base or other hyper-parameters."""


@dataclass(frozen=True)
class FitOptions:
    """The hyper-parameters every method shares. CPU-safe defaults: float32, no gradient checkpointing (memory
    is not what a CPU runs out of; recomputing activations costs a third more time), batch 1 with gradient
    accumulation (no padding wasted on prompts of different lengths)."""

    epochs: float = 1.0
    lr: float = 2e-4
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    batch_size: int = 1
    grad_accum: int = 4
    max_steps: int | None = None  # per stage; None: `epochs` over the stage's records
    save_steps: int = 20
    seed: int = 0
    resume: bool = True
    progress: bool = False
    bf16: bool = False  # mixed precision: for GPUs (and CPUs with AMX); float32 is faster on most CPUs
    gradient_checkpointing: bool = False
    max_length: int | None = None  # tokens of prompt + reply; None: the model's context (settings.n_ctx)

    def check(self) -> None:
        """ConfigError (one line) for a value no run can use."""
        if self.epochs <= 0 or self.lr <= 0:
            raise ConfigError("--epochs and --lr must be positive")
        if self.lora_r < 1 or self.lora_alpha < 1:
            raise ConfigError("--lora-r and --lora-alpha must be at least 1")
        if self.batch_size < 1 or self.grad_accum < 1 or self.save_steps < 1:
            raise ConfigError("--batch-size, --grad-accum and --save-steps must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("--max-steps must be at least 1")

    def fingerprint(self) -> dict[str, object]:
        """What a resumed run must share with the one it resumes (not how long it runs or shows progress)."""
        return {k: v for k, v in asdict(self).items()
                if k not in {"epochs", "max_steps", "save_steps", "resume", "progress"}}


@dataclass(frozen=True)
class Stage:
    """A part of a run trained to the end before the next one starts (one, or two with a curriculum)."""

    name: str
    records: list[dict]


@dataclass(frozen=True)
class StageReport:
    name: str
    records: int
    steps: int
    resumed_from: int  # the step the stage resumed at (0: from the start; its total: already done)
    first_loss: float | None
    last_loss: float | None
    seconds: float


@dataclass(frozen=True)
class TrainReport:
    """What a training run did: where the adapter is, on which base and data, how many steps, the losses."""

    kind: str
    out_dir: Path
    base: str
    base_sha256: str
    records: int
    steps: int
    final_loss: float | None
    seconds: float
    stages: tuple[StageReport, ...]
    metrics_path: Path
    card_path: Path
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data.update(out_dir=str(self.out_dir), metrics_path=str(self.metrics_path), card_path=str(self.card_path))
        return data


@dataclass
class Method:
    """What one training method adds to the shared run."""

    kind: str  # "sft" | "dpo" | "grpo"
    columns: tuple[str, ...]  # the record fields its trainer reads
    make_trainer: Callable[..., Any]  # (model, tokenizer, dataset, args: dict, callbacks) -> a TRL trainer
    hyper: dict[str, object] = field(default_factory=dict)  # its own hyper-parameters (card and fingerprint)
    prepare_model: Callable[[Any, BaseModelFile], Any] | None = None  # base -> PEFT model (default: new LoRA)
    check: Callable[[BaseModelFile], None] | None = None  # its inputs against the base, before the base loads
    after_stages: Callable[[Any], dict] | None = None  # extra report fields from the last trainer


# --- records and stages --------------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def curriculum_stages(records: list[dict]) -> list[Stage]:
    """SQLCoder's two stages by the records' `difficulty`: easy/medium (and unknown) first, hard/extra after.
    A stage without records is left out."""
    hard = [r for r in records if str(r.get("difficulty") or "").strip().lower() in HARD_LEVELS]
    easy = [r for r in records if str(r.get("difficulty") or "").strip().lower() not in HARD_LEVELS]
    unknown = sum(1 for r in records if not r.get("difficulty"))
    if unknown:
        log.warning("%d records have no difficulty: trained in the first (easy/medium) stage", unknown)
    return [s for s in (Stage(FIRST_STAGE, easy), Stage(SECOND_STAGE, hard)) if s.records]


def difficulty_counts(records: Sequence[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        key = str(r.get("difficulty") or "unknown")
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


# --- the run -----------------------------------------------------------------------------------------------
def _is_main_process() -> bool:
    """Whether this is the first process of a distributed run (or the only one): the one that writes files."""
    return os.environ.get("RANK", "0") == "0"


_RUN_WORDS = {"kind": "method", "base_sha256": "base model", "data_sha256": "data", "curriculum": "curriculum"}


def _changes(before: dict, now: dict) -> list[str]:
    """What differs between two runs, in words (hyper-parameters by name)."""
    changed = [_RUN_WORDS.get(k, k) for k in sorted(set(before) | set(now))
               if k != "hyper" and before.get(k) != now.get(k)]
    old, new = before.get("hyper") or {}, now.get("hyper") or {}
    changed += [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return changed


def _check_run(ckpt_root: Path, run: dict, resume: bool) -> None:
    """Start over (no resume: checkpoints and metrics go), or check that the run in `ckpt_root` trains the
    same thing as `run`."""
    run_file = ckpt_root / RUN_FILE
    if not resume:
        shutil.rmtree(ckpt_root, ignore_errors=True)
        (ckpt_root.parent / METRICS_FILE).unlink(missing_ok=True)
    if run_file.is_file():
        try:
            before = json.loads(run_file.read_text(encoding="utf-8"))
        except ValueError:
            before = {}
        changed = _changes(before, run)
        if changed:
            raise RunMismatch(
                f"{ckpt_root.parent} holds a run with other {', '.join(changed)}: give another --out, or "
                "--no-resume to start this one over")
    ckpt_root.mkdir(parents=True, exist_ok=True)
    _write_json(run_file, run)


def new_lora(model: Any, options: FitOptions) -> Any:
    """`model` with a fresh LoRA on every attention and MLP projection."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=options.lora_r, lora_alpha=options.lora_alpha, lora_dropout=options.lora_dropout,
                        target_modules=list(LORA_TARGET_MODULES), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def load_lora(model: Any, adapter_dir: Path, base: BaseModelFile, *, trainable: bool = True) -> Any:
    """`model` with the sqlwright adapter in `adapter_dir` (checked against `base`) as its "default" adapter."""
    from peft import PeftModel

    read_adapter_meta(adapter_dir, base)
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)


def _load_stage_adapter(model: Any, adapter_dir: Path) -> None:
    """Put a finished stage's adapter weights into the "default" adapter of `model`."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(adapter_dir / "adapter_model.safetensors")))


def _losses(history: Sequence[dict]) -> tuple[float | None, float | None]:
    losses = [float(h["loss"]) for h in history if "loss" in h]
    return (losses[0], losses[-1]) if losses else (None, None)


def training_args(ckpt_dir: Path, options: FitOptions, settings: Settings) -> dict[str, object]:
    """The TrainingArguments every method's config gets (its own come on top)."""
    return dict(
        output_dir=str(ckpt_dir), num_train_epochs=options.epochs,
        max_steps=options.max_steps if options.max_steps is not None else -1,
        per_device_train_batch_size=options.batch_size, gradient_accumulation_steps=options.grad_accum,
        learning_rate=options.lr, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0,
        logging_steps=1, save_strategy="steps", save_steps=options.save_steps, save_total_limit=2,
        report_to="none", disable_tqdm=True, seed=options.seed, data_seed=options.seed,
        bf16=options.bf16, fp16=False, activation_checkpointing=options.gradient_checkpointing,
        dataloader_pin_memory=False, dataloader_num_workers=0,
    )


def run_fit(method: Method, records_path: Path, records: list[dict], *, model: str, out_dir: Path,
            options: FitOptions, curriculum: bool = False, settings: Settings | None = None,
            console: Any = None) -> TrainReport:
    """Train `method` on `records` (read from `records_path`) into `out_dir`, stage by stage, resuming from
    the checkpoints there; write the adapter, its metadata and the model card."""
    require_train_extra()
    options.check()
    settings = settings or load_settings()
    started = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file, not a directory")
    stages = curriculum_stages(records) if curriculum else [Stage("all", records)]
    base = resolve_base(model, settings)
    if method.check is not None:
        method.check(base)
    data_sha256 = file_sha256(records_path)
    run = {"kind": method.kind, "base_sha256": base.sha256, "data_sha256": data_sha256,
           "curriculum": curriculum, "hyper": {**options.fingerprint(), **method.hyper}}
    ckpt_root = out_dir / CHECKPOINTS
    out_dir.mkdir(parents=True, exist_ok=True)
    if _is_main_process():
        _check_run(ckpt_root, run, options.resume)

    quiet_libraries()
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback
    from transformers.trainer_utils import get_last_checkpoint

    base_model, tokenizer = load_base(base, settings)
    peft_model = (method.prepare_model or (lambda m, _b: new_lora(m, options)))(base_model, base)
    metrics_path = out_dir / METRICS_FILE
    max_length = options.max_length or settings.n_ctx
    reports: list[StageReport] = []
    trainer = None
    retrain = False  # a stage trained in this call: the stages after it start over
    for index, stage in enumerate(stages):
        stage_started = time.perf_counter()
        ckpt_dir = ckpt_root / stage.name
        target = {"epochs": options.epochs, "max_steps": options.max_steps, "records": len(stage.records)}
        done = _read_json(ckpt_dir / STAGE_FILE)
        fresh = retrain and ckpt_dir.exists()  # it went on from an earlier stage's adapter, now changed
        if fresh:
            if _is_main_process():
                shutil.rmtree(ckpt_dir)
            done = None
        if done is not None and done.get("target") == target:
            _load_stage_adapter(peft_model, ckpt_dir / STAGE_ADAPTER)
            reports.append(StageReport(stage.name, len(stage.records), done["steps"], done["steps"],
                                       done.get("first_loss"), done.get("last_loss"), 0.0))
            continue
        retrain = True
        dataset = Dataset.from_list([{c: r.get(c) for c in method.columns} for r in stage.records])
        args = training_args(ckpt_dir, options, settings)
        trainer = method.make_trainer(peft_model, tokenizer, dataset, {**args, "max_length": max_length},
                                      callbacks(metrics_path=metrics_path, kind=method.kind, stage=stage.name,
                                                progress=options.progress, console=console))
        for noisy in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(noisy)
        peft_model = trainer.model  # DPO and GRPO may have added a reference adapter
        last = get_last_checkpoint(str(ckpt_dir)) if options.resume and not fresh and ckpt_dir.is_dir() else None
        resumed_from = int(Path(last).name.rsplit("-", 1)[1]) if last else 0
        trainer.train(resume_from_checkpoint=last)
        first_loss, last_loss = _losses(trainer.state.log_history)
        steps = trainer.state.global_step
        if trainer.is_world_process_zero():
            trainer.model.save_pretrained(str(ckpt_dir / STAGE_ADAPTER), selected_adapters=["default"])
            _write_json(ckpt_dir / STAGE_FILE, {"target": target, "steps": steps, "first_loss": first_loss,
                                                 "last_loss": last_loss})
        trainer.accelerator.wait_for_everyone()
        reports.append(StageReport(stage.name, len(stage.records), steps, resumed_from, first_loss, last_loss,
                                   round(time.perf_counter() - stage_started, 2)))
        log.info("%s stage %s (%d/%d): %d steps, last loss %s", method.kind, stage.name, index + 1, len(stages),
                 steps, last_loss)

    final_loss = next((r.last_loss for r in reversed(reports) if r.last_loss is not None), None)
    if final_loss is not None and not math.isfinite(final_loss):
        log.warning("the loss is not finite (%s): the adapter is likely useless; try a lower --lr", final_loss)
    extra = method.after_stages(trainer) if method.after_stages and trainer is not None else {}
    seconds = round(time.perf_counter() - started, 2)
    card_path = out_dir / "README.md"
    if _is_main_process():
        peft_model.save_pretrained(str(out_dir), selected_adapters=["default"])
        write_adapter_meta(out_dir, base, method.kind, records=len(records), data_sha256=data_sha256,
                           lora_r=peft_model.peft_config["default"].r,
                           lora_alpha=peft_model.peft_config["default"].lora_alpha,
                           target_modules=sorted(peft_model.peft_config["default"].target_modules))
        card_path = write_model_card(
            out_dir, kind=method.kind,
            base={"name": base.name, "file": base.gguf_path.name, "sha256": base.sha256},
            data={"records": str(Path(records_path).resolve()), "sha256": data_sha256, "count": len(records),
                  "difficulty": difficulty_counts(records), "curriculum": curriculum},
            hyper={**{k: v for k, v in asdict(options).items() if k not in {"resume", "progress"}},
                   **method.hyper, "max_length": max_length,
                   "lora_target_modules": list(LORA_TARGET_MODULES)},
            stages=[asdict(r) for r in reports],
            metrics={"steps": sum(r.steps for r in reports), "final_loss": final_loss, "seconds": seconds,
                     "logged_steps": sum(1 for r in read_metrics(metrics_path) if "loss" in r), **extra})
    return TrainReport(kind=method.kind, out_dir=out_dir, base=base.name, base_sha256=base.sha256,
                       records=len(records), steps=sum(r.steps for r in reports), final_loss=final_loss,
                       seconds=seconds, stages=tuple(reports), metrics_path=metrics_path, card_path=card_path,
                       extra=extra)


def _read_json(path: Path) -> dict | None:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    return None


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
