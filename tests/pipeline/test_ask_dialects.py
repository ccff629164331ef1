"""Engine.ask on the shared test database in every dialect (PostgreSQL and MariaDB skip when down)."""

from __future__ import annotations

from pathlib import Path

from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import AskOptions, Engine
from sqlwright.pipeline.prompt import dialect_display_name


def test_ask_votes_repairs_and_refuses_in_each_dialect(opened, tmp_path: Path) -> None:
    llm = ScriptedLLM([
        "```sql\nSELECT count(*) FROM singer\n```",
        "```sql\nSELECT COUNT(*) FROM singer;\n```",
        "```sql\nDELETE FROM singer\n```",
        "```sql\nSELECT count(*) FROM singers\n```",
        # repairs, in pool order: the refused DELETE, then the failing query
        "```sql\nSELECT count(*) FROM singer\n```",
        "```sql\nSELECT count(singer_id) FROM singer\n```",
    ])
    engine = Engine(llm, AskOptions(candidates=4, repair_rounds=1, repair_when="any-failure", values=True,
                                     early_stop=False), cache_dir=tmp_path)
    answer = engine.ask(opened, "How many singers are there?")
    expected = opened.execute("SELECT count(*) FROM singer").rows
    assert [tuple(int(v) for v in r) for r in answer.rows] == [tuple(int(v) for v in r) for r in expected]
    assert not answer.abstained
    engine_name = dialect_display_name(opened.dialect)
    assert engine_name in llm.requests[0]["messages"][0]["content"]
    assert "# Table: singer" in llm.requests[0]["messages"][1]["content"]
    by_origin = {c.origin: c for c in answer.candidates}
    assert by_origin["sample-2"].error.startswith("Refused")
    assert by_origin["sample-3"].rows is None and by_origin["sample-3"].error
    # the vote was 2 of 4 with 2 failures: repairs could change it, so both ran (distinct SQL)
    assert by_origin["repair-of-2"].ok and by_origin["repair-of-3"].ok
    assert "read-only guard" in llm.requests[2]["messages"][3]["content"]
    assert answer.confidence == 1.0
    assert llm.remaining == 0
