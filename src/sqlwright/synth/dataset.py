"""The synthesized dataset: JSON Lines (one pair per line, loadable with Hugging Face
``datasets.load_dataset("json", data_files=...)``) and its datasheet (Markdown and JSON).

Each line: ``id, database, dialect, question, evidence, style, sql, complexity, result_hash, verified,
reason, cot, provenance {model, question_model, verifier, prompt_version, seed, time}``. `evidence` is the
external knowledge of vague and metaphorical questions (None otherwise); `reason` says why a pair is not
verified (None when it is, "pending" before verification); `cot` is an agreeing chain-of-thought solution
when the CoT stage kept one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlwright.synth.prompts import LEVELS, PROMPT_VERSION, STYLE_NAMES
from sqlwright.synth.workfile import ItemRecord, WorkFile

PENDING = "pending"  # the reason of a pair not verified yet


@dataclass(frozen=True)
class SynthPair:
    """One synthesized question–SQL pair, as exported."""

    id: str
    database: str
    dialect: str
    question: str
    evidence: str | None
    style: str
    sql: str
    complexity: str
    result_hash: str
    verified: bool
    reason: str | None
    cot: str | None
    provenance: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return _dt.datetime.fromtimestamp(timestamp, _dt.UTC).isoformat(timespec="seconds")


def pair_from_item(item: ItemRecord, *, prompt_version: str = PROMPT_VERSION) -> SynthPair | None:
    """The exported pair of a work-file item, or None while it has no question."""
    if item.question is None or item.style is None:
        return None
    reason = None if item.verified else (item.verify_reason or PENDING)
    provenance = {
        "model": item.sql_model,
        "question_model": item.question_model,
        "verifier": item.verify_model,
        "prompt_version": prompt_version,
        "seed": item.seed,
        "time": _iso(item.verify_created or item.question_created or item.created),
    }
    return SynthPair(item.id, item.database, item.dialect, item.question, item.evidence, item.style, item.sql,
                     item.level, item.result_hash, bool(item.verified), reason,
                     item.cot_texts[0] if item.cot_kept and item.cot_texts else None, provenance)


def _prompt_version(work: WorkFile) -> str:
    return (work.config("sql") or {}).get("prompt_version", PROMPT_VERSION)


def work_pairs(work: WorkFile, *, database: str | None = None, verified_only: bool = False) -> list[SynthPair]:
    """The pairs in `work` (those with a question), in generation order."""
    version = _prompt_version(work)
    pairs = [p for item in work.items(database) if (p := pair_from_item(item, prompt_version=version))]
    return [p for p in pairs if p.verified] if verified_only else pairs


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def datasheet_paths(out: Path) -> tuple[Path, Path]:
    """Where the datasheet of `out` (pairs.jsonl) goes: pairs.datasheet.md and pairs.datasheet.json."""
    out = Path(out)
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.with_name(f"{stem}.datasheet.md"), out.with_name(f"{stem}.datasheet.json")


@dataclass(frozen=True)
class Export:
    pairs: int
    verified: int
    jsonl: Path
    datasheet_md: Path
    datasheet_json: Path


def export_dataset(work: WorkFile, out: Path, *, verified_only: bool = False) -> Export:
    """Write the pairs of `work` as JSON Lines to `out` and the datasheet next to it (each file replaced
    whole, never left half-written)."""
    pairs = work_pairs(work, verified_only=verified_only)
    lines = "".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in pairs)
    out = Path(out)
    _write_atomically(out, lines)
    sheet = datasheet(work, pairs)
    md, js = datasheet_paths(out)
    _write_atomically(js, json.dumps(sheet, indent=2, ensure_ascii=False) + "\n")
    _write_atomically(md, render_datasheet(sheet))
    return Export(len(pairs), sum(p.verified for p in pairs), out, md, js)


def _breakdown(pairs: list[SynthPair], key: str, order: tuple[str, ...] = ()) -> dict[str, dict[str, int]]:
    total = Counter(getattr(p, key) for p in pairs)
    verified = Counter(getattr(p, key) for p in pairs if p.verified)
    names = [n for n in order if n in total] + sorted(n for n in total if n not in order)
    return {n: {"pairs": total[n], "verified": verified[n]} for n in names}


def datasheet(work: WorkFile, pairs: list[SynthPair] | None = None) -> dict:
    """What the work file holds and what it cost: counts by database, complexity and style, the verified
    share, rejections and unverified pairs by reason, seconds per stage and verified pairs per CPU-hour."""
    pairs = work_pairs(work) if pairs is None else pairs
    items = work.items()
    costs = work.stage_costs()
    for cost in costs.values():
        cost["seconds_per_item"] = cost["seconds"] / cost["items"] if cost["items"] else None
    wall = sum(c["seconds"] for c in costs.values())
    cpu = sum(c["cpu_seconds"] for c in costs.values())
    verified = sum(p.verified for p in pairs)
    attempts = costs["sql"]["items"]
    return {
        "work_file": str(work.path),
        "prompt_version": _prompt_version(work),
        "seed": work.seed(),
        "configuration": {stage: work.config(stage) for stage in ("sql", "questions", "verify", "cot")},
        "databases": {name: {"dialect": d.dialect} for name, d in work.databases().items()},
        "pairs": len(pairs),
        "verified": verified,
        "verified_share": verified / len(pairs) if pairs else None,
        "by_database": _breakdown(pairs, "database"),
        "by_complexity": _breakdown(pairs, "complexity", LEVELS),
        "by_style": _breakdown(pairs, "style", STYLE_NAMES),
        "sql": {"attempts": attempts, "kept": len(items), "kept_share": len(items) / attempts if attempts else None,
                "rejections": dict(sorted(work.rejections().items(), key=lambda kv: -kv[1]))},
        "questions": {"written": sum(i.question is not None for i in items),
                      "without_question": sum(i.question is None and i.style is not None for i in items)},
        "unverified": dict(Counter(p.reason for p in pairs if not p.verified).most_common()),
        "cot": {"run": sum(i.cot_kept is not None for i in items), "kept": sum(bool(i.cot_kept) for i in items)},
        "stages": costs,
        "seconds": wall,
        "cpu_seconds": cpu,
        "verified_pairs_per_cpu_hour": verified / (cpu / 3600) if cpu > 0 else None,
        "verified_pairs_per_hour": verified / (wall / 3600) if wall > 0 else None,
    }


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(title: str, header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    if not rows:
        return [f"### {title}", "", "(none)", ""]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def render_datasheet(sheet: dict) -> str:
    """The datasheet as Markdown."""
    share = sheet["verified_share"]
    lines = [
        "# Datasheet: synthesized question–SQL pairs",
        "",
        f"Work file `{sheet['work_file']}`, prompt version `{sheet['prompt_version']}`, seed {sheet['seed']}.",
        "Method: OmniSQL-style synthesis (SQL by complexity, filtered by execution and template; questions "
        "back-translated in nine styles, nearest the candidates' centroid; verified by asking them back "
        "through the sqlwright pipeline under Spider's execution rule; chain-of-thought kept when 3 samples "
        "agree with the result).",
        "",
        f"- pairs: {sheet['pairs']:,}; verified: {sheet['verified']:,}"
        + (f" ({100 * share:.1f}%)" if share is not None else ""),
        f"- queries generated: {sheet['sql']['attempts']:,}; kept: {sheet['sql']['kept']:,}",
        f"- chain-of-thought: {sheet['cot']['kept']:,} kept of {sheet['cot']['run']:,}",
        f"- verified pairs per CPU-hour: {_fmt(sheet['verified_pairs_per_cpu_hour'])}; "
        f"per wall-clock hour: {_fmt(sheet['verified_pairs_per_hour'])}",
        "",
    ]
    for key, title in (("by_database", "database"), ("by_complexity", "complexity"), ("by_style", "style")):
        rows = [(name, c["pairs"], c["verified"]) for name, c in sheet[key].items()]
        lines += _table(f"By {title}", (title, "pairs", "verified"), rows)
    lines += _table("Queries rejected, by reason", ("reason", "queries"), list(sheet["sql"]["rejections"].items()))
    lines += _table("Pairs not verified, by reason", ("reason", "pairs"), list(sheet["unverified"].items()))
    rows = [(stage, c["items"], c["seconds"], c["seconds_per_item"], c["cpu_seconds"])
            for stage, c in sheet["stages"].items()]
    lines += _table("Cost per stage", ("stage", "items", "seconds", "seconds/item", "CPU seconds"), rows)
    return "\n".join(lines)
