"""Decide whether to answer or abstain, and say why.

Abstain when (checked in this order, the first reason given):
1. the model states the question cannot be answered from this database: the greedy reply says so, or
   a majority of the voting replies do;
2. no candidate executed successfully;
3. the vote's confidence is below `abstain_below` (0.0, the default, never abstains on confidence).
"""

from __future__ import annotations

from sqlwright.pipeline.generate import GREEDY_ORIGINS
from sqlwright.pipeline.select import Selection, voters


def abstention_reason(selection: Selection, *, abstain_below: float = 0.0) -> str | None:
    """Why to abstain given the vote, or None to answer with the winner."""
    candidates = selection.candidates
    voting = [candidates[i] for i in voters(candidates)]
    unanswerable = [c for c in voting if c.unanswerable is not None]
    greedy = next((c for c in candidates if c.origin in GREEDY_ORIGINS), None)
    stated = None
    if greedy is not None and greedy.unanswerable is not None:
        stated = greedy
    elif voting and len(unanswerable) * 2 > len(voting):
        stated = unanswerable[0]
    if stated is not None:
        why = stated.unanswerable or "no reason given"
        return f"the model says the question cannot be answered from this database: {why}"
    if selection.winner is None:
        errors = [c.error for c in voting if c.error and c.unanswerable is None]
        detail = f": {errors[0]}" if errors else ""
        return f"no candidate query ran successfully{detail}"
    if selection.confidence < abstain_below:
        return (f"low confidence: {selection.confidence:.2f} of the candidates agree, below "
                f"abstain_below={abstain_below:g}")
    return None
