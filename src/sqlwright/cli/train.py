"""`sqlwright train …`: the Typer group of the training commands.

This module holds the group and the data commands (`pairs`, `excot`); the fitting commands (`sft`, `dpo`,
`grpo`: cli/train_fit.py) and `export` (cli/train_export.py) add themselves to `train_app` from their own
modules. Nothing here imports torch: a training step does, when it runs.
"""

from __future__ import annotations

from pathlib import Path

import typer

from sqlwright.cli.app import OutputFormat, app, console, err_console, handle_errors, print_json
from sqlwright.cli.ask import BASE_URL
from sqlwright.errors import ConfigError

train_app = typer.Typer(
    help="Train the embedded model on execution-labelled data: pairs, SFT, DPO, ExCoT, GGUF adapters.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")

DATA_HELP = ("Questions with gold SQL: a synthesis JSONL (`synth export`), or an evaluation dataset (Spider or "
             "SQL-Eval folder, BIRD JSON with --db-dir, your own JSONL/CSV).")
KIND = typer.Option("auto", "--kind", help="auto | synth | spider | bird | sqleval | jsonl (auto: a synthesis "
                    "JSONL, a Spider folder, a SQL-Eval folder, else your own JSONL/CSV).")
DB_DIR = typer.Option(None, "--db-dir", help="Folder of the databases: <name>/<name>.sqlite for a synthesis "
                      "file (what `synth databases` builds); BIRD's databases folder.")
DB_MAP = typer.Option(None, "--db", help="NAME=URL: where a synthesis file's database NAME is (repeatable).")
DIALECT = typer.Option(None, "--dialect", help="postgres | sqlite | mysql (SQL-Eval).")
INCLUDE_UNVERIFIED = typer.Option(False, "--include-unverified",
                                  help="Synthesis files: use the pairs verification did not confirm too.")
FORMAT = typer.Option(OutputFormat.table, "--format", "-f", help="table or json.")
NO_PROGRESS = typer.Option(False, "--no-progress", help="No progress bar.")


def load_model(model: str | None, base_url: str | None, lora: str | None = None):
    """The LLM for `model` (default: the configured model), with the LoRA adapter `lora` (default: the
    `lora` setting, SQLWRIGHT_LORA)."""
    from sqlwright.config import load_settings
    from sqlwright.llm import load_llm

    return load_llm(model, load_settings(base_url=base_url, lora=lora))


def database_map(values: list[str] | None) -> dict[str, str]:
    """--db NAME=URL options as a mapping."""
    out = {}
    for value in values or []:
        name, sep, url = value.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ConfigError(f"--db takes NAME=URL, not {value!r}")
        out[name.strip()] = url.strip()
    return out


def open_data(data: Path, kind: str, *, dialect: str | None, db_dir: Path | None, db: list[str] | None,
              include_unverified: bool):
    """The questions at `data` as an eval Dataset (train/sources.py)."""
    from sqlwright.train.sources import open_source

    return open_source(Path(data), kind=kind, dialect=dialect, db_root=db_dir, databases=database_map(db),
                       include_unverified=include_unverified)


def _check_format(fmt: OutputFormat, command: str) -> None:
    if fmt is OutputFormat.csv:
        raise ConfigError(f"train {command} prints a summary as a table or json (--format csv is for rows)")


def _pairs_bar(enabled: bool, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[bold]train pairs[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[last]}"), console=err_console,
                   disable=not enabled, transient=False)
    tasks: dict[str, int] = {}

    def show(role: str, outcome: str, done: int, total_: int) -> None:
        if role not in tasks:
            tasks[role] = bar.add_task(f"{role} model", total=total_, last="")
        bar.update(tasks[role], completed=done, last=outcome)

    return bar, show


# --- train pairs ----------------------------------------------------------------------------------------------
@train_app.command("pairs")
@handle_errors
def pairs(
    data: Path = typer.Argument(..., help=DATA_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for sft.jsonl, dpo.jsonl, sense.jsonl, labels.jsonl, "
                             "summary.json and the work file (resumed when it exists)."),
    model: str = typer.Option(None, "--model", "-m", help="The model that samples (on-policy: the embedded model "
                              "being trained; default the configured model)."),
    teacher: str = typer.Option(None, "--teacher", help="A teacher that samples instead (off-policy): "
                                "openai:NAME with --base-url."),
    lora: str = typer.Option(None, "--lora", help="The sampling model's current LoRA adapter (a GGUF from `train "
                             "export`): on-policy pairs of the adapted model; default SQLWRIGHT_LORA."),
    weak_model: str = typer.Option(None, "--weak-model", help="SENSE: a weak model whose wrong answers are paired "
                                   "with the strong model's right ones (sense.jsonl)."),
    k: int = typer.Option(4, "-k", "--k", min=1, max=64, help="Candidates per question and model."),
    cot: bool = typer.Option(False, "--cot", help="Chain of thought, then the SQL (ask --cot's prompt)."),
    pairing: str = typer.Option("nearest", "--pairing", help="random | nearest | farthest: which correct and "
                                "incorrect candidates make a DPO pair, by edit distance between their SQL (ExCoT)."),
    pairs_per_question: int = typer.Option(1, "--pairs-per-question", min=1, help="DPO pairs per question, at most."),
    temperature: float = typer.Option(0.8, "--temperature", min=0.0, max=2.0, help="Sampling temperature."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (same seed, same candidates)."),
    max_tokens: int = typer.Option(None, "--max-tokens", min=1, help="Tokens per reply (default as ask: 512, "
                                   "1280 with --cot)."),
    kind: str = KIND,
    db_dir: Path = DB_DIR,
    db: list[str] = DB_MAP,
    dialect: str = DIALECT,
    include_unverified: bool = INCLUDE_UNVERIFIED,
    limit: int = typer.Option(None, "--limit", min=0, help="The first N questions."),
    sample: int = typer.Option(None, "--sample", min=0, help="N questions spread over databases (--seed)."),
    db_id: list[str] = typer.Option(None, "--db-id", help="Only these databases (repeatable)."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.001, help="Seconds allowed per SQL statement."),
    base_url: str = BASE_URL,
    fmt: OutputFormat = FORMAT,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Sample k candidates per question, execute them guarded, label them against the gold with the evaluator's
    rule, and write SFT records (gold and correct answers), DPO pairs (correct vs incorrect) and SENSE pairs.
    Gold queries with an empty result are no label: skipped and counted. Started again, it resumes."""
    from sqlwright.eval.sampling import select_examples
    from sqlwright.train.pairs import PairsOptions, build_pairs

    _check_format(fmt, "pairs")
    if model is not None and teacher is not None:
        raise ConfigError("give --model (on-policy) or --teacher (off-policy), not both")
    if teacher is not None and lora is not None:
        raise ConfigError("--lora is the sampling model's adapter: give it with --model, not --teacher")
    options = PairsOptions(k=k, temperature=temperature, cot=cot, pairing=pairing.strip().lower(),
                           pairs_per_question=pairs_per_question, seed=seed, timeout=timeout, max_tokens=max_tokens)
    with open_data(data, kind, dialect=dialect, db_dir=db_dir, db=db,
                   include_unverified=include_unverified) as dataset:
        examples = select_examples(dataset.examples, db_ids=db_id or (), sample=sample, seed=seed, limit=limit)
        if not examples:
            raise ConfigError("no questions selected")
        for db_name in dict.fromkeys(e.db for e in examples):  # an unknown database stops the run before any model
            dataset.database_url(db_name)
        from sqlwright.config import load_settings
        from sqlwright.train.pairs import model_label

        settings = load_settings(base_url=base_url, lora=lora)
        name = teacher or model or settings.model
        label = model_label(name, settings.lora, settings.cache_dir)  # the model and its adapter bind the work file
        llm = load_model(name, base_url, lora)
        weak = load_model(weak_model, base_url) if weak_model is not None else None
        bar, show = _pairs_bar(not no_progress and fmt is OutputFormat.table, len(examples))
        with bar:
            summary = build_pairs(dataset, llm, Path(out), model=label, weak_llm=weak,
                                  weak_model=weak_model, options=options, examples=examples, progress=show)
    if fmt is OutputFormat.json:
        print_json(summary.to_dict())
        return
    skipped = ", ".join(f"{n} {why}" for why, n in summary.skipped.items()) or "none"
    records = ", ".join(f"{n} {what}" for what, n in summary.records.items())
    console.print(
        f"{summary.labelled} of {summary.questions} questions labelled (skipped: {skipped}); "
        f"{summary.correct} of {summary.candidates} candidates correct, {summary.with_pair} questions with a pair; "
        f"{summary.model_calls} model calls; records: {records}; in {out}",
        highlight=False, soft_wrap=True)


# --- train excot ----------------------------------------------------------------------------------------------
@train_app.command("excot")
@handle_errors
def excot(
    data: Path = typer.Argument(..., help=DATA_HELP + " The questions pairs are sampled on."),
    model: str = typer.Option(..., "--model", "-m", help="The embedded model (GGUF) to train: a registered name "
                              "or a .gguf path."),
    heldout: Path = typer.Option(..., "--heldout", help="Held-out questions every round is scored on (the same "
                                 "kinds as DATA; never the questions trained on)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder of the run: round-N/ (pairs, adapter, GGUF adapter, "
                             "held-out run, round.json) and excot.json; resumed when it exists."),
    rounds: int = typer.Option(3, "--rounds", min=1, max=20, help="DPO rounds at most (the first off-policy)."),
    min_improvement: float = typer.Option(0.0, "--min-improvement", min=0.0, max=1.0,
                                          help="Held-out EX a round must gain over the best so far to go on."),
    teacher: str = typer.Option(None, "--teacher", help="Round 1 samples from this teacher (openai:NAME with "
                                "--base-url) instead of the base model."),
    pairs_file: Path = typer.Option(None, "--pairs", help="Round 1 trains on these DPO pairs (a `train pairs` "
                                    "dpo.jsonl) instead of sampling."),
    k: int = typer.Option(4, "-k", "--k", min=1, max=64, help="Candidates per question each round."),
    cot: bool = typer.Option(False, "--cot", help="Chain of thought, then the SQL (sampling and scoring)."),
    pairing: str = typer.Option("nearest", "--pairing", help="random | nearest | farthest (see `train pairs`)."),
    pairs_per_question: int = typer.Option(1, "--pairs-per-question", min=1, help="DPO pairs per question."),
    temperature: float = typer.Option(0.8, "--temperature", min=0.0, max=2.0, help="Sampling temperature."),
    beta: float = typer.Option(0.1, "--beta", min=0.0, help="DPO's beta."),
    epochs: float = typer.Option(1.0, "--epochs", min=0.0, help="DPO epochs per round."),
    lr: float = typer.Option(5e-5, "--lr", min=0.0, help="Learning rate."),
    lora_r: int = typer.Option(16, "--lora-r", min=1, help="LoRA rank (round 1; later rounds continue it)."),
    lora_alpha: int = typer.Option(32, "--lora-alpha", min=1, help="LoRA alpha."),
    max_steps: int = typer.Option(None, "--max-steps", min=1, help="Optimizer steps per round at most."),
    seed: int = typer.Option(0, "--seed", help="Sampling and training seed."),
    kind: str = KIND,
    heldout_kind: str = typer.Option("auto", "--heldout-kind", help="The held-out file's kind (as --kind)."),
    db_dir: Path = DB_DIR,
    db: list[str] = DB_MAP,
    dialect: str = DIALECT,
    include_unverified: bool = INCLUDE_UNVERIFIED,
    workers: int = typer.Option(2, "--workers", min=0, help="Comparison processes of the held-out scoring."),
    base_url: str = BASE_URL,
    fmt: OutputFormat = FORMAT,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """ExCoT: an off-policy DPO round, then on-policy rounds (sampled with the last adapter through llama.cpp,
    labelled by execution, DPO), each scored on the held-out questions; stops when the score no longer improves.
    Started again on the same --out, it resumes."""
    from sqlwright.train import require_train_extra
    from sqlwright.train.excot import DpoOptions, bind_config, default_steps, run_excot
    from sqlwright.train.pairs import PairsOptions

    _check_format(fmt, "excot")
    require_train_extra()
    if teacher is not None and pairs_file is not None:
        raise ConfigError("give --teacher (sample round 1 from it) or --pairs (train round 1 on them), not both")
    if pairs_file is not None:
        from sqlwright.train.records import read_records

        read_records(Path(pairs_file), "dpo")  # malformed pairs: refused now, not after the base is scored
    pairs_options = PairsOptions(k=k, temperature=temperature, cot=cot, pairing=pairing.strip().lower(),
                                 pairs_per_question=pairs_per_question, seed=seed)
    dpo = DpoOptions(beta=beta, epochs=epochs, lr=lr, lora_r=lora_r, lora_alpha=lora_alpha, max_steps=max_steps,
                     seed=seed)
    with open_data(data, kind, dialect=dialect, db_dir=db_dir, db=db,
                   include_unverified=include_unverified) as train_set, \
            open_data(heldout, heldout_kind, dialect=dialect, db_dir=db_dir, db=db,
                      include_unverified=include_unverified) as heldout_set:
        overlap = {e.question for e in train_set.examples} & {e.question for e in heldout_set.examples}
        if overlap:
            raise ConfigError(f"{len(overlap)} held-out question(s) are also in the training data (e.g. "
                              f"{sorted(overlap)[0]!r}): a held-out score must be on unseen questions")
        for dataset in (train_set, heldout_set):
            for db_name in dict.fromkeys(e.db for e in dataset.examples):
                dataset.database_url(db_name)
        bind_config(Path(out), {
            "data": str(Path(data).resolve()), "heldout": str(Path(heldout).resolve()), "model": model,
            "teacher": teacher, "pairs": str(Path(pairs_file).resolve()) if pairs_file else None,
            "pairs_options": pairs_options.sampling(model) | {"pairing": pairs_options.pairing,
                                                             "pairs_per_question": pairs_per_question},
            "dpo": dpo.__dict__, "rounds": rounds, "min_improvement": min_improvement})
        steps = default_steps(train_set, heldout_set, model=model, pairs_options=pairs_options, dpo=dpo,
                              teacher=teacher, off_policy_pairs=pairs_file, base_url=base_url, workers=workers,
                              progress=not no_progress and fmt is OutputFormat.table)

        def show(round_log) -> None:
            if fmt is OutputFormat.table:
                gained = "improved" if round_log.improved else "no gain"
                console.print(f"round {round_log.round} ({round_log.kind}): held-out EX {100 * round_log.score:.1f}%"
                              f" ({gained}); pairs {round_log.pairs if round_log.pairs is not None else '-'}",
                              highlight=False, soft_wrap=True)

        report = run_excot(steps, Path(out), rounds=rounds, min_improvement=min_improvement, on_round=show)
    if fmt is OutputFormat.json:
        print_json(report.to_dict())
        return
    best = report.best
    console.print(f"best: round {report.best_round}, held-out EX {100 * report.best_score:.1f}%"
                  + (f", adapter {best.gguf}" if best.gguf else " (the base model)") + f"; {report.stopped}",
                  highlight=False, soft_wrap=True)
