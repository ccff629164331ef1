"""Progress events of one `ask`, for live views (the server's event stream, the web page's stages).

`Engine.ask(..., on_event=callback)` calls ``callback(kind, data)`` as the stages finish, in this order:

    "schema"     {tables: [names shown to the model], tokens, total_tables, pruned}
    "examples"   {examples: [Demonstration.to_dict()], notes: [NoteHint.to_dict()]}
    "candidate"  {origin, sql, ok, error, row_count, seconds}      one per candidate drawn and executed
    "repair"     {origin, sql, ok, error, row_count, seconds}      one per repair candidate
    "vote"       {confidence, groups: [votes per result group, the winner's first], voters, undrawn}
    "summary"    {summary: text or None}                           only when asked to summarize
    "answer"     Answer.to_dict()

`data` is JSON-safe (dates as ISO text, decimals as numbers, bytes as hex). A callback that raises does not
break the answer: the error is logged and the pipeline goes on (a callback that means to stop the work raises
`Cancelled`, which does stop it, or better returns True from the `cancel` callable).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sqlwright.errors import Cancelled
from sqlwright.store.jsonsafe import json_safe

if TYPE_CHECKING:
    from sqlwright.pipeline.types import Candidate

log = logging.getLogger(__name__)

EventCallback = Callable[[str, dict], None]
EVENT_KINDS = ("schema", "examples", "candidate", "repair", "vote", "summary", "answer")


def candidate_event(candidate: Candidate) -> dict:
    """The data of a "candidate" or "repair" event."""
    return {
        "origin": candidate.origin,
        "sql": candidate.sql,
        "ok": candidate.ok,
        "error": candidate.error,
        "row_count": None if candidate.rows is None else len(candidate.rows),
        "seconds": round(candidate.seconds, 6),
    }


class EventSink:
    """Sends events to an `on_event` callback (or nowhere), never letting the callback's failure through."""

    def __init__(self, callback: EventCallback | None) -> None:
        self.callback = callback

    def emit(self, kind: str, data: Mapping[str, object]) -> None:
        """Call the callback with `kind` and a JSON-safe copy of `data`; log what it raises (but Cancelled)."""
        if self.callback is None:
            return
        payload = json_safe(data)
        try:
            self.callback(kind, payload)  # type: ignore[arg-type]
        except Cancelled:
            raise
        except Exception:  # a consumer's bug must not cost the answer
            log.warning("the on_event callback failed on a %r event; going on", kind, exc_info=True)

    def candidate(self, candidate: Candidate) -> None:
        self.emit("candidate", candidate_event(candidate))

    def repair(self, candidate: Candidate) -> None:
        self.emit("repair", candidate_event(candidate))
