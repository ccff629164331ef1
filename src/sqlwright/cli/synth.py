"""`sqlwright synth …`: synthesize training data. One section per command (databases, then the others)."""

from __future__ import annotations

from pathlib import Path

import typer

from sqlwright.cli.app import OutputFormat, app, console, err_console, handle_errors, print_json
from sqlwright.cli.ask import BASE_URL, DB_HELP
from sqlwright.errors import ConfigError

synth_app = typer.Typer(
    help="Synthesize training data: databases to practise on, SQL, questions, verification, chain of thought.",
    no_args_is_help=True,
)
app.add_typer(synth_app, name="synth")


def _load_model(model: str | None, base_url: str | None):
    """The LLM for --model (default: the configured model), loaded once."""
    from sqlwright.config import load_settings
    from sqlwright.llm import load_llm

    return load_llm(model, load_settings(base_url=base_url))


# --- synth databases --------------------------------------------------------------------------------------
@synth_app.command("databases")
@handle_errors
def databases(
    out_dir: Path = typer.Argument(..., help="Folder for <db_id>/<db_id>.sqlite, databases.json and the work file."),
    tables_json: Path = typer.Option(
        None, "--tables-json", help="Spider-format schemas (default $SQLWRIGHT_DATA/spider/tables.json, else "
        "the repository's sibling shared/data)."),
    only: list[str] = typer.Option(None, "--only", help="Only this database (repeatable)."),
    limit: int = typer.Option(None, "--limit", min=0, help="Fill the first N databases."),
    rows: int = typer.Option(None, "--rows", min=1,
                             help="Rows per table, about (each table gets 2/3 to 4/3 of it; default 45)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the rows (same seed and vocabulary: same bytes)."),
    model: str = typer.Option(None, "--model", "-m",
                              help="Model proposing text vocabularies (default: the configured model)."),
    no_model: bool = typer.Option(False, "--no-model", help="Programmatic values only: no model."),
    values: int = typer.Option(None, "--values", min=3, max=100,
                               help="Values the model proposes per text column (default 30; categories 6)."),
    base_url: str = BASE_URL,
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table or json."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """New SQLite databases for synthesis, filled from the Spider schemas that have no rows (never the
    evaluation databases): keys unique, foreign keys consistent, values realistic per column. Started again,
    it keeps the databases already built and asks the model nothing twice."""
    from sqlwright.synth.databases import (
        DEFAULT_ROWS,
        VALUES_PER_COLUMN,
        default_tables_json,
        evaluation_db_ids,
        load_schemas,
        select_schemas,
        synthesize_databases,
    )

    if fmt is OutputFormat.csv:
        raise ConfigError("synth databases prints a summary as a table or json (--format csv is for rows)")
    if no_model and model is not None:
        raise ConfigError("give --model NAME or --no-model, not both")
    path = Path(tables_json) if tables_json is not None else default_tables_json()
    schemas = load_schemas(path)
    excluded = evaluation_db_ids(path.parent)
    chosen = select_schemas(schemas, excluded, only=only or (), limit=limit)
    if not chosen:
        raise ConfigError("no database selected")
    llm = None if no_model else _load_model(model, base_url)
    progress, task = _progress(not no_progress, len(chosen))

    def advance(db_id: str, table: str | None) -> None:
        if table is None:
            progress.update(task, advance=1, current=db_id)
        else:
            progress.update(task, current=f"{db_id}.{table}")

    with progress:
        summary = synthesize_databases(chosen, Path(out_dir), llm=llm, seed=seed, rows=rows or DEFAULT_ROWS,
                                       values_per_column=values or VALUES_PER_COLUMN, excluded=excluded, source=str(path.resolve()), on_progress=advance)
    data = {
        "databases": len(summary.built) + len(summary.reused), "built": summary.built, "reused": summary.reused,
        "tables": summary.tables, "rows": summary.rows, "model": getattr(llm, "name", None),
        "model_calls": summary.model_calls, "cached_replies": summary.cached_replies,
        "failed_columns": summary.failed_columns, "foreign_key_violations": summary.foreign_key_violations,
        "empty_joins": summary.empty_joins, "seconds": round(summary.seconds, 2), "manifest": str(summary.manifest),
    }
    if fmt is OutputFormat.json:
        print_json(data)
    else:
        console.print(
            f"{data['databases']} databases ({len(summary.built)} built, {len(summary.reused)} already there), "
            f"{summary.tables} tables, {summary.rows:,} rows; {summary.model_calls} model calls "
            f"({summary.cached_replies} replies reused, {summary.failed_columns} columns programmatic after "
            f"the model failed); {summary.foreign_key_violations} foreign key violations, "
            f"{len(summary.empty_joins)} empty joins; {summary.seconds:.1f} s; manifest {summary.manifest}",
            highlight=False, soft_wrap=True)
    if summary.foreign_key_violations or summary.empty_joins:
        raise typer.Exit(1)


def _progress(enabled: bool, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("[bold]synth databases[/]"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.fields[current]}"), console=err_console,
                        disable=not enabled, transient=False)
    return progress, progress.add_task("databases", total=total, current="")


# === synth sql | questions | verify | cot | export | run (the pair-synthesis stages, synth/run.py) ===========
DEFAULT_LEVELS = "simple,moderate,complex,highly-complex"
WORK = typer.Option(..., "--work", "-w", help="Work file (SQLite): every stage's progress; resumed when it exists.")
TEACHER = typer.Option(None, "--teacher", help="A stronger model on a server for the generation stages "
                       "(openai:NAME with --base-url); --model then only verifies.")
CONCURRENCY = typer.Option(1, "--concurrency", "-j", min=1, max=256,
                           help="Items in flight at once, for a model behind a server (openai:NAME).")
NO_PROGRESS = typer.Option(False, "--no-progress", help="No progress bar.")
FORMAT = typer.Option(OutputFormat.table, "--format", "-f", help="table or json.")


def _levels(values: list[str] | None) -> list[str]:
    """--levels given as `a,b` or repeated."""
    return [v.strip() for value in (values or [DEFAULT_LEVELS]) for v in value.split(",") if v.strip()]


def _synth_models(model: str | None, teacher: str | None, base_url: str | None, *, verify: bool):
    """(generator, verifier): the teacher writes when given, the model verifies (and writes without one)."""
    if teacher is None:
        llm = _load_model(model, base_url)
        return llm, llm
    generator = _load_model(teacher, base_url)
    return generator, (_load_model(model, base_url) if verify else generator)


def _open_target(db: str, name: str | None):
    """The database (read-only), the name it goes by in the work file, and the URL other threads reopen."""
    from sqlwright.api import resolve_url
    from sqlwright.config import load_settings
    from sqlwright.db import open_database
    from sqlwright.sample import SAMPLE_NAME

    url = resolve_url(db, load_settings())
    database = open_database(url)
    if name is None and db == SAMPLE_NAME:
        name = SAMPLE_NAME
    return database, name, url


def _synth_bar(enabled: bool, label: str, total: int | None = None):
    """A progress bar and the callback that moves it (one task per stage; `run` counts verified pairs up to
    `total`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(f"[bold]synth {label}[/] {{task.description}}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[last]}"), console=err_console,
                   disable=not enabled, transient=False)
    tasks: dict[str, int] = {}

    def show(event) -> None:
        key = "verified" if label == "run" else event.stage
        if key not in tasks:
            tasks[key] = bar.add_task("verified pairs" if label == "run" else event.stage, total=total, last="")
        task = tasks[key]
        last = f"{event.stage} {event.item}: {event.outcome}"
        if label == "run":
            bar.update(task, last=last, **({"completed": event.verified} if event.verified is not None else {}))
        else:
            bar.update(task, completed=event.done, total=max(event.total or 0, event.done) or None, last=last)

    return bar, show


def _synthesizer(work, generator, verifier, *, seed=None, concurrency=1, progress=None, k=None, samples=None,
                 include_unverified=False):
    from sqlwright.synth.run import CotOptions, QuestionOptions, Synthesizer

    questions = QuestionOptions(k=k) if k is not None else QuestionOptions()
    cot = CotOptions(include_unverified=include_unverified, **({"samples": samples} if samples is not None else {}))
    return Synthesizer(work, generator=generator, verifier=verifier, seed=seed, concurrency=concurrency,
                       progress=progress, question_options=questions, cot_options=cot)


def _print_stage(summary, fmt: OutputFormat, work_path: Path) -> None:
    data = {"stage": summary.stage, "items": summary.items, "outcomes": summary.outcomes,
            "seconds": round(summary.seconds, 1), "work": str(work_path)}
    if fmt is OutputFormat.json:
        print_json(data)
        return
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items(), key=lambda kv: -kv[1]))
    done = f" ({outcomes})" if outcomes else " (nothing pending)"
    console.print(f"{summary.stage}: {summary.items} item(s) recorded{done} in {summary.seconds:.1f} s; "
                  f"work file {work_path}", highlight=False, soft_wrap=True)


def _check_format(fmt: OutputFormat, command: str) -> None:
    if fmt is OutputFormat.csv:
        raise ConfigError(f"synth {command} prints a summary as a table or json (--format csv is for rows)")


@synth_app.command("sql")
@handle_errors
def synth_sql(
    db: str = typer.Argument(..., help=DB_HELP),
    work: Path = WORK,
    per_level: int = typer.Option(5, "--per-level", min=1, help="Queries to keep per complexity level."),
    levels: list[str] = typer.Option(None, "--levels", help=f"Complexity levels (default {DEFAULT_LEVELS})."),
    attempts: int = typer.Option(None, "--attempts", min=1,
                                 help="Queries generated per level at most (default 4 x --per-level)."),
    name: str = typer.Option(None, "--name", help="The database's name in the work file (default: its own)."),
    model: str = typer.Option(None, "--model", "-m", help="Model name, .gguf path or openai:NAME."),
    teacher: str = TEACHER,
    base_url: str = BASE_URL,
    concurrency: int = CONCURRENCY,
    seed: int = typer.Option(0, "--seed", help="Seed of the synthesis (same seed, same items)."),
    fmt: OutputFormat = FORMAT,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """SQL at OmniSQL's complexity levels, kept when it runs read-only within the time limit, returns rows
    that say something, and its template is new for the database."""
    from sqlwright.synth.workfile import open_work_file

    _check_format(fmt, "sql")
    database, name, url = _open_target(db, name)
    generator, _ = _synth_models(model, teacher, base_url, verify=False)
    bar, show = _synth_bar(not no_progress and fmt is OutputFormat.table, "sql")
    with database, open_work_file(work) as wf, bar:
        synth = _synthesizer(wf, generator, generator, seed=seed, concurrency=concurrency, progress=show)
        try:
            summary = synth.sql(synth.add_database(database, name, url=url), per_level=per_level,
                                levels=_levels(levels), attempts_per_level=attempts)
        finally:
            synth.close()
    _print_stage(summary, fmt, work)


def _stage_command(stage: str):
    def run_stage(work: Path, model, teacher, base_url, concurrency, fmt, no_progress, **options) -> None:
        from sqlwright.synth.workfile import open_work_file

        _check_format(fmt, stage)
        with open_work_file(work, must_exist=True) as wf:
            generator, verifier = _synth_models(model, teacher, base_url, verify=stage == "verify")
            bar, show = _synth_bar(not no_progress and fmt is OutputFormat.table, stage)
            with bar:
                synth = _synthesizer(wf, generator, verifier, concurrency=concurrency, progress=show, **options)
                try:
                    summary = getattr(synth, stage)()
                finally:
                    synth.close()
        _print_stage(summary, fmt, work)

    return run_stage


@synth_app.command("questions")
@handle_errors
def synth_questions(
    work: Path = WORK,
    k: int = typer.Option(3, "--k", min=1, max=16, help="Candidate questions per query; the one nearest their "
                          "centroid is kept."),
    model: str = typer.Option(None, "--model", "-m", help="Model name, .gguf path or openai:NAME."),
    teacher: str = TEACHER,
    base_url: str = BASE_URL,
    concurrency: int = CONCURRENCY,
    fmt: OutputFormat = FORMAT,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """A question for every kept query without one: the model explains the query, then writes the question in
    one of nine styles (drawn from the seed)."""
    _stage_command("questions")(work, model, teacher, base_url, concurrency, fmt, no_progress, k=k)


@synth_app.command("verify")
@handle_errors
def synth_verify(
    work: Path = WORK,
    model: str = typer.Option(None, "--model", "-m", help="Model the ask pipeline answers with."),
    base_url: str = BASE_URL,
    concurrency: int = CONCURRENCY,
    fmt: OutputFormat = FORMAT,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Ask every question back through the ask pipeline: a pair is verified when the answer's result equals its
    query's (Spider's rule); otherwise it is kept unverified, with the reason."""
    _stage_command("verify")(work, model, None, base_url, concurrency, fmt, no_progress)


@synth_app.command("cot")
@handle_errors
def synth_cot(
    work: Path = WORK,
    samples: int = typer.Option(4, "--samples", min=1, max=32, help="Chain-of-thought solutions per pair."),
    include_unverified: bool = typer.Option(False, "--include-unverified",
                                            help="Also pairs the pipeline did not verify."),
    model: str = typer.Option(None, "--model", "-m", help="Model name, .gguf path or openai:NAME."),
    teacher: str = TEACHER,
    base_url: str = BASE_URL,
    concurrency: int = CONCURRENCY,
    fmt: OutputFormat = FORMAT,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Chain-of-thought solutions for the verified pairs, kept when at least 3 samples reach the query's result."""
    _stage_command("cot")(work, model, teacher, base_url, concurrency, fmt, no_progress, samples=samples,
                          include_unverified=include_unverified)


def _export(work: Path, out: Path, verified_only: bool) -> dict:
    from sqlwright.synth.dataset import export_dataset
    from sqlwright.synth.workfile import open_work_file

    with open_work_file(work, must_exist=True) as wf:
        export = export_dataset(wf, out, verified_only=verified_only)
    return {"pairs": export.pairs, "verified": export.verified, "jsonl": str(export.jsonl),
            "datasheet": str(export.datasheet_md), "datasheet_json": str(export.datasheet_json)}


@synth_app.command("export")
@handle_errors
def synth_export(
    work: Path = WORK,
    out: Path = typer.Option(..., "--out", "-o", help="JSON Lines file to write (its datasheet goes next to it)."),
    verified_only: bool = typer.Option(False, "--verified-only", help="Only the verified pairs."),
    fmt: OutputFormat = FORMAT,
) -> None:
    """The pairs as JSON Lines (loadable with Hugging Face datasets) and a datasheet (Markdown and JSON)."""
    _check_format(fmt, "export")
    data = _export(work, out, verified_only)
    if fmt is OutputFormat.json:
        print_json(data)
    else:
        console.print(f"{data['pairs']} pairs ({data['verified']} verified) -> {data['jsonl']}; "
                      f"datasheet {data['datasheet']}", highlight=False, soft_wrap=True)


@synth_app.command("run")
@handle_errors
def synth_run(
    db: str = typer.Argument(..., help=DB_HELP),
    work: Path = WORK,
    pairs: int = typer.Option(..., "--pairs", "-n", min=1, help="Verified pairs to reach for the database."),
    max_attempts: int = typer.Option(None, "--max-attempts", min=1,
                                     help="Queries generated at most (default 20 x --pairs)."),
    levels: list[str] = typer.Option(None, "--levels", help=f"Complexity levels (default {DEFAULT_LEVELS})."),
    cot: bool = typer.Option(True, "--cot/--no-cot", help="Also chain-of-thought solutions of verified pairs."),
    k: int = typer.Option(3, "--k", min=1, max=16, help="Candidate questions per query."),
    samples: int = typer.Option(4, "--samples", min=1, max=32, help="Chain-of-thought solutions per pair."),
    out: Path = typer.Option(None, "--out", "-o", help="Also export the pairs here (JSON Lines + datasheet)."),
    name: str = typer.Option(None, "--name", help="The database's name in the work file (default: its own)."),
    model: str = typer.Option(None, "--model", "-m", help="Model name, .gguf path or openai:NAME."),
    teacher: str = TEACHER,
    base_url: str = BASE_URL,
    concurrency: int = CONCURRENCY,
    seed: int = typer.Option(0, "--seed", help="Seed of the synthesis (same seed, same items)."),
    fmt: OutputFormat = FORMAT,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Every stage chained, a query at a time (or --concurrency at a time), until the database has --pairs
    verified pairs or --max-attempts queries were written. Stopped (even killed), it resumes."""
    from sqlwright.synth.workfile import open_work_file

    _check_format(fmt, "run")
    database, name, url = _open_target(db, name)
    generator, verifier = _synth_models(model, teacher, base_url, verify=True)
    bar, show = _synth_bar(not no_progress and fmt is OutputFormat.table, "run", pairs)
    with database, open_work_file(work) as wf:
        synth = _synthesizer(wf, generator, verifier, seed=seed, concurrency=concurrency, progress=show, k=k,
                             samples=samples)
        try:
            with bar:
                database_name = synth.add_database(database, name, url=url)
                report = synth.run(database_name, pairs=pairs, levels=_levels(levels), max_attempts=max_attempts,
                                   cot=cot)
        finally:
            synth.close()
    exported = _export(work, out, False) if out is not None else None
    data = {"database": report.database, "verified": report.verified, "pairs_wanted": pairs,
            "attempts": report.attempts, "kept": report.kept, "questions": report.questions,
            "rejections": report.rejections, "unverified": report.unverified,
            "seconds": {k: round(v, 1) for k, v in report.seconds.items()}, "work": str(report.work),
            "export": exported}
    if fmt is OutputFormat.json:
        print_json(data)
    else:
        console.print(f"{report.database}: {report.verified} verified pairs of {pairs} wanted, from "
                      f"{report.attempts} queries written, {report.kept} kept, {report.questions} with a question",
                      highlight=False, soft_wrap=True)
        for label, counts in (("queries rejected", report.rejections), ("pairs not verified", report.unverified)):
            if counts:
                console.print(f"{label}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
                              highlight=False, soft_wrap=True)
        console.print("seconds per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()),
                      highlight=False, soft_wrap=True)
        if exported:
            console.print(f"exported {exported['pairs']} pairs -> {exported['jsonl']}", highlight=False,
                          soft_wrap=True)
        console.print(f"work file: {report.work}", highlight=False, soft_wrap=True)
    if report.verified < pairs:
        err_console.print(f"only {report.verified} of {pairs} pairs verified within {report.attempts} "
                          "attempts; run it again with a larger --max-attempts to continue", highlight=False,
                          soft_wrap=True)
