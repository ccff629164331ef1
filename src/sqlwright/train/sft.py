"""Supervised fine-tuning: a LoRA on the base model learns the replies of SFT records (TRL's SFTTrainer).

The records are in TRL's conversational prompt–completion format, the prompt exactly what `ask` sends; the
loss is on the reply only (the completion), so the model learns to answer, not to repeat schemas. With
`curriculum`, SQLCoder's two stages: easy and medium questions first, then hard and extra hard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlwright.config import Settings
from sqlwright.train.fit import FitOptions, Method, TrainReport, run_fit
from sqlwright.train.records import read_records

SFT_COLUMNS = ("prompt", "completion")


def _sft_trainer(model: Any, tokenizer: Any, dataset: Any, args: dict, callbacks: list) -> Any:
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(**args, completion_only_loss=True, packing=False)
    return SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                      callbacks=callbacks)


def train_sft(records_path: Path, *, model: str, out_dir: Path, epochs: float = 1.0, lr: float = 2e-4,
              lora_r: int = 16, lora_alpha: int = 32, batch_size: int = 1, grad_accum: int = 4,
              max_steps: int | None = None, curriculum: bool = False, resume: bool = True, seed: int = 0,
              save_steps: int = 20, progress: bool = False, bf16: bool = False,
              gradient_checkpointing: bool = False, max_length: int | None = None,
              settings: Settings | None = None, console: Any = None) -> TrainReport:
    """Train a LoRA adapter on the SFT records at `records_path` into `out_dir` (see fit.py for the layout);
    DatasetError (one line) for records that are missing, empty or malformed (an SFT record without gold SQL
    included)."""
    records = read_records(Path(records_path), "sft")
    options = FitOptions(epochs=epochs, lr=lr, lora_r=lora_r, lora_alpha=lora_alpha, batch_size=batch_size,
                         grad_accum=grad_accum, max_steps=max_steps, save_steps=save_steps, seed=seed,
                         resume=resume, progress=progress, bf16=bf16, gradient_checkpointing=gradient_checkpointing,
                         max_length=max_length)
    method = Method(kind="sft", columns=SFT_COLUMNS, make_trainer=_sft_trainer)
    return run_fit(method, Path(records_path), records, model=model, out_dir=Path(out_dir), options=options,
                   curriculum=curriculum, settings=settings, console=console)
