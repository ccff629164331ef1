"""`sqlwright train export ADAPTER_DIR --out FILE.gguf [--merge]`: a trained LoRA made servable by llama.cpp
(train/export.py), checked against PyTorch with --check (train/logit_check.py). Added to the `train` group of
cli/train.py; torch is imported only when the command runs."""

from __future__ import annotations

from pathlib import Path

import typer

from sqlwright.cli.app import OutputFormat, console, handle_errors, print_json
from sqlwright.cli.train import FORMAT, train_app
from sqlwright.errors import ConfigError, SqlwrightError

QUANTIZE_HELP = "With --merge: quantize the merged model with llama.cpp (q8_0, q6_k, q5_k_m, q5_0, q4_k_m, q4_0)."


class CheckFailed(SqlwrightError):
    """llama.cpp's logits differ from PyTorch's by more than the tolerance (exit 1: a defect, not a user error)."""


@train_app.command("export")
@handle_errors
def export(
    adapter_dir: Path = typer.Argument(..., help="A LoRA adapter directory (`train sft|dpo --out DIR`)."),
    out: Path = typer.Option(..., "--out", "-o", help="The GGUF file to write."),
    base: str = typer.Option(None, "--base", help="The base model it is served on: a registered name or a .gguf "
                             "path (default: the one it was trained on, from sqlwright-adapter.json)."),
    merge: bool = typer.Option(False, "--merge", help="Write base + adapter as one model GGUF instead of an "
                               "adapter (every tensor dequantized; see --outtype, --quantize)."),
    outtype: str = typer.Option("f16", "--outtype", help="With --merge: f16 or f32 matrices."),
    quantize: str = typer.Option(None, "--quantize", help=QUANTIZE_HELP),
    check: bool = typer.Option(False, "--check", help="Then compare llama.cpp's logits with PyTorch's on a few "
                               "prompts (loads the model in both; exit 1 beyond the tolerance)."),
    fmt: OutputFormat = FORMAT,
) -> None:
    """Write a LoRA adapter as a llama.cpp GGUF adapter (served with `--lora FILE` or `models add`), or merged
    into its base model."""
    from sqlwright.train import require_train_extra

    if fmt is OutputFormat.csv:
        raise ConfigError("train export prints a summary as a table or json (--format csv is for rows)")
    if not merge and (quantize is not None or outtype != "f16"):
        raise ConfigError("--outtype and --quantize are for --merge (an adapter is written in F32)")
    require_train_extra(("torch", "safetensors", "gguf", "peft") + (("transformers",) if check else ()))
    from sqlwright.config import load_settings
    from sqlwright.train.export import export_gguf_adapter, merge_adapter, resolve_gguf_base

    settings = load_settings()
    base_file = resolve_gguf_base(base, adapter_dir, settings)
    base_ref = str(base_file.path)
    if merge:
        written = merge_adapter(adapter_dir, out, base=base_ref, outtype=outtype, quantize=quantize,
                                settings=settings)
    else:
        written = export_gguf_adapter(adapter_dir, out, base=base_ref, settings=settings)
    summary: dict[str, object] = {"out": str(written), "bytes": written.stat().st_size, "base": base_file.name,
                                  "base_sha256": base_file.sha256, "merged": merge}
    if check:
        from sqlwright.train.logit_check import adapter_logit_check, merged_logit_check

        result = (merged_logit_check(adapter_dir, written, base_file.path, outtype=outtype, quantize=quantize,
                                     settings=settings)
                  if merge else adapter_logit_check(adapter_dir, written, base_file.path, settings=settings))
        summary["check"] = result.as_dict()
    if fmt is OutputFormat.json:
        print_json(summary)
    else:
        what = "merged model" if merge else "LoRA adapter"
        console.print(f"wrote {what} {written} ({summary['bytes']:,} bytes) for {base_file.name}",
                      markup=False, highlight=False, soft_wrap=True)
        if check:
            verdict = "ok" if result.passed else "FAILED"
            console.print(f"logits vs PyTorch: max |diff| {result.max_diff:.3g} (base alone {result.base_max_diff:.3g},"
                          f" tolerance {result.tolerance:.3g}): {verdict}", markup=False, highlight=False,
                          soft_wrap=True)
    if check and not result.passed:
        raise CheckFailed(f"llama.cpp's logits differ from PyTorch's by {result.max_diff:.3g}, more than the "
                          f"tolerance {result.tolerance:.3g}")
