"""Comparing two runs question by question: what one gets right and the other wrong, with both SQLs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlwright.eval.runfile import open_run_file


@dataclass
class RunDiff:
    """Questions common to two runs, split by who got them right; `a_only` are right in A, wrong in B."""

    run_a: Path
    run_b: Path
    a_only: list[dict] = field(default_factory=list)
    b_only: list[dict] = field(default_factory=list)
    both_right: int = 0
    both_wrong: int = 0
    only_in_a: list[str] = field(default_factory=list)  # ids A has and B lacks
    only_in_b: list[str] = field(default_factory=list)

    @property
    def common(self) -> int:
        return len(self.a_only) + len(self.b_only) + self.both_right + self.both_wrong

    def to_dict(self) -> dict:
        return {
            "run_a": str(self.run_a),
            "run_b": str(self.run_b),
            "common": self.common,
            "both_right": self.both_right,
            "both_wrong": self.both_wrong,
            "a_right_b_wrong": self.a_only,
            "b_right_a_wrong": self.b_only,
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
        }


def diff_runs(run_a: Path, run_b: Path) -> RunDiff:
    """Read two run files and pair their verdicts by example id (in A's order)."""
    with open_run_file(run_a, must_exist=True) as a, open_run_file(run_b, must_exist=True) as b:
        pairs_a, pairs_b = a.verdicts(), b.verdicts()
    by_id_b = {e.id: (e, v) for e, v in pairs_b}
    ids_a = {e.id for e, _ in pairs_a}
    out = RunDiff(Path(run_a), Path(run_b))
    out.only_in_b = [e.id for e, _ in pairs_b if e.id not in ids_a]
    for example, va in pairs_a:
        if example.id not in by_id_b:
            out.only_in_a.append(example.id)
            continue
        _, vb = by_id_b[example.id]
        if va.correct and vb.correct:
            out.both_right += 1
        elif not va.correct and not vb.correct:
            out.both_wrong += 1
        else:
            entry = {
                "id": example.id,
                "db": example.db,
                "question": example.question,
                "gold_sql": example.gold,
                "sql_a": va.pred_sql,
                "sql_b": vb.pred_sql,
                "error_a": va.error,
                "error_b": vb.error,
            }
            (out.a_only if va.correct else out.b_only).append(entry)
    return out
