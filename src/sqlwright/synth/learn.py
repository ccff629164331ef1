"""`learn`: synthesize verified question–SQL pairs for a database and keep them as its examples.

The chain is `synthesize` (SQL by complexity, question in a style, verified by asking it back; see run.py);
each verified pair goes to the examples store as a "synthesized", verified example with its provenance, so
that `ask` can show the nearest ones to the model. Pairs already stored are not added twice, and a run that
stopped (Ctrl-C, SIGKILL) resumes from its work file without asking the model again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlwright.db import Database
from sqlwright.llm.base import LLM
from sqlwright.store import StateStore, StoredExample
from sqlwright.synth.run import ProgressFn, SynthReport, synthesize

SYNTHESIZED = "synthesized"


@dataclass(frozen=True)
class LearnReport:
    """What one `learn` did: the synthesis report and the examples now stored from it."""

    synth: SynthReport
    stored: tuple[StoredExample, ...]  # every verified pair of the work file, as stored
    added: int  # of which new in the store


def default_work_file(cache_dir: Path, database_key: str) -> Path:
    """Where `learn` keeps its work for a database (resumed by the next `learn` on it)."""
    digest = hashlib.sha256(database_key.encode()).hexdigest()[:16]
    return Path(cache_dir) / "learn" / f"{digest}.sqlite"


def learn(db: Database, llm: LLM, store: StateStore, *, database_key: str, schema_fingerprint: str,
          pairs: int, work: Path, seed: int = 0, verifier: LLM | None = None,
          progress: ProgressFn | None = None) -> LearnReport:
    """Synthesize until `db` has `pairs` verified pairs (or the attempt budget is spent) and store them as
    examples of `database_key` / `schema_fingerprint`."""
    before = {(e.question, e.sql) for e in store.examples(database_key, schema_fingerprint=schema_fingerprint)}
    report = synthesize(db, llm, work=work, pairs=pairs, seed=seed, verifier=verifier, progress=progress)
    stored = []
    for pair in report.pairs:
        if not pair.verified:
            continue
        provenance = {**pair.provenance, "style": pair.style, "complexity": pair.complexity,
                      "synth_id": pair.id, "result_hash": pair.result_hash}
        if pair.evidence:
            provenance["evidence"] = pair.evidence
        stored.append(store.add_example(database_key, schema_fingerprint, pair.question, pair.sql,
                                        source=SYNTHESIZED, verified=True, provenance=provenance))
    added = sum((e.question, e.sql) not in before for e in stored)
    return LearnReport(report, tuple(stored), added)
