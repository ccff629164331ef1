"""`sqlwright models list|path|verify|add|remove`: the embedded models, their files, named adapter models."""

from __future__ import annotations

import typer

from sqlwright.cli.app import OutputFormat, app, console, handle_errors, print_json, print_rows

models_app = typer.Typer(help="List, assemble and verify the embedded models; name a base + LoRA adapter.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


def _settings():
    from sqlwright.config import load_settings

    return load_settings()


@models_app.command("list")
@handle_errors
def list_(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f")) -> None:
    """Registered models, whether their parts are installed, and where the assembled file is."""
    from sqlwright.llm import list_models

    settings = _settings()
    statuses = list_models(settings.cache_dir)
    rows = [{**(s.as_dict() if hasattr(s, "as_dict") else vars(s)), "base": None, "lora": None} for s in statuses]
    rows += _adapter_rows(settings.cache_dir, {r["name"]: r for r in rows})
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
    """Assemble the model from its installed parts if needed, verify it, and print its path (a named adapter
    model: its base's path, then its adapter's)."""
    from sqlwright.llm import model_path
    from sqlwright.llm.adapters import resolve_adapter

    settings = _settings()
    base, lora = resolve_adapter(name or settings.model, None, settings.cache_dir)
    typer.echo(str(model_path(base, settings.cache_dir)))
    if lora is not None:
        typer.echo(str(lora))


@models_app.command("verify")
@handle_errors
def verify(name: str = typer.Argument(None, help="Model name (default: the configured model).")) -> None:
    """Check the assembled model file's size and sha256 against the official release."""
    from sqlwright.llm import verify_model

    settings = _settings()
    console.print(verify_model(name or settings.model, settings.cache_dir), markup=False, highlight=False)


def _adapter_rows(cache_dir, builtin: dict[str, dict]) -> list[dict]:
    """`models list` rows for the named adapter models (a base + a LoRA adapter)."""
    from pathlib import Path

    from sqlwright.llm.adapters import adapter_models

    rows = []
    for entry in adapter_models(cache_dir).values():
        lora = Path(entry.lora)
        base = builtin.get(entry.base)
        rows.append({
            "name": entry.name, "default": False, "size": lora.stat().st_size if lora.is_file() else 0,
            "parts": "", "assembled": lora.is_file() and (base["assembled"] if base else Path(entry.base).is_file()),
            "path": entry.lora, "missing": [] if lora.is_file() else [entry.lora],
            "description": f"{entry.base} + LoRA adapter {Path(entry.source).name}", "base": entry.base,
            "lora": entry.lora,
        })
    return rows


@models_app.command("add")
@handle_errors
def add(
    name: str = typer.Argument(..., help="The new model's name (letters, digits, '.', '_', '-')."),
    base: str = typer.Option(..., "--base", help="The base model: a registered name or a .gguf path."),
    lora: str = typer.Option(..., "--lora", help="The LoRA adapter: a GGUF from `sqlwright train export`."),
) -> None:
    """Name a base model with a LoRA adapter: `--model NAME` then serves the base with the adapter applied.
    The adapter is copied under the cache directory; one made for another base is refused."""
    from sqlwright.llm.adapters import add_adapter_model

    entry = add_adapter_model(name, base, lora, _settings().cache_dir)
    console.print(f"added {entry.name}: {entry.base} + {entry.lora}", markup=False, highlight=False, soft_wrap=True)


@models_app.command("remove")
@handle_errors
def remove(name: str = typer.Argument(..., help="A model added with `sqlwright models add`.")) -> None:
    """Forget a named adapter model and delete its copy of the adapter (the base model stays)."""
    from sqlwright.llm.adapters import remove_adapter_model

    entry = remove_adapter_model(name, _settings().cache_dir)
    console.print(f"removed {entry.name}", markup=False, highlight=False)
