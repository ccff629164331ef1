"""The pipeline flags shared by `ask` and `eval` map onto AskOptions fields."""

from __future__ import annotations

from sqlwright.cli.ask import pipeline_overrides
from sqlwright.pipeline import AskOptions


def test_defaults_are_the_full_pipeline():
    assert AskOptions(**pipeline_overrides(None, None, False, None, False, False)) == AskOptions()


def test_greedy_then_single_stages_switched_back_on():
    greedy = pipeline_overrides(None, None, False, None, False, True)
    assert (greedy["candidates"], greedy["repair_rounds"], greedy["values"], greedy["linking"]) == (1, 0, False, False)
    with_samples = pipeline_overrides(4, None, False, None, False, True)
    assert with_samples["candidates"] == 4 and with_samples["repair_rounds"] == 0


def test_each_stage_can_be_switched_off_alone():
    full = AskOptions().model_dump()
    for flags, field, value in [
        ((1, None, False, None, False, False, False), "candidates", 1),
        ((None, 0, False, None, False, False, False), "repair_rounds", 0),
        ((None, None, True, None, False, False, False), "linking", False),
        ((None, None, False, None, False, False, True), "values", False),
        ((None, None, False, 0.5, False, False, False), "abstain_below", 0.5),
        ((None, None, False, None, True, False, False), "cot", True),
        ((None, None, False, None, False, False, False, True), "repair_when", "any-failure"),
        ((None, None, False, None, False, False, False, False, True), "early_stop", False),
    ]:
        options = pipeline_overrides(*flags)
        assert options[field] == value
        assert {k: v for k, v in options.items() if k != field} == {k: v for k, v in full.items() if k != field}
