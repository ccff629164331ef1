"""Reports of a run: the full summary as JSON, tables as Markdown, and a self-contained HTML page with
SVG charts (accuracy by difficulty, category and database; a latency histogram). No scripts, no
external assets: the page opens offline.

Verdicts may carry a note from their comparison rule (SQL-Eval names the Defog quirk, or the error in
Defog's code, that decided a verdict): every report counts them and lists the questions that have one."""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlwright.errors import UserError

BAR_COLOR = "#3b6ea8"
MAX_LISTED = 200  # wrong answers listed in Markdown/HTML (all of them are in the JSON)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def note_counts(summary: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per note, how many verdicts carry it and how many of those are right (a verdict whose note
    names several things, "; "-separated, counts for each). Taken from `summary["notes"]` when the
    summary has it (e.g. a summary.json read back), else from its results."""
    if "notes" in summary:
        return dict(summary["notes"])
    count: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for result in summary.get("results", []):
        for note in filter(None, (result.get("note") or "").split("; ")):
            count[note] += 1
            right[note] += bool(result.get("correct"))
    return {note: {"count": count[note], "correct": right[note]} for note in sorted(count)}


def _why(result: Mapping[str, Any]) -> str:
    """Why an answer is wrong, in a few words."""
    return (result.get("error") or result.get("gold_error") or ("abstained" if result.get("abstained") else None)
            or result.get("note") or "wrong result")


def headline(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The run's main figures as (label, formatted value) rows."""
    rows = [
        ("questions", str(summary["count"])),
        ("EX", _pct(summary["ex"])),
        ("Soft-F1", _pct(summary.get("soft_f1"))),
        ("R-VES", _num(summary.get("r_ves"))),
        ("RS(0)", _num(summary["rs"]["0"])),
        ("RS(10)", _num(summary["rs"]["10"])),
        ("RS(N)", _num(summary["rs"]["N"])),
        ("abstained", str(summary["abstained"])),
        ("errors", str(summary["errors"])),
        ("timeouts", str(summary["timeouts"])),
        ("gold errors", str(summary["gold_errors"])),
    ]
    for note, n in note_counts(summary).items():
        rows.append((f"note: {note}", f"{n['count']} ({n['correct']} right)"))
    excluding = summary.get("excluding")
    if excluding:
        rows.append((f"EX without {', '.join(excluding['dbs'])}", f"{_pct(excluding['ex'])} of {excluding['count']}"))
    lat = summary.get("latency")
    if lat:
        rows.append(("latency median / mean / p90", f"{lat['median']:.2f} / {lat['mean']:.2f} / {lat['p90']:.2f} s"))
    tok = summary.get("tokens")
    if tok:
        rows.append(("tokens per question (prompt / completion)", f"{tok['prompt_mean']:.0f} / {tok['completion_mean']:.0f}"))
    return rows


BREAKDOWNS = (("by_difficulty", "difficulty"), ("by_category", "category"), ("by_db", "database"))


# --- Markdown --------------------------------------------------------------------------------------
def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown: headline figures, breakdown tables and the wrong answers."""
    config = summary.get("config", {})
    parts = [f"# Evaluation: {config.get('dataset', '?')} ({config.get('comparison', '?')} rules)", ""]
    parts += [_md_table(["metric", "value"], headline(summary)), ""]
    for key, label in BREAKDOWNS:
        groups = summary.get(key) or {}
        if groups:
            rows = [(k, str(g["count"]), str(g["correct"]), _pct(g["ex"])) for k, g in groups.items()]
            parts += [f"## EX by {label}", "", _md_table([label, "questions", "correct", "EX"], rows), ""]
    wrong = [r for r in summary.get("results", []) if not r["correct"]]
    if wrong:
        rows = [(r["id"], r["db"], _why(r), r.get("pred_sql") or "", r["gold_sql"]) for r in wrong[:MAX_LISTED]]
        parts += [f"## Wrong answers ({len(wrong)})", "", _md_table(["id", "db", "why", "predicted", "gold"], rows), ""]
    noted = [r for r in summary.get("results", []) if r.get("note")]
    if noted:
        rows = [(r["id"], r["db"], "right" if r["correct"] else "wrong", r["note"], r.get("pred_sql") or "",
                 r["gold_sql"]) for r in noted[:MAX_LISTED]]
        parts += [f"## Verdicts with a note ({len(noted)})", "",
                  _md_table(["id", "db", "verdict", "note", "predicted", "gold"], rows), ""]
    parts += ["## Configuration", "", "```json", json.dumps(config, indent=2, sort_keys=True), "```", ""]
    return "\n".join(parts)


# --- SVG charts ------------------------------------------------------------------------------------
def svg_bars(groups: Mapping[str, Mapping[str, Any]], title: str) -> str:
    """Horizontal bars of EX per group, labelled with EX and question counts."""
    label_w, bar_w, row_h = 170, 360, 24
    height = 30 + row_h * len(groups)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 120}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="0" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, (name, g) in enumerate(groups.items()):
        y = 26 + i * row_h
        width = max(0.0, min(1.0, g["ex"])) * bar_w
        out.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{html.escape(str(name))}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 2}" width="{bar_w}" height="{row_h - 6}" fill="#e8edf3"/>')
        out.append(f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{width:.1f}" height="{row_h - 6}" fill="{BAR_COLOR}"/>')
        out.append(f'<text x="{label_w + bar_w + 6}" y="{y + 15}">{100 * g["ex"]:.1f}% of {g["count"]}</text>')
    out.append("</svg>")
    return "\n".join(out)


def histogram(values: Sequence[float], bins: int = 12) -> list[tuple[float, float, int]]:
    """(low, high, count) bins of equal width over the values' range."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi == lo:
        return [(lo, hi, len(values))]
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, math.floor((v - lo) / width))] += 1
    return [(lo + i * width, lo + (i + 1) * width, c) for i, c in enumerate(counts)]


def svg_histogram(values: Sequence[float], title: str) -> str:
    """A column chart of the latency histogram (seconds per question)."""
    bins = histogram(values)
    chart_w, chart_h, left, bottom = 480, 160, 40, 40
    top = max((c for _, _, c in bins), default=1) or 1
    col_w = chart_w / max(1, len(bins))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + chart_w + 20}" height="{chart_h + bottom + 30}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="0" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, (lo, hi, count) in enumerate(bins):
        h = chart_h * count / top
        x = left + i * col_w
        y = 24 + chart_h - h
        out.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{col_w - 2:.1f}" height="{h:.1f}" '
                   f'fill="{BAR_COLOR}"><title>{lo:.2f}–{hi:.2f} s: {count}</title></rect>')
        if count:
            out.append(f'<text x="{x + col_w / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="11">{count}</text>')
    base = 24 + chart_h
    out.append(f'<line x1="{left}" y1="{base}" x2="{left + chart_w}" y2="{base}" stroke="#333"/>')
    if bins:
        out.append(f'<text x="{left}" y="{base + 16}" font-size="11">{bins[0][0]:.2f} s</text>')
        out.append(f'<text x="{left + chart_w}" y="{base + 16}" font-size="11" text-anchor="end">{bins[-1][1]:.2f} s</text>')
    out.append("</svg>")
    return "\n".join(out)


# --- HTML ------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f7}code,pre{font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap}
svg{font-family:system-ui,sans-serif;font-size:13px;display:block;margin:1em 0}
"""


def render_html(summary: Mapping[str, Any]) -> str:
    """A self-contained page: headline table, SVG bar charts per breakdown, latency histogram, the
    wrong answers, the configuration."""
    esc = html.escape
    config = summary.get("config", {})
    title = f"sqlwright eval: {config.get('dataset', '?')}"
    body = [f"<h1>{esc(title)}</h1>", "<table>"]
    body += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in headline(summary)]
    body.append("</table>")
    for key, label in BREAKDOWNS:
        groups = summary.get(key) or {}
        if groups:
            body.append(svg_bars(groups, f"EX by {label}"))
    latencies = [r["seconds"] for r in summary.get("results", []) if r.get("seconds") is not None]
    if latencies:
        body.append(svg_histogram(latencies, "Latency per question (seconds)"))
    wrong = [r for r in summary.get("results", []) if not r["correct"]]
    if wrong:
        body.append(f"<h2>Wrong answers ({len(wrong)})</h2><table><tr><th>id</th><th>db</th><th>why</th>"
                    "<th>question</th><th>predicted</th><th>gold</th></tr>")
        for r in wrong[:MAX_LISTED]:
            why = _why(r)
            body.append(
                f"<tr><td>{esc(str(r['id']))}</td><td>{esc(str(r['db']))}</td><td>{esc(why)}</td>"
                f"<td>{esc(str(r.get('question') or ''))}</td>"
                f"<td><code>{esc(r.get('pred_sql') or '')}</code></td><td><code>{esc(r['gold_sql'])}</code></td></tr>"
            )
        body.append("</table>")
    noted = [r for r in summary.get("results", []) if r.get("note")]
    if noted:
        body.append(f"<h2>Verdicts with a note ({len(noted)})</h2><table><tr><th>id</th><th>db</th>"
                    "<th>verdict</th><th>note</th><th>predicted</th><th>gold</th></tr>")
        for r in noted[:MAX_LISTED]:
            body.append(
                f"<tr><td>{esc(str(r['id']))}</td><td>{esc(str(r['db']))}</td>"
                f"<td>{'right' if r['correct'] else 'wrong'}</td><td>{esc(r['note'])}</td>"
                f"<td><code>{esc(r.get('pred_sql') or '')}</code></td><td><code>{esc(r['gold_sql'])}</code></td></tr>"
            )
        body.append("</table>")
    body.append(f"<h2>Configuration</h2><pre>{esc(json.dumps(config, indent=2, sort_keys=True))}</pre>")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(summary: Mapping[str, Any], directory: Path) -> dict[str, Path]:
    """Write summary.json, summary.md and report.html into `directory` (created if needed)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"json": directory / "summary.json", "markdown": directory / "summary.md",
                 "html": directory / "report.html"}
        data = {**summary, "notes": note_counts(summary)}
        paths["json"].write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", "utf-8")
        paths["markdown"].write_text(render_markdown(summary), "utf-8")
        paths["html"].write_text(render_html(summary), "utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the report to {directory}: {exc.strerror or exc}") from exc
    return paths
