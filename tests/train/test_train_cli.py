"""`sqlwright train pairs|excot` through the real entry point: a run with the scripted model, and every input
error as one line on stderr with exit code 2, before any model is loaded."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pairs_helpers import QUESTIONS, REPLIES, make_db, replies, write_jsonl_dataset, write_synth_dataset

from sqlwright.cli import main
from sqlwright.llm.mock import ScriptedLLM

app_module = importlib.import_module("sqlwright.cli.app")
train_cli = importlib.import_module("sqlwright.cli.train")


def invoke(capsys, monkeypatch, args: list[str], *, width: int = 60):
    """Run `sqlwright ARGS` in this process as the executable does; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sqlwright", *args])
    monkeypatch.setattr(app_module.err_console, "width", width)
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.fixture()
def no_model(monkeypatch):
    """Any attempt to load a model fails the test: input errors must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(train_cli, "load_model", refuse)


@pytest.fixture()
def shop(tmp_path: Path) -> Path:
    return make_db(tmp_path / "shop.sqlite")


def test_help_does_not_import_torch() -> None:
    code = ("import sys\nfrom sqlwright.cli import main\n"
            "for args in (['--help'], ['train', '--help'], ['train', 'pairs', '--help'], ['train', 'excot', '--help']):\n"
            "    sys.argv = ['sqlwright', *args]\n"
            "    try:\n        main()\n    except SystemExit as e:\n        assert e.code == 0, (args, e.code)\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "train" in result.stdout and "--pairing" in result.stdout and "--heldout" in result.stdout


def test_train_pairs_writes_the_files_and_a_summary(capsys, monkeypatch, tmp_path: Path, shop: Path) -> None:
    data = write_synth_dataset(tmp_path / "pairs.jsonl")
    (tmp_path / "dbs" / "shop").mkdir(parents=True)
    make_db(tmp_path / "dbs" / "shop" / "shop.sqlite")
    loaded = []

    def fake_load(name, base_url, lora=None):
        loaded.append(name)
        return ScriptedLLM(replies())

    monkeypatch.setattr(train_cli, "load_model", fake_load)
    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    code, stdout, err = invoke(capsys, monkeypatch, ["train", "pairs", str(data), "--out", str(out), "-k", "3",
                                                     "--model", "tiny", "--db-dir", str(tmp_path / "dbs"),
                                                     "--pairing", "farthest", "--format", "json"])
    assert code == 0, err
    summary = json.loads(stdout)
    assert loaded == ["tiny"]
    assert summary["skipped"] == {"empty gold": 1} and summary["labelled"] == 3
    assert summary["records"] == {"sft": 4, "dpo": 3, "labels": 9}
    assert {json.loads(line)["pairing"] for line in (out / "dpo.jsonl").read_text().splitlines()} == {"farthest"}
    assert json.loads((out / "summary.json").read_text())["labelled"] == 3
    assert {json.loads(line)["database"] for line in (out / "sft.jsonl").read_text().splitlines()} == {"shop"}

    # the same command again: everything is recorded, the model is loaded but never asked
    monkeypatch.setattr(train_cli, "load_model", lambda name, base_url, lora=None: ScriptedLLM())
    code, stdout, err = invoke(capsys, monkeypatch, ["train", "pairs", str(data), "--out", str(out), "-k", "3",
                                                     "--model", "tiny", "--db", f"shop=sqlite:///{tmp_path / 'dbs' / 'shop' / 'shop.sqlite'}",
                                                     "--no-progress"])
    assert code == 0, err
    assert "3 of 4 questions labelled (skipped: 1 empty gold)" in stdout and "0 model calls" in stdout


def _bad_inputs(tmp_path: Path, shop: Path) -> dict[str, tuple[list[str], str]]:
    no_gold = tmp_path / "no_gold.jsonl"
    no_gold.write_text(json.dumps({"question": "q", "db": str(shop)}) + "\n")
    synth_no_gold = tmp_path / "synth_no_gold.jsonl"
    synth_no_gold.write_text(json.dumps({"id": "a", "database": "shop", "dialect": "sqlite", "question": "q",
                                         "sql": ""}) + "\n")
    synth = write_synth_dataset(tmp_path / "synth.jsonl")
    unverified = write_synth_dataset(tmp_path / "unverified.jsonl", verified=False)
    data = write_jsonl_dataset(tmp_path / "q.jsonl", shop)
    out = ["--out", str(tmp_path / "out")]
    empty = tmp_path / "empty"
    empty.mkdir()
    return {
        "no gold": (["train", "pairs", str(no_gold), *out], "missing or empty field(s) sql"),
        "synth without gold": (["train", "pairs", str(synth_no_gold), *out], "no gold SQL"),
        "unknown database": (["train", "pairs", str(synth), *out], "unknown database 'shop'"),
        "database not in --db-dir": (["train", "pairs", str(synth), *out, "--db-dir", str(empty)],
                                     "unknown database 'shop': not found in"),
        "bad --db": (["train", "pairs", str(synth), *out, "--db", "shop"], "--db takes NAME=URL"),
        "unverified only": (["train", "pairs", str(unverified), *out], "none of its 4 pairs is verified"),
        "missing data": (["train", "pairs", str(tmp_path / "none.jsonl"), *out], "dataset not found"),
        "unknown pairing": (["train", "pairs", str(data), *out, "--pairing", "closest"], "unknown pairing 'closest'"),
        "model and teacher": (["train", "pairs", str(data), *out, "-m", "a", "--teacher", "openai:b"],
                              "not both"),
        "teacher and lora": (["train", "pairs", str(data), *out, "--teacher", "openai:b", "--lora", "a.gguf"],
                             "give it with --model, not --teacher"),
        "missing lora": (["train", "pairs", str(data), *out, "-m", "tiny", "--lora", str(tmp_path / "none.gguf")],
                         "LoRA adapter not found"),
        "csv": (["train", "pairs", str(data), *out, "--format", "csv"], "table or json"),
        "no question selected": (["train", "pairs", str(data), *out, "--limit", "0"], "no questions selected"),
        "excot pairs malformed": (["train", "excot", str(data), "-m", "x", "--heldout", str(data), *out, "--pairs",
                                   str(no_gold)], "not a DPO record"),
        "excot held-out overlap": (["train", "excot", str(data), "-m", "x", "--heldout", str(data), *out],
                                   "held-out question(s) are also in the training data"),
    }


@pytest.mark.parametrize("case", ["no gold", "synth without gold", "unknown database", "database not in --db-dir",
                                  "bad --db", "unverified only", "missing data", "unknown pairing",
                                  "model and teacher", "teacher and lora", "missing lora", "csv", "no question selected", "excot pairs malformed",
                                  "excot held-out overlap"])
def test_bad_input_is_one_line_and_exit_2(capsys, monkeypatch, tmp_path: Path, shop: Path, no_model,
                                          case: str) -> None:
    args, message = _bad_inputs(tmp_path, shop)[case]
    code, out, err = invoke(capsys, monkeypatch, args)
    assert code == 2, (out, err)
    assert message in err, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out" / "sft.jsonl").exists()


@pytest.mark.parametrize("missing", ["torch", "trl"])
def test_a_missing_train_extra_is_one_line_and_exit_2(capsys, monkeypatch, tmp_path: Path, shop: Path, no_model,
                                                       missing: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed: importing it raises ImportError
    data = write_jsonl_dataset(tmp_path / "q.jsonl", shop)
    heldout = write_jsonl_dataset(tmp_path / "h.jsonl", shop, [("h", "How many orders?", "SELECT count(*) FROM orders",
                                                                None)])
    code, out, err = invoke(capsys, monkeypatch, ["train", "excot", str(data), "-m", "x", "--heldout", str(heldout),
                                                  "--out", str(tmp_path / "run")])
    assert code == 2
    assert err == f"error: install the train extra: pip install 'sqlwright[train]' (missing: {missing})\n"
    assert not (tmp_path / "run").exists()


def test_pairs_needs_no_train_extra(capsys, monkeypatch, tmp_path: Path, shop: Path) -> None:
    for name in ("torch", "transformers", "trl", "peft"):
        monkeypatch.setitem(sys.modules, name, None)
    data = write_jsonl_dataset(tmp_path / "q.jsonl", shop, QUESTIONS[:1])
    monkeypatch.setattr(train_cli, "load_model", lambda name, base_url, lora=None: ScriptedLLM(REPLIES["count"]))
    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = invoke(capsys, monkeypatch, ["train", "pairs", str(data), "--out", str(tmp_path / "o"), "-k", "3",
                                                  "--no-progress"])
    assert code == 0, err
    assert "1 of 1 questions labelled" in out


def test_train_excot_runs_the_loop_and_reports_the_best_round(capsys, monkeypatch, tmp_path: Path, shop: Path,
                                                              no_model) -> None:
    from test_excot import FakeSteps

    import sqlwright.train.excot as excot_module

    data = write_jsonl_dataset(tmp_path / "q.jsonl", shop)
    heldout = write_jsonl_dataset(tmp_path / "h.jsonl", shop, [("h", "How many orders?", "SELECT count(*) FROM orders",
                                                                None)])
    given = {}

    def steps(train_set, heldout_set, **kwargs):
        given.update(kwargs, train=len(train_set.examples), heldout=len(heldout_set.examples))
        return FakeSteps({0: 0.2, 1: 0.4, 2: 0.3}).steps()

    monkeypatch.setattr(excot_module, "default_steps", steps)
    args = ["train", "excot", str(data), "-m", "tiny", "--heldout", str(heldout), "--out", str(tmp_path / "run"),
            "--rounds", "4", "-k", "2", "--max-steps", "3", "--format", "json"]
    code, out, err = invoke(capsys, monkeypatch, args)
    assert code == 0, err
    report = json.loads(out)
    assert report["best_round"] == 1 and "round 2 did not improve" in report["stopped"]
    assert (given["train"], given["heldout"], given["model"]) == (4, 1, "tiny")
    assert given["pairs_options"].k == 2 and given["dpo"].max_steps == 3
    # the same folder with other settings is refused; more rounds are not other settings
    code, out, err = invoke(capsys, monkeypatch, [*args[:-2], "--rounds", "6", "--format", "json"])
    assert code == 0, err
    code, out, err = invoke(capsys, monkeypatch, [*args[:-2], "-k", "8"])
    assert code == 2 and "differs in: pairs_options" in err and err.count("\n") == 1
