"""Training the embedded model on what sqlwright learned (needs the [train] extra for the training steps).

    records.py   the JSON Lines records (SFT and DPO, Hugging Face / TRL conversational format)
    pairs.py     sample k candidates per question, execute, label against the gold: SFT records, DPO and
                 SENSE pairs (`sqlwright train pairs`)
    excot.py     ExCoT's loop: an off-policy DPO round, then on-policy rounds, each scored on a held-out split

Only the training steps (sft, dpo, grpo, export) import torch, and only inside the functions a training
command runs: `sqlwright --help` and `train pairs` never load it.
"""

from __future__ import annotations

import importlib.util

from sqlwright.errors import TrainingUnavailable

TRAIN_EXTRA_HINT = "install the train extra: pip install 'sqlwright[train]'"
TRAIN_PACKAGES = ("torch", "transformers", "trl", "peft", "datasets")


def require_train_extra(packages: tuple[str, ...] = TRAIN_PACKAGES) -> None:
    """TrainingUnavailable (one line, exit 2) unless every package of the [train] extra can be imported.
    Looks the packages up without importing them (torch alone takes seconds to import)."""
    missing = [name for name in packages if _spec(name) is None]
    if missing:
        raise TrainingUnavailable(f"{TRAIN_EXTRA_HINT} (missing: {', '.join(missing)})")


def _spec(name: str) -> object | None:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a broken install, or a module blocked in sys.modules (None)
        return None


__all__ = ["TRAIN_EXTRA_HINT", "TRAIN_PACKAGES", "require_train_extra"]
