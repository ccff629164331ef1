"""The model card of a trained adapter (``README.md`` in the adapter directory): what it was trained from,
on what, with which hyper-parameters, and how the run went."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

CARD_FILE = "README.md"

_USE = """\
## Use

```sh
sqlwright train export {out} --out {out}/adapter.gguf   # the LoRA as a llama.cpp GGUF adapter
sqlwright ask DB "a question" --model {base} --lora {out}/adapter.gguf
```

The adapter changes only the model's answers: the base model file stays as it is, quantized."""


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def _escape(text: str) -> str:
    """A table cell's text: a pipe would end the cell."""
    return text.replace("|", "\\|")


def _table(rows: Mapping[str, object]) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {key} | {_escape(_cell(value))} |" for key, value in rows.items()]
    return "\n".join(lines)


def write_model_card(out_dir: Path, *, kind: str, base: Mapping[str, object], data: Mapping[str, object],
                     hyper: Mapping[str, object], stages: Sequence[Mapping[str, object]],
                     metrics: Mapping[str, object]) -> Path:
    """Write ``README.md`` into `out_dir` (replacing the one PEFT writes) and return its path."""
    out_dir = Path(out_dir)
    stage_lines = ["| stage | records | steps | first loss | last loss | seconds |", "|---|---|---|---|---|---|"]
    for s in stages:
        stage_lines.append(f"| {s.get('name')} | {s.get('records')} | {s.get('steps')} | "
                           f"{_cell(s.get('first_loss'))} | {_cell(s.get('last_loss'))} | {_cell(s.get('seconds'))} |")
    text = "\n\n".join([
        f"# sqlwright {kind.upper()} LoRA adapter",
        f"A LoRA adapter for `{base.get('name')}`, trained by `sqlwright train {kind}` with TRL and PEFT on the "
        "model's own weights (its GGUF, dequantized). The prompts are the ones `sqlwright ask` sends.",
        "## Base model\n\n" + _table(base),
        "## Data\n\n" + _table(data),
        "## Hyper-parameters\n\n" + _table(hyper),
        "## Run\n\n" + "\n".join(stage_lines) + "\n\n" + _table(metrics)
        + "\n\nEvery optimizer step's loss and learning rate are in `metrics.jsonl`.",
        _USE.format(out=out_dir, base=base.get("name")),
    ])
    path = out_dir / CARD_FILE
    path.write_text(text + "\n", encoding="utf-8")
    return path
