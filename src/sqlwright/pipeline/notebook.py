"""An Answer as HTML for notebooks (`Answer._repr_html_`): the question, the answer in words, the SQL, the
first rows, the chart. Every text from the question, the model or the database is HTML-escaped."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from sqlwright.pipeline.chart import render_svg

if TYPE_CHECKING:
    from sqlwright.pipeline.types import Answer

HTML_ROWS = 50  # rows shown in a notebook; to_pandas() has them all


def _cell(value: object) -> str:
    if value is None:
        return '<span style="color:#999">NULL</span>'
    if isinstance(value, bytes):
        return escape(value.hex())
    return escape(str(value))


def answer_html(answer: Answer) -> str:
    """The HTML of `answer`, at most HTML_ROWS rows."""
    parts = ['<div class="sqlwright-answer">',
             f"<p><b>Question:</b> {escape(answer.question)}</p>"]
    if answer.abstained:
        parts.append(f"<p><b>No answer:</b> {escape(answer.reason or 'the model could not answer')}</p>")
    if answer.summary:
        parts.append(f"<p><b>Answer:</b> {escape(answer.summary)}</p>")
    if answer.sql:
        parts.append(f"<pre><code>{escape(answer.sql)}</code></pre>")
    if not answer.abstained:
        shown = answer.rows[:HTML_ROWS]
        header = "".join(f"<th>{escape(str(c))}</th>" for c in answer.columns)
        body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in shown)
        parts.append(f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>")
        notes = []
        if len(answer.rows) > len(shown):
            notes.append(f"showing {len(shown)} of {len(answer.rows)} rows (answer.to_pandas() has them all)")
        if answer.truncated:
            notes.append(f"the result was cut at {len(answer.rows)} rows (raise max_rows for more)")
        if not answer.rows:
            notes.append("no rows")
        if notes:
            parts.append(f"<p><i>{escape('; '.join(notes))}</i></p>")
    if answer.chart:
        parts.append(f"<div>{render_svg(answer.chart)}</div>")
    total = answer.timings.get("total")
    footer = f"confidence {answer.confidence:.2f}" + (f" · {total:.1f} s" if total is not None else "")
    parts.append(f'<p style="color:#666;font-size:smaller">{escape(footer)}</p>')
    parts.append("</div>")
    return "\n".join(parts)
