"""bench/serve_load.py, small: concurrent clients over loopback, every answer recorded once in the history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "serve_load.py"


def test_load_bench_runs_and_the_history_matches_the_answers(tmp_path) -> None:
    env = {**os.environ, "SQLWRIGHT_CACHE_DIR": str(tmp_path / "cache")}
    figures = tmp_path / "load.json"
    done = subprocess.run([sys.executable, str(BENCH), "--model", "scripted", "--delay", "0.02", "--clients", "6",
                           "--queue", "2", "--requests", "40", "--max-seconds", "60", "--max-backoff", "0.05",
                           "--json", str(figures)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(figures.read_text())
    assert data["sent"] == 40 and data["history_matches_answers"] is True
    assert data["answered"] == data["history_rows"] == data["statuses"].get("200", 0) > 0
    assert data["statuses"].get("429", 0) > 0  # 6 clients, 3 places: some were turned away
    assert set(data["statuses"]) <= {"200", "429"}
    assert "p50" in done.stdout and "history rows" in done.stdout
