"""Choosing which examples to evaluate: by database, the first N, or a seeded sample spread over
databases that is the same on every machine."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence

from sqlwright.errors import ConfigError
from sqlwright.eval.types import Example


def natural_key(text: str) -> tuple:
    """Sort key that orders "q2" before "q10"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def stratified_sample(examples: Sequence[Example], n: int, seed: int = 0) -> list[Example]:
    """`n` examples spread over databases in proportion to their sizes (largest remainders, ties by db
    id), drawn within each database by a `random.Random` seeded with (seed, db id) from its examples
    sorted by id — so the sample does not depend on input order, hash seeds or the machine. Returned
    in the input order."""
    if n < 0:
        raise ConfigError(f"--sample must be a positive number, not {n}")
    if n >= len(examples):
        return list(examples)
    by_db: dict[str, list[Example]] = {}
    for e in examples:
        by_db.setdefault(e.db, []).append(e)
    total = len(examples)
    quotas = {db: n * len(items) / total for db, items in by_db.items()}
    counts = {db: int(q) for db, q in quotas.items()}
    leftover = n - sum(counts.values())
    for db in sorted(quotas, key=lambda d: (-(quotas[d] - counts[d]), d))[:leftover]:
        counts[db] += 1
    chosen: set[str] = set()
    for db in sorted(by_db):
        items = sorted(by_db[db], key=lambda e: natural_key(e.id))
        rng = random.Random(f"{seed}:{db}")
        chosen.update(e.id for e in rng.sample(items, counts[db]))
    return [e for e in examples if e.id in chosen]


def select_examples(
    examples: Sequence[Example],
    *,
    db_ids: Iterable[str] = (),
    sample: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    ids: Iterable[str] = (),
) -> list[Example]:
    """Keep the questions whose id is in `ids` (all when empty) and the examples of `db_ids` (all when empty),
    then a stratified `sample`, then the first `limit`. Unknown question or database ids are a ConfigError."""
    selected = list(examples)
    wanted_ids = set(ids)
    if wanted_ids:
        unknown_ids = sorted(wanted_ids - {e.id for e in selected})
        if unknown_ids:
            shown = ", ".join(unknown_ids[:5]) + (f" and {len(unknown_ids) - 5} more" if len(unknown_ids) > 5 else "")
            raise ConfigError(f"unknown --id {shown}: no such question in the dataset")
        selected = [e for e in selected if e.id in wanted_ids]
    wanted = list(dict.fromkeys(db_ids))
    if wanted:
        known = {e.db for e in examples}
        unknown = [d for d in wanted if d not in known]
        if unknown:
            raise ConfigError(
                f"unknown --db-id {', '.join(unknown)}; the dataset has: {', '.join(sorted(known))}"
            )
        selected = [e for e in selected if e.db in set(wanted)]
    if sample is not None:
        selected = stratified_sample(selected, sample, seed)
    if limit is not None:
        if limit < 0:
            raise ConfigError(f"--limit must be a positive number, not {limit}")
        selected = selected[:limit]
    return selected
