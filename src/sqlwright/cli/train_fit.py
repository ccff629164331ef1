"""`sqlwright train sft|dpo|grpo`: fit a LoRA adapter on the embedded model's own weights (train/sft.py,
train/dpo.py, train/grpo.py). Added to the `train` group of cli/train.py; torch is imported only when a command
runs. Each command also runs under `accelerate launch … -m sqlwright train …` (docs/training.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from sqlwright.cli.app import OutputFormat, console, err_console, handle_errors, print_json
from sqlwright.cli.train import DB_DIR, DB_MAP, FORMAT, NO_PROGRESS, database_map, train_app
from sqlwright.errors import ConfigError

MODEL = typer.Option(None, "--model", "-m", help="The base model: a registered name or a .gguf path (default: the "
                     "configured model). Its GGUF is dequantized once and cached by sha256.")
OUT = typer.Option(..., "--out", "-o", help="The adapter directory (PEFT adapter, sqlwright-adapter.json, README.md "
                   "model card, metrics.jsonl, checkpoints/); a run there is resumed.")
EPOCHS = typer.Option(1.0, "--epochs", min=0.0, help="Passes over the records (per curriculum stage).")
LORA_R = typer.Option(16, "--lora-r", min=1, help="LoRA rank.")
LORA_ALPHA = typer.Option(32, "--lora-alpha", min=1, help="LoRA alpha (the update is scaled by alpha / r).")
BATCH = typer.Option(1, "--batch-size", min=1, help="Records per micro-batch (1 on a CPU: no padding).")
GRAD_ACCUM = typer.Option(4, "--grad-accum", min=1, help="Micro-batches per optimizer step.")
MAX_STEPS = typer.Option(None, "--max-steps", min=1, help="Optimizer steps at most (per stage); a larger value "
                         "on a finished run continues it.")
SAVE_STEPS = typer.Option(20, "--save-steps", min=1, help="A checkpoint every N steps (and at the end).")
NO_RESUME = typer.Option(False, "--no-resume", help="Start over: delete the checkpoints and metrics in --out.")
SEED = typer.Option(0, "--seed", help="Seed of the LoRA's initialisation and of the data order.")
BF16 = typer.Option(False, "--bf16", help="bfloat16 mixed precision (GPUs; slower than float32 on most CPUs).")
CHECKPOINTING = typer.Option(False, "--gradient-checkpointing", help="Recompute activations in the backward "
                             "pass: less memory, a third more time (for big models on small GPUs).")
MAX_LENGTH = typer.Option(None, "--max-length", min=16, help="Tokens of prompt + reply kept (default: n_ctx); "
                          "a longer record is cut at the end.")
THREADS = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default: every CPU).")


def _settings(threads: int | None):
    from sqlwright.config import load_settings

    return load_settings(threads=threads)


def _model(model: str | None, settings) -> str:
    return model or settings.model


def _show(report, fmt: OutputFormat) -> None:
    """The run's summary: one line, or its report as JSON."""
    if fmt is OutputFormat.json:
        print_json(report.as_dict())
        return
    loss = f"{report.final_loss:.4f}" if report.final_loss is not None else "-"
    stages = "; ".join(f"{s.name}: {s.records} records, {s.steps} steps"
                       + (f" (resumed at {s.resumed_from})" if 0 < s.resumed_from < s.steps else "")
                       for s in report.stages)
    console.print(f"{report.kind}: {report.steps} steps on {report.records} records ({stages}), final loss {loss}, "
                  f"{report.seconds:.1f} s; adapter {report.out_dir} (model card {report.card_path.name}, metrics "
                  f"{report.metrics_path.name})", highlight=False, soft_wrap=True)


def _check_format(fmt: OutputFormat) -> None:
    if fmt is OutputFormat.csv:
        raise ConfigError("train prints a summary as a table or json (--format csv is for rows)")


# --- train sft --------------------------------------------------------------------------------------------------
@train_app.command("sft")
@handle_errors
def sft(
    data: Path = typer.Argument(..., help="SFT records (JSON Lines): `train pairs`' sft.jsonl."),
    model: str = MODEL,
    out: Path = OUT,
    epochs: float = EPOCHS,
    lr: float = typer.Option(2e-4, "--lr", min=0.0, help="Learning rate (linear decay to 0)."),
    lora_r: int = LORA_R,
    lora_alpha: int = LORA_ALPHA,
    batch_size: int = BATCH,
    grad_accum: int = GRAD_ACCUM,
    max_steps: int = MAX_STEPS,
    save_steps: int = SAVE_STEPS,
    curriculum: bool = typer.Option(False, "--curriculum", help="SQLCoder's two stages by the records' difficulty: "
                                    "easy and medium first, then hard and extra hard."),
    no_resume: bool = NO_RESUME,
    seed: int = SEED,
    bf16: bool = BF16,
    gradient_checkpointing: bool = CHECKPOINTING,
    max_length: int = MAX_LENGTH,
    threads: int = THREADS,
    fmt: OutputFormat = FORMAT,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Supervised fine-tuning: a LoRA learns the replies of the SFT records (the loss is on the reply only; the
    prompt is the one `ask` sends). Started again on the same --out, it resumes from the last checkpoint."""
    from sqlwright.train import require_train_extra
    from sqlwright.train.sft import train_sft

    _check_format(fmt)
    require_train_extra()
    settings = _settings(threads)
    report = train_sft(Path(data), model=_model(model, settings), out_dir=Path(out), epochs=epochs, lr=lr,
                       lora_r=lora_r, lora_alpha=lora_alpha, batch_size=batch_size, grad_accum=grad_accum,
                       max_steps=max_steps, curriculum=curriculum, resume=not no_resume, seed=seed,
                       save_steps=save_steps, progress=not no_progress and fmt is OutputFormat.table, bf16=bf16,
                       gradient_checkpointing=gradient_checkpointing, max_length=max_length, settings=settings,
                       console=err_console)
    _show(report, fmt)


# --- train dpo --------------------------------------------------------------------------------------------------
@train_app.command("dpo")
@handle_errors
def dpo(
    data: Path = typer.Argument(..., help="DPO (or SENSE) pairs (JSON Lines): `train pairs`' dpo.jsonl or sense.jsonl."),
    model: str = MODEL,
    out: Path = OUT,
    init_adapter: Path = typer.Option(None, "--init-adapter", help="Start from this adapter (an SFT adapter, or "
                                      "the last round's) instead of a new LoRA."),
    ref: str = typer.Option("base", "--ref", help="The reference the policy is held to: base (the base model, "
                            "adapter disabled) or an adapter directory (frozen; e.g. the SFT adapter)."),
    beta: float = typer.Option(0.1, "--beta", min=0.0, help="DPO's beta: higher keeps closer to the reference."),
    epochs: float = EPOCHS,
    lr: float = typer.Option(5e-5, "--lr", min=0.0, help="Learning rate (linear decay to 0)."),
    lora_r: int = LORA_R,
    lora_alpha: int = LORA_ALPHA,
    batch_size: int = BATCH,
    grad_accum: int = GRAD_ACCUM,
    max_steps: int = MAX_STEPS,
    save_steps: int = SAVE_STEPS,
    no_resume: bool = NO_RESUME,
    seed: int = SEED,
    bf16: bool = BF16,
    gradient_checkpointing: bool = CHECKPOINTING,
    max_length: int = MAX_LENGTH,
    threads: int = THREADS,
    fmt: OutputFormat = FORMAT,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Direct preference optimisation: a LoRA learns to prefer each pair's chosen reply (a query that returns the
    gold result) over its rejected one. The reference is the base with the adapter disabled, or a frozen
    adapter: never a second model load. Started again on the same --out, it resumes."""
    from sqlwright.train import require_train_extra
    from sqlwright.train.dpo import train_dpo

    _check_format(fmt)
    require_train_extra()
    settings = _settings(threads)
    report = train_dpo(Path(data), model=_model(model, settings), out_dir=Path(out), beta=beta,
                       ref=ref if ref.strip().lower() == "base" else Path(ref), init_adapter=init_adapter,
                       epochs=epochs, lr=lr, lora_r=lora_r, lora_alpha=lora_alpha, batch_size=batch_size,
                       grad_accum=grad_accum, max_steps=max_steps, resume=not no_resume, seed=seed,
                       save_steps=save_steps, progress=not no_progress and fmt is OutputFormat.table, bf16=bf16,
                       gradient_checkpointing=gradient_checkpointing, max_length=max_length, settings=settings,
                       console=err_console)
    _show(report, fmt)


# --- train grpo -------------------------------------------------------------------------------------------------
@train_app.command("grpo")
@handle_errors
def grpo(
    data: Path = typer.Argument(..., help="SFT records (JSON Lines) whose questions and gold SQL are rewarded "
                                "against: `train pairs`' sft.jsonl."),
    model: str = MODEL,
    out: Path = OUT,
    db_dir: Path = DB_DIR,
    db: list[str] = DB_MAP,
    rule: str = typer.Option("spider", "--rule", help="The comparison rule that decides a reply is right "
                             "(spider, bird, sqleval, sqleval-strict)."),
    num_generations: int = typer.Option(4, "--num-generations", min=2, help="Replies sampled per question."),
    max_completion_length: int = typer.Option(256, "--max-completion-length", min=1, help="Tokens per reply."),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="Sampling temperature."),
    beta: float = typer.Option(0.0, "--beta", min=0.0, help="KL penalty towards the base (0: none, as TRL's default)."),
    epochs: float = EPOCHS,
    lr: float = typer.Option(1e-5, "--lr", min=0.0, help="Learning rate."),
    lora_r: int = LORA_R,
    lora_alpha: int = LORA_ALPHA,
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Questions per micro-batch."),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1, help="Micro-batches per optimizer step."),
    max_steps: int = MAX_STEPS,
    save_steps: int = SAVE_STEPS,
    no_resume: bool = NO_RESUME,
    seed: int = SEED,
    bf16: bool = BF16,
    threads: int = THREADS,
    fmt: OutputFormat = FORMAT,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Experimental: GRPO with an execution reward (1 right, 0.1 runs but wrong, 0 fails; Arctic-Text2SQL-R1).
    Every sampled query runs guarded and read-only. Slow on a CPU: meant for a GPU."""
    from sqlwright.train import require_train_extra
    from sqlwright.train.grpo import train_grpo

    _check_format(fmt)
    require_train_extra()
    settings = _settings(threads)
    report = train_grpo(Path(data), model=_model(model, settings), out_dir=Path(out), db_dir=db_dir,
                        databases=database_map(db), rule=rule, num_generations=num_generations,
                        max_completion_length=max_completion_length, temperature=temperature, beta=beta,
                        epochs=epochs, lr=lr, lora_r=lora_r, lora_alpha=lora_alpha, batch_size=batch_size,
                        grad_accum=grad_accum, max_steps=max_steps, resume=not no_resume, seed=seed,
                        save_steps=save_steps, progress=not no_progress and fmt is OutputFormat.table, bf16=bf16,
                        settings=settings, console=err_console)
    _show(report, fmt)
