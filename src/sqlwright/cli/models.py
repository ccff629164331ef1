"""`sqlwright models list|path|verify`: the embedded models and their files."""

from __future__ import annotations

import typer

from sqlwright.cli.app import OutputFormat, app, console, handle_errors, print_json, print_rows

models_app = typer.Typer(help="List, assemble and verify the embedded models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _settings():
    from sqlwright.config import load_settings

    return load_settings()


@models_app.command("list")
@handle_errors
def list_(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f")) -> None:
    """Registered models, whether their parts are installed, and where the assembled file is."""
    from sqlwright.llm import list_models

    statuses = list_models(_settings().cache_dir)
    rows = [s.as_dict() if hasattr(s, "as_dict") else vars(s) for s in statuses]
    if fmt is OutputFormat.json:
        print_json(rows)
        return
    # The table keeps what fits a terminal; --format json has every field (paths, missing packages).
    columns = ["name", "default", "MB", "parts", "assembled", "description"]
    table = [[r["name"], "yes" if r["default"] else "", round(r["size"] / 1e6), r["parts"],
              "yes" if r["assembled"] else "no", r["description"]] for r in rows]
    print_rows(columns, table, fmt)


@models_app.command("path")
@handle_errors
def path(name: str = typer.Argument(None, help="Model name (default: the configured model).")) -> None:
    """Assemble the model from its installed parts if needed, verify it, and print its path."""
    from sqlwright.llm import model_path

    settings = _settings()
    typer.echo(str(model_path(name or settings.model, settings.cache_dir)))


@models_app.command("verify")
@handle_errors
def verify(name: str = typer.Argument(None, help="Model name (default: the configured model).")) -> None:
    """Check the assembled model file's size and sha256 against the official release."""
    from sqlwright.llm import verify_model

    settings = _settings()
    console.print(verify_model(name or settings.model, settings.cache_dir), markup=False, highlight=False)
