"""What a training run shows and records while it runs: a Rich progress bar (steps, loss, ETA) on stderr and
the trainer's logs as JSON Lines (``metrics.jsonl``: one object per optimizer step).

Both are `transformers.TrainerCallback`s, built by `callbacks()`; only the main process of a distributed run
(``state.is_world_process_zero``) draws or writes. The classes are made inside `callbacks()` because their
base class lives in transformers, which only a training run imports.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: Path) -> list[dict]:
    """The JSON objects of a metrics file (an unreadable trailing line, from a killed run, is left out)."""
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return rows
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _prune(path: Path, stage: str, after_step: int) -> None:
    """Drop `stage`'s lines beyond `after_step`: a resumed run logs those steps again."""
    rows = read_metrics(path)
    kept = [r for r in rows if not (r.get("stage") == stage and int(r.get("step", 0)) > after_step)]
    if len(kept) != len(rows) or not path.is_file():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, path)


def _number(value: Any) -> Any:
    """A log value as JSON can hold it (NaN and infinities as strings)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def callbacks(*, metrics_path: Path, kind: str, stage: str, progress: bool, console: Any = None) -> list[Any]:
    """The callbacks of one training stage: the metrics writer, and the progress bar when `progress`."""
    from transformers import TrainerCallback

    class MetricsWriter(TrainerCallback):
        """Appends each log of the trainer (loss, learning rate, grad norm, …) to ``metrics.jsonl``."""

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                metrics_path.parent.mkdir(parents=True, exist_ok=True)
                _prune(metrics_path, stage, state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"kind": kind, "stage": stage, "step": state.global_step, "epoch": state.epoch,
                   **({"event": "end"} if "train_runtime" in logs else {}),
                   **{k: _number(v) for k, v in logs.items()},
                   "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
            with metrics_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")

    class ProgressBar(TrainerCallback):
        """A Rich bar: steps done of the stage's total, the last loss, elapsed time and ETA."""

        def __init__(self) -> None:
            self.bar = None
            self.task = None

        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            label = kind if stage == "all" else f"{kind} {stage}"
            self.bar = Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(),
                                TextColumn("eta"), TimeRemainingColumn(), console=console or Console(stderr=True),
                                transient=False)
            self.task = self.bar.add_task(label, total=state.max_steps, completed=state.global_step, loss="-")
            self.bar.start()

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs and "loss" in logs:
                self.bar.update(self.task, loss=f"{float(logs['loss']):.4f}")

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(self.task, completed=state.global_step)
                self.bar.stop()
                self.bar = None

    found: list[Any] = [MetricsWriter()]
    if progress:
        found.append(ProgressBar())
    return found
