"""`sqlwright learn DB`: synthesize verified question–SQL pairs for a database and keep them as examples."""

from __future__ import annotations

from pathlib import Path

import typer

from sqlwright.cli.app import OutputFormat, app, console, err_console, handle_errors, print_json
from sqlwright.cli.ask import BASE_URL, DB_HELP, _connect
from sqlwright.errors import ConfigError


@app.command()
@handle_errors
def learn(
    db: str = typer.Argument(..., help=DB_HELP),
    pairs: int = typer.Option(20, "--pairs", "-n", min=1, help="Verified pairs to reach for this database."),
    model: str = typer.Option(None, "--model", "-m", help="Model that writes and verifies the pairs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthesis (same seed, same items)."),
    work: Path = typer.Option(None, "--work", help="Work file (default: one per database under cache_dir/learn; "
                              "resumed when it exists)."),
    base_url: str = BASE_URL,
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table or json."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Learn a database: synthesize question–SQL pairs (SQL by complexity, a question in a style), keep those
    the pipeline answers the same way, and store them as examples `ask` shows the model. Stopped, it resumes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if fmt is OutputFormat.csv:
        raise ConfigError("learn prints a table or json (--format csv is for rows)")
    with _connect(db, model=model, base_url=base_url) as conn:
        bar = Progress(TextColumn("[bold]learn[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("verified"), TimeElapsedColumn(), console=err_console,
                       disable=no_progress or fmt is OutputFormat.json, transient=True)
        with bar:
            task = bar.add_task("", total=pairs)

            def show(event) -> None:
                bar.update(task, description=f"{event.stage} {event.outcome}")
                if event.verified is not None:
                    bar.update(task, completed=min(event.verified, pairs))

            report = conn.learn(pairs, seed=seed, work=work, progress=show)
    synth = report.synth
    data = {"database": conn.database.url, "verified": synth.verified, "stored": len(report.stored),
            "added": report.added, "attempts": synth.attempts, "kept": synth.kept, "questions": synth.questions,
            "rejections": synth.rejections, "unverified": synth.unverified,
            "seconds": {k: round(v, 1) for k, v in synth.seconds.items()}, "work": str(synth.work)}
    if fmt is OutputFormat.json:
        print_json(data)
        return
    console.print(f"{synth.verified} verified pairs ({report.added} new examples) from {synth.attempts} queries "
                  f"written, {synth.kept} kept, {synth.questions} with a question", highlight=False)
    for label, counts in (("queries rejected", synth.rejections), ("pairs not verified", synth.unverified)):
        if counts:
            console.print(f"{label}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), highlight=False)
    console.print(f"work file: {synth.work}", highlight=False)
    if synth.verified < pairs:
        err_console.print(f"[yellow]only {synth.verified} of {pairs} pairs verified within the attempt budget; "
                          "run it again to continue[/]", highlight=False)
