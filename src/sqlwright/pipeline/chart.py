"""A chart for a result, chosen by sqlwright's code from the result's column types and shape.

No model writes any part of it: the spec is a small typed record (kind, x and y fields with their types, the
data inline, a truncation flag and a title), with no code and no expressions, and `render_svg` draws it with
every text escaped. The rules, in order:

- fewer than two rows or fewer than two columns: no chart (one number or one row needs none);
- a temporal column (dates, times, ISO date text, whole years in a column named like a year) and numbers: a
  line over time, sorted by x;
- a category column (text, booleans, ids) and numbers: bars, at most MAX_BARS (beyond that the top MAX_BARS
  by the first number, flagged truncated);
- two or more number columns: points (the first is x);
- anything else (only text, one number column): no chart.
A line or bar chart needs one row per x (a result with a second category per x, "long" data, gets none: the
spec has no series field); at most MAX_SERIES number columns are drawn; more than `max_points` points are
thinned evenly and flagged truncated.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

from sqlwright.store.jsonsafe import json_safe

ChartKind = Literal["bar", "line", "point"]
FieldType = Literal["nominal", "temporal", "quantitative"]

MAX_BARS = 50  # bars drawn at most; more categories are cut to the top ones
MAX_SERIES = 5  # number columns drawn at most
DEFAULT_MAX_POINTS = 500

# ISO 8601 dates and date-times as databases print them: 2024-05-01, 2024-05, 2024-05-01 12:30[:00[.123]][Z|+02:00]
_ISO_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?)?$")
_ISO_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_YEAR_TEXT = re.compile(r"^\d{4}$")
_YEAR_NAME = re.compile(r"(^|[^a-z])(year|yr)s?([^a-z]|$)", re.I)
_TIME_NAME = re.compile(r"(^|[^a-z])(date|time|day|month|year|week|quarter|period|timestamp)s?([^a-z]|$)|_at$|_on$",
                        re.I)
_ID_NAME = re.compile(r"(^|_)id$|^id_|[a-z]Id$")


@dataclass(frozen=True)
class ChartField:
    field: str  # the result column's name
    type: FieldType

    def to_dict(self) -> dict:
        return {"field": self.field, "type": self.type}


@dataclass(frozen=True)
class ChartSpec:
    """What to draw: `data` rows are [x, y1, y2, ...] in the order of `y`, JSON-safe values."""

    kind: ChartKind
    x: ChartField
    y: tuple[ChartField, ...]
    data: tuple[tuple, ...]
    truncated: bool = False  # fewer points than the result has (the bar cap, max_points, or a capped result)
    title: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "x": self.x.to_dict(), "y": [f.to_dict() for f in self.y],
                "data": [list(row) for row in self.data], "truncated": self.truncated, "title": self.title}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)


def column_type(name: str, values: Sequence[object]) -> FieldType | None:
    """How a result column can be drawn, from its values' Python types and its name (None: all NULL)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, bool) for v in present):
        return "nominal"
    if all(isinstance(v, dt.date | dt.time) for v in present):  # datetime is a date
        return "temporal"
    if all(_is_number(v) for v in present):
        if _YEAR_NAME.search(name) and all(isinstance(v, int) and 1000 <= v <= 2999 for v in present):
            return "temporal"
        if _ID_NAME.search(name) and all(isinstance(v, int) for v in present):
            return "nominal"  # keys are labels, not measures
        return "quantitative"
    if all(isinstance(v, str) for v in present):
        texts = [v.strip() for v in present]
        if all(_ISO_DATE.match(t) for t in texts) or all(_ISO_TIME.match(t) for t in texts):
            return "temporal"
        if _TIME_NAME.search(name) and all(_YEAR_TEXT.match(t) for t in texts):
            return "temporal"
    return "nominal"


def _y_value(value: object) -> int | float | None:
    """A number for the y axis (None: NULL, or not finite)."""
    if not _is_number(value):
        return None
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        return None
    return value if isinstance(value, int) else number  # type: ignore[return-value]


def _x_value(value: object) -> str | int | float | bool | None:
    """A JSON scalar for the x axis (an array or other structured value becomes its text)."""
    safe = json_safe(value)
    return safe if safe is None or isinstance(safe, str | int | float | bool) else str(value)


def _thin(rows: list[tuple], limit: int) -> list[tuple]:
    """`limit` rows spread evenly over `rows`, the first and the last kept."""
    if len(rows) <= limit:
        return rows
    if limit <= 1:
        return rows[:limit]
    step = (len(rows) - 1) / (limit - 1)
    return [rows[round(i * step)] for i in range(limit)]


def chart_spec(columns: Sequence[str], rows: Sequence[Sequence[object]], *, max_points: int = DEFAULT_MAX_POINTS,
               truncated: bool = False) -> ChartSpec | None:
    """The chart for a result, or None when none fits (see the module docstring). `truncated`: the result
    itself was cut at its row cap, so the chart shows part of the data too."""
    columns = [str(c) for c in columns]
    rows = [tuple(r) for r in rows]
    if len(rows) < 2 or len(columns) < 2 or any(len(r) != len(columns) for r in rows):
        return None
    types = [column_type(name, [r[i] for r in rows]) for i, name in enumerate(columns)]
    numbers = [i for i, t in enumerate(types) if t == "quantitative"]
    temporal = [i for i, t in enumerate(types) if t == "temporal"]
    nominal = [i for i, t in enumerate(types) if t == "nominal"]
    kind: ChartKind
    if temporal and numbers:
        kind, x = "line", temporal[0]
    elif nominal and numbers:
        kind, x = "bar", nominal[0]
    elif len(numbers) >= 2:
        kind, x = "point", numbers[0]
    else:
        return None
    ys = [i for i in numbers if i != x][:MAX_SERIES]
    if kind != "point" and len({_x_value(r[x]) for r in rows}) < len(rows):
        return None  # several rows per x: a second category splits them, which the spec cannot show
    data = [(_x_value(r[x]), *(_y_value(r[i]) for i in ys)) for r in rows]
    cut = truncated
    if kind == "line":
        data = [d for d in data if d[0] is not None]
        data.sort(key=lambda d: (0, d[0], "") if isinstance(d[0], int | float) else (1, 0, str(d[0])))
    elif kind == "point":
        data = [d for d in data if d[0] is not None]
    if kind == "bar" and len(data) > min(MAX_BARS, max_points):
        data = sorted(data, key=lambda d: -math.inf if d[1] is None else d[1], reverse=True)
        data = data[: min(MAX_BARS, max_points)]
        cut = True
    elif len(data) > max_points:
        data = _thin(data, max_points)
        cut = True
    if len(data) < 2:
        return None
    x_field = ChartField(columns[x], types[x])  # type: ignore[arg-type]
    y_fields = tuple(ChartField(columns[i], "quantitative") for i in ys)
    names = ", ".join(f.field for f in y_fields)
    title = f"{names} vs {x_field.field}" if kind == "point" else f"{names} by {x_field.field}"
    return ChartSpec(kind, x_field, y_fields, tuple(data), cut, title)


# --- drawing ------------------------------------------------------------------------------------
_WIDTH, _HEIGHT = 640, 360
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 40, 84
_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2")
_LABEL_CHARS = 18


def _text(value: object) -> str:
    """Cell text for a label, escaped for XML (quotes too: labels go into attributes as well)."""
    return escape("NULL" if value is None else str(value), quote=True)


def _short(value: object) -> str:
    text = "NULL" if value is None else str(value)
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _number(value: float) -> str:
    """A tick label: compact, without float noise."""
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _position(value: object) -> float | None:
    """A numeric position for an x value of a line or point chart: numbers as they are, ISO text and dates
    as seconds since the epoch; None when it has none."""
    if _is_number(value):
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        if re.fullmatch(r"\d{4}-\d{2}", text):
            text += "-01"
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.timestamp()
    return None


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values, the first at or below `low`, the last at or above `high`."""
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(low / step), math.ceil(high / step)
    return [round(i * step, 12) for i in range(first, last + 1)]


def render_svg(spec: ChartSpec | Mapping[str, object]) -> str:
    """The chart as a standalone SVG document (for notebooks and the terminal's HTML exports). Every text
    from the data is escaped; the SVG holds no script, link or style from outside."""
    d = spec.to_dict() if isinstance(spec, ChartSpec) else dict(spec)
    kind = str(d.get("kind"))
    x_field = dict(d.get("x") or {})  # type: ignore[call-overload]
    y_fields = [dict(f) for f in d.get("y") or []]  # type: ignore[union-attr]
    data = [list(r) for r in d.get("data") or []]  # type: ignore[union-attr]
    title = str(d.get("title") or "")
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {_HEIGHT}" width="{_WIDTH}" '
           f'height="{_HEIGHT}" role="img" aria-label="{_text(title)}" font-family="sans-serif" font-size="11">',
           f'<text x="{_WIDTH / 2:.1f}" y="20" text-anchor="middle" font-size="14">{_text(title)}</text>']
    ys = [v for row in data for v in row[1:] if isinstance(v, int | float)]
    if not data or not y_fields or not ys:
        out.append("</svg>")
        return "\n".join(out)
    low, high = min(ys), max(ys)
    if kind == "bar":
        low, high = min(0.0, low), max(0.0, high)
    if high == low:
        low, high = low - 1, high + 1
    ticks = _ticks(low, high)
    low, high = min(low, ticks[0]), max(high, ticks[-1])

    def y_at(value: float) -> float:
        return _TOP + plot_h * (1 - (value - low) / (high - low))

    for tick in ticks:  # the y axis: grid lines and labels
        out.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y_at(tick):.1f}" y2="{y_at(tick):.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y_at(tick) + 4:.1f}" text-anchor="end">{_text(_number(tick))}</text>')
    out.append(f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{_TOP + plot_h}" stroke="#888"/>')
    out.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{_TOP + plot_h}" y2="{_TOP + plot_h}" stroke="#888"/>')
    series = len(y_fields)
    if kind == "bar":
        band = plot_w / len(data)
        width = band * 0.8 / series
        for i, row in enumerate(data):
            left = _LEFT + i * band + band * 0.1
            for s in range(series):
                value = row[1 + s] if 1 + s < len(row) else None
                if not isinstance(value, int | float):
                    continue
                top, bottom = sorted((y_at(value), y_at(0.0)))
                out.append(f'<rect x="{left + s * width:.1f}" y="{top:.1f}" width="{max(width - 1, 1):.1f}" '
                           f'height="{max(bottom - top, 0.5):.1f}" fill="{_COLORS[s % len(_COLORS)]}">'
                           f'<title>{_text(row[0])}: {_text(value)}</title></rect>')
            cx = _LEFT + (i + 0.5) * band
            out.append(f'<text x="{cx:.1f}" y="{_TOP + plot_h + 12}" text-anchor="end" '
                       f'transform="rotate(-40 {cx:.1f} {_TOP + plot_h + 12})">{_text(_short(row[0]))}</text>')
    else:
        positions = [_position(row[0]) for row in data]
        if any(p is None for p in positions):
            positions = [float(i) for i in range(len(data))]  # no common scale: evenly spaced, in order
        left_x, right_x = min(positions), max(positions)  # type: ignore[type-var]
        span = (right_x - left_x) or 1.0  # type: ignore[operator]

        def x_at(p: float) -> float:
            return _LEFT + plot_w * (p - left_x) / span  # type: ignore[operator]

        for s in range(series):
            color = _COLORS[s % len(_COLORS)]
            points = [(x_at(p), y_at(row[1 + s]), row) for p, row in zip(positions, data, strict=True)  # type: ignore[arg-type]
                      if 1 + s < len(row) and isinstance(row[1 + s], int | float)]
            if kind == "line" and len(points) > 1:
                path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
                out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
            radius = 2.5 if kind == "line" else 3.5
            for px, py, row in points:
                out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{radius}" fill="{color}">'
                           f'<title>{_text(row[0])}: {_text(row[1 + s])}</title></circle>')
        labelled = sorted({round(i * (len(data) - 1) / 5) for i in range(6)}) if len(data) > 6 else range(len(data))
        for i in labelled:
            px = x_at(positions[i])  # type: ignore[arg-type]
            # The labels at the ends stay inside the picture.
            anchor = "start" if px < _LEFT + 40 else "end" if px > _LEFT + plot_w - 40 else "middle"
            out.append(f'<text x="{px:.1f}" y="{_TOP + plot_h + 14}" text-anchor="{anchor}">'
                       f'{_text(_short(data[i][0]))}</text>')
    out.append(f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_HEIGHT - 6}" text-anchor="middle">'
               f'{_text(x_field.get("field", ""))}</text>')
    if series > 1:  # a legend
        for s, f in enumerate(y_fields):
            lx = _LEFT + s * 120
            out.append(f'<rect x="{lx}" y="26" width="10" height="10" fill="{_COLORS[s % len(_COLORS)]}"/>')
            out.append(f'<text x="{lx + 14}" y="35">{_text(_short(f.get("field", "")))}</text>')
    else:
        out.append(f'<text x="14" y="{_TOP + plot_h / 2:.1f}" text-anchor="middle" '
                   f'transform="rotate(-90 14 {_TOP + plot_h / 2:.1f})">{_text(y_fields[0].get("field", ""))}</text>')
    if d.get("truncated"):
        out.append(f'<text x="{_WIDTH - _RIGHT}" y="{_HEIGHT - 6}" text-anchor="end" fill="#a00">'
                   'part of the data</text>')
    out.append("</svg>")
    return "\n".join(out)
