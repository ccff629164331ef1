"""`sqlwright eval spider|bird|sqleval|jsonl` (evaluate predictions or a model on a benchmark) and
`sqlwright eval diff` (compare two runs)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import typer
from rich.table import Table

from sqlwright.cli.app import OutputFormat, app, console, err_console, handle_errors, print_json
from sqlwright.cli.ask import (
    ABSTAIN_BELOW,
    ALL_CANDIDATES,
    BASE_URL,
    CANDIDATES,
    CONNECT_TIMEOUT,
    COT,
    EXAMPLES,
    EXAMPLES_MIN_SIMILARITY,
    GREEDY,
    LORA,
    NO_LINKING,
    NO_VALUES,
    REPAIR_ALL,
    REPAIR_ROUNDS,
    REQUEST_TIMEOUT,
    pipeline_overrides,
)
from sqlwright.errors import ConfigError

eval_app = typer.Typer(
    help="Evaluate predictions or a model on Spider, BIRD, SQL-Eval or your own JSONL/CSV questions.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")

# Spider's wta_1 database here was rebuilt from public data (its rankings table is empty): its
# questions are reported separately (see ../shared/data/README.md).
UNRELIABLE_DBS = {"spider": ("wta_1",)}

KINDS = {
    "spider": "Spider 1.0 (dev.json, tables.json, database/): test-suite execution match, by hardness.",
    "bird": "BIRD (mini-)dev JSON with --db-root holding <db>/<db>.sqlite: set match, Soft-F1, R-VES.",
    "sqleval": "Defog SQL-Eval questions CSV, databases materialised in --dialect.",
    "jsonl": "Your own questions: JSONL or CSV with question, sql, db (and optional fields).",
}


CONCURRENCY_HELP = (
    "Questions in flight at once, for --model openai:NAME (a server that batches, such as vLLM or SGLang, "
    "answers them together). The embedded model answers one at a time: more than 1 is refused. A request's "
    "time includes its wait in the server's queue (--request-timeout).")


def default_run_file(config: dict) -> Path:
    """Where a run with this configuration lives unless --run-file says otherwise (used by --resume)."""
    from sqlwright.config import load_settings

    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]
    name = f"{config.get('kind', 'eval')}-{config.get('dataset', 'data')}-{digest}.sqlite"
    return load_settings().cache_dir / "runs" / "".join(c if c.isalnum() or c in "-._" else "_" for c in name)


def _build_predictor(predictions: Path | None, model: str | None, examples, pipeline: dict,
                     llm_settings: dict | None = None):
    """The predictor and what identifies it in the run's configuration (`llm_settings`: settings given as
    flags, for the model)."""
    from sqlwright.eval.predictors import FilePredictor, PipelinePredictor

    if predictions is not None and model is not None:
        raise ConfigError("give either --predictions or --model, not both")
    if predictions is not None:
        from sqlwright.eval.datasets import read_predictions

        path = Path(predictions)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None
        return FilePredictor(read_predictions(path, examples)), {"predictions": str(path.resolve()),
                                                                 "predictions_sha256": digest}
    if model is None:
        raise ConfigError("give --predictions FILE (another system's SQL) or --model NAME (ask the pipeline)")
    from sqlwright.config import load_settings
    from sqlwright.llm import load_llm
    from sqlwright.pipeline.ask import AskOptions, Engine

    options = AskOptions(**pipeline)
    settings = load_settings(**(llm_settings or {}))
    identity: dict = {"model": model, "pipeline": options.model_dump()}
    if settings.lora:  # another adapter is another system: its run must not resume this one's
        from sqlwright.llm.adapters import read_adapter
        from sqlwright.llm.models import file_sha256

        identity["lora_sha256"] = file_sha256(read_adapter(settings.lora).path)
    store = None
    if options.examples or options.notes:
        from sqlwright.store import open_state_store

        store = open_state_store(settings)
        identity["state_dir"] = store.location  # the state file, or the state URL without its password
    engine = Engine(load_llm(model, settings), options, store=store)
    return PipelinePredictor(engine), identity


def print_summary(summary) -> None:
    """The run's headline figures and breakdowns as Rich tables."""
    from sqlwright.eval.report import BREAKDOWNS, headline

    metrics = summary.metrics
    table = Table(title=f"{summary.config.get('dataset')} ({summary.config.get('comparison')} rules)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for label, value in headline({**metrics, "results": summary.results()}):  # results: the verdicts' notes
        table.add_row(label, value)
    console.print(table)
    for key, label in BREAKDOWNS:
        groups = metrics.get(key) or {}
        if len(groups) > 1 or (groups and key != "by_db"):
            t = Table(title=f"EX by {label}")
            for col in (label, "questions", "correct", "EX"):
                t.add_column(col, justify="left" if col == label else "right")
            for name, g in groups.items():
                t.add_row(name, str(g["count"]), str(g["correct"]), f"{100 * g['ex']:.1f}%")
            console.print(t)
    console.print(f"run file: {summary.run_file}", highlight=False)


def _make_command(kind: str):
    def command(
        data: Path = typer.Option(..., "--data", help="The dataset: a folder or file (see the kind's help)."),
        predictions: Path = typer.Option(None, "--predictions", "-p", help="Predictions file to evaluate."),
        model: str = typer.Option(None, "--model", "-m", help="Model to evaluate through the ask pipeline."),
        lora: str = LORA,
        dialect: str = typer.Option(None, "--dialect", help="postgres|sqlite|mysql (sqleval)."),
        db_root: Path = typer.Option(None, "--db-root", help="Folder of <db>/<db>.sqlite databases (bird)."),
        limit: int = typer.Option(None, "--limit", min=0, help="Evaluate the first N questions."),
        sample: int = typer.Option(None, "--sample", min=0, help="Evaluate N questions spread over databases."),
        seed: int = typer.Option(0, "--seed", help="Seed of --sample."),
        db_id: list[str] = typer.Option(None, "--db-id", help="Only these databases (repeatable)."),
        question_id: list[str] = typer.Option(None, "--id", help="Only these questions, by the dataset's id "
                                              "(repeatable; e.g. to re-run the ones another run got wrong)."),
        workers: int = typer.Option(2, "--workers", min=0, help="Comparison processes (0: in this process)."),
        timeout: float = typer.Option(30.0, "--timeout", min=0.001, help="Seconds allowed per SQL statement."),
        ves_repeats: int = typer.Option(0, "--ves-repeats", min=0,
                                        help="Timed runs per correct question for R-VES (BIRD uses 5+; 0: off)."),
        run_file: Path = typer.Option(None, "--run-file", help="Run file (resumed if it holds this same run)."),
        resume: bool = typer.Option(False, "--resume", help="Resume the last run with the same configuration."),
        report: Path = typer.Option(None, "--report", help="Write summary.json, summary.md, report.html here."),
        fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table or json."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
        sqleval_strict: bool = typer.Option(
            False, "--sqleval-strict", help="sqleval: judge by the corrected rule (ORDER BY ties in any order, "
            "no Defog quirks) instead of Defog's own code."),
        candidates: int = CANDIDATES,
        repair_rounds: int = REPAIR_ROUNDS,
        repair_all: bool = REPAIR_ALL,
        all_candidates: bool = ALL_CANDIDATES,
        no_linking: bool = NO_LINKING,
        no_values: bool = NO_VALUES,
        abstain_below: float = ABSTAIN_BELOW,
        cot: bool = COT,
        greedy: bool = GREEDY,
        examples_k: int = EXAMPLES,
        examples_min_similarity: float = EXAMPLES_MIN_SIMILARITY,
        base_url: str = BASE_URL,
        concurrency: int = typer.Option(1, "--concurrency", "-j", min=1, max=256, help=CONCURRENCY_HELP),
        request_timeout: float = REQUEST_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        from sqlwright.eval.datasets import load_dataset
        from sqlwright.eval.report import write_report
        from sqlwright.eval.runner import DEFAULT_MAX_ROWS, EvalInterrupted, run_config, run_eval
        from sqlwright.eval.sampling import select_examples

        if fmt is OutputFormat.csv:
            raise ConfigError("eval prints a table or json (--format csv is for rows)")
        if resume and run_file is not None:
            raise ConfigError("give --run-file F (which resumes F) or --resume, not both")
        if sqleval_strict and kind != "sqleval":
            raise ConfigError(f"--sqleval-strict is for sqleval, not {kind}")
        if lora and model is None:
            raise ConfigError("--lora applies to a model: give --model NAME with it (not --predictions)")
        from sqlwright.llm import OPENAI_PREFIX

        if concurrency > 1 and not (model or "").startswith(OPENAI_PREFIX):
            why = (f"the embedded model {model} answers one question at a time" if model
                   else "predictions read from a file are not asked for")
            raise ConfigError(f"--concurrency {concurrency} is for a model behind a server (--model openai:NAME "
                              f"--base-url URL); {why}")
        # An evaluation shows stored examples only when asked to (--examples K): its figures must not depend
        # on what happens to be in the state directory.
        pipeline = pipeline_overrides(candidates, repair_rounds, no_linking, abstain_below, cot, greedy,
                                      no_values, repair_all, all_candidates, examples_k or 0,
                                      examples_min_similarity)
        if not examples_k:
            pipeline["notes"] = 0
        strict = {"strict": True} if sqleval_strict else {}  # the rule's name goes into the run's configuration
        with load_dataset(kind, Path(data), dialect=dialect, db_root=db_root, **strict) as dataset:
            examples = select_examples(dataset.examples, db_ids=db_id or (), sample=sample, seed=seed, limit=limit,
                                       ids=question_id or ())
            if not examples:
                raise ConfigError("no questions selected")
            # Predictions files cover the whole dataset (Spider's are one line per question, in order).
            predictor, identity = _build_predictor(
                predictions, model, dataset.examples, pipeline,
                llm_settings={"request_timeout": request_timeout, "connect_timeout": connect_timeout,
                              "base_url": base_url, "lora": lora},
            )
            extra = {"data": str(Path(data).resolve()), "dialect": dialect, **identity}
            config = run_config(dataset, examples, timeout=timeout, ves_repeats=ves_repeats,
                                max_rows=DEFAULT_MAX_ROWS, extra=extra)
            path = run_file
            if path is None:
                path = default_run_file(config)
                if not resume:
                    for suffix in ("", "-wal", "-shm"):
                        Path(f"{path}{suffix}").unlink(missing_ok=True)
            try:
                summary = run_eval(
                    dataset, predictor, run_file=path, examples=examples, workers=workers, timeout=timeout,
                    ves_repeats=ves_repeats, progress=not no_progress, config=extra,
                    exclude_dbs=UNRELIABLE_DBS.get(kind, ()), concurrency=concurrency,
                )
            except EvalInterrupted as stop:  # SIGINT or SIGTERM: the run file holds what was done
                again = "the same command" + ("" if run_file is not None or resume else " plus --resume")
                err_console.print(f"{stop}; resume with {again} (run file {path})", markup=False,
                                  highlight=False, soft_wrap=True)
                raise typer.Exit(stop.exit_code) from None
            finally:
                close = getattr(predictor, "close", None)
                if close:
                    close()
        data_out = summary.to_dict()
        if report is not None:
            paths = write_report(data_out, report)
            err_console.print(f"report: {paths['html']}", highlight=False)
        if fmt is OutputFormat.json:
            print_json(data_out)
        else:
            print_summary(summary)

    command.__doc__ = f"Evaluate on {KINDS[kind]}"
    return command


for _kind in KINDS:
    eval_app.command(_kind, help=f"Evaluate on {KINDS[_kind]}")(handle_errors(_make_command(_kind)))


@eval_app.command("diff")
@handle_errors
def diff(
    run_a: Path = typer.Argument(..., help="First run file."),
    run_b: Path = typer.Argument(..., help="Second run file."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table or json."),
) -> None:
    """Questions one run gets right and the other wrong, with both SQLs."""
    from sqlwright.eval.diff import diff_runs

    result = diff_runs(run_a, run_b)
    if fmt is OutputFormat.json:
        print_json(result.to_dict())
        return
    console.print(
        f"{result.common} common questions: {result.both_right} both right, {result.both_wrong} both wrong, "
        f"{len(result.a_only)} only A right, {len(result.b_only)} only B right", highlight=False,
    )
    for title, entries in (("A right, B wrong", result.a_only), ("B right, A wrong", result.b_only)):
        if not entries:
            continue
        table = Table(title=title, show_lines=True)
        for col in ("id", "question", "A", "B", "gold"):
            table.add_column(col, overflow="fold")
        for e in entries:
            table.add_row(e["id"], e["question"], e["sql_a"] or f"({e['error_a'] or 'abstained'})",
                          e["sql_b"] or f"({e['error_b'] or 'abstained'})", e["gold_sql"])
        console.print(table)
    if result.only_in_a or result.only_in_b:
        console.print(f"not in both runs: {len(result.only_in_a)} only in A, {len(result.only_in_b)} only in B")
