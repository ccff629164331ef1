"""The README documents every setting (a setting nobody can find does not exist)."""

from __future__ import annotations

from pathlib import Path

from sqlwright.config import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_named_in_the_readme():
    text = README.read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`{name.upper()}`" not in text]
    assert missing == []
