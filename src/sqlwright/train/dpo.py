"""Direct preference optimisation: a LoRA learns to prefer the chosen reply of each DPO record over the rejected
one (TRL's DPOTrainer), as ExCoT does with execution-labelled pairs.

The reference the policy is held to is never a second model load: by default (`ref="base"`) it is the base
model itself, the LoRA disabled (PEFT's ``disable_adapter``); with `ref=DIR` it is the sqlwright adapter in DIR
(an SFT adapter, say), loaded frozen as a second adapter on the same base weights. `init_adapter=DIR` starts
the trained LoRA from that adapter instead of from zero (ExCoT's on-policy rounds continue the last round's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlwright.config import Settings
from sqlwright.errors import ConfigError
from sqlwright.train.fit import FitOptions, Method, TrainReport, load_lora, new_lora, run_fit
from sqlwright.train.model import BaseModelFile, read_adapter_meta
from sqlwright.train.records import read_records

DPO_COLUMNS = ("prompt", "chosen", "rejected")
REF_ADAPTER = "ref"  # the adapter name TRL's DPOTrainer computes the reference log-probabilities with
BASE_REF = "base"


def _same_dir(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def _set_reference(model: Any, ref: str | Path, init_adapter: Path | None, base: BaseModelFile) -> None:
    """Make the trainer's reference what `ref` names. TRL copies a given adapter as "ref" (the policy's start):
    right when `ref` is that same adapter; otherwise it goes, and "ref" is `ref`'s adapter, or nothing (the
    base: TRL then disables the adapters for the reference pass)."""
    if _same_dir(Path(ref) if ref != BASE_REF else None, init_adapter):
        return
    if REF_ADAPTER in model.peft_config:
        model.delete_adapter(REF_ADAPTER)
    if ref != BASE_REF:
        read_adapter_meta(Path(ref), base)
        model.load_adapter(str(ref), adapter_name=REF_ADAPTER, is_trainable=False)
    model.set_adapter("default")


def train_dpo(records_path: Path, *, model: str, out_dir: Path, beta: float = 0.1, ref: str | Path = BASE_REF,
              init_adapter: Path | None = None, epochs: float = 1.0, lr: float = 5e-5, lora_r: int = 16,
              lora_alpha: int = 32, batch_size: int = 1, grad_accum: int = 4, max_steps: int | None = None,
              resume: bool = True, seed: int = 0, save_steps: int = 20, progress: bool = False, bf16: bool = False,
              gradient_checkpointing: bool = False, max_length: int | None = None,
              settings: Settings | None = None, console: Any = None) -> TrainReport:
    """Train a LoRA adapter on the DPO (or SENSE) records at `records_path` into `out_dir`; `ref` is "base"
    or a sqlwright adapter directory, `init_adapter` an adapter to start from (its r and alpha then apply).
    DatasetError / AdapterMismatch (one line) for bad records or an adapter trained on another base."""
    if beta <= 0:
        raise ConfigError("--beta must be positive")
    records = read_records(Path(records_path), "dpo")
    ref_name = BASE_REF if str(ref) == BASE_REF else str(Path(ref).resolve())
    init_path = Path(init_adapter) if init_adapter is not None else None
    options = FitOptions(epochs=epochs, lr=lr, lora_r=lora_r, lora_alpha=lora_alpha, batch_size=batch_size,
                         grad_accum=grad_accum, max_steps=max_steps, save_steps=save_steps, seed=seed,
                         resume=resume, progress=progress, bf16=bf16, gradient_checkpointing=gradient_checkpointing,
                         max_length=max_length)
    state: dict[str, BaseModelFile] = {}

    def check(base: BaseModelFile) -> None:
        state["base"] = base
        for adapter in (init_path, None if ref_name == BASE_REF else Path(ref_name)):
            if adapter is not None:
                read_adapter_meta(adapter, base)

    def prepare(base_model: Any, base: BaseModelFile) -> Any:
        if init_path is None:
            return new_lora(base_model, options)
        return load_lora(base_model, init_path, base, trainable=True)

    def make_trainer(peft_model: Any, tokenizer: Any, dataset: Any, args: dict, callbacks: list) -> Any:
        from trl import DPOConfig, DPOTrainer

        config = DPOConfig(**args, beta=beta)
        trainer = DPOTrainer(model=peft_model, ref_model=None, args=config, train_dataset=dataset,
                             processing_class=tokenizer, callbacks=callbacks)
        _set_reference(trainer.model, ref_name, init_path, state["base"])
        return trainer

    hyper = {"beta": beta, "ref": ref_name,
             "init_adapter": str(init_path.resolve()) if init_path is not None else None}
    method = Method(kind="dpo", columns=DPO_COLUMNS, make_trainer=make_trainer, hyper=hyper, prepare_model=prepare,
                    check=check)
    return run_fit(method, Path(records_path), records, model=model, out_dir=Path(out_dir), options=options,
                   settings=settings, console=console)
