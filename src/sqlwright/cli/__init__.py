"""The command line: `sqlwright ask|sql|schema|models|eval|examples|notes|learn|synth|serve|chat|mcp|train`. One module per command group."""

import sys

import typer

try:  # Typer >= 0.24 ships its own copy of click; older ones use click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors

from sqlwright.cli import ask as _ask  # noqa: F401  (registers commands)
from sqlwright.cli import chat as _chat  # noqa: F401
from sqlwright.cli import eval as _eval  # noqa: F401
from sqlwright.cli import examples as _examples  # noqa: F401
from sqlwright.cli import learn as _learn  # noqa: F401
from sqlwright.cli import mcp as _mcp  # noqa: F401
from sqlwright.cli import models as _models  # noqa: F401
from sqlwright.cli import serve as _serve  # noqa: F401
from sqlwright.cli import synth as _synth  # noqa: F401
from sqlwright.cli import train as _train  # noqa: F401
from sqlwright.cli import train_export as _train_export  # noqa: F401  (train export)
from sqlwright.cli import train_fit as _train_fit  # noqa: F401  (train sft|dpo|grpo)
from sqlwright.cli.app import app, err_console, print_error


def usage_message(exc: click_errors.UsageError) -> str:
    """A usage error as one line: click's message, the command's usage, where the help is."""
    message = exc.format_message()
    name = getattr(exc, "option_name", None) or ""
    if isinstance(exc, click_errors.NoSuchOption) and name.startswith("-") and (len(name.split()) > 1 or "\n" in name):
        # SQL that starts with a comment ("-- note …") looks like an option to the parser.
        message = (f"{message.splitlines()[0][:60]}…: SQL that starts with '-' is read as an option; give it "
                   "with --query='…', --file F (or - for stdin), or after a lone --")
    ctx = exc.ctx
    if ctx is not None:
        usage = " ".join(ctx.get_usage().split())
        message = f"{message} {usage} (see {ctx.command_path} --help)"
    return message


def main() -> None:
    """The `sqlwright` executable: the Typer app, with usage errors as one line (exit 2) like every error."""
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="sqlwright", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:  # bare `sqlwright` or `sqlwright eval`: the help
        sys.stdout.write(exc.format_message() + "\n")
        code = 0
    except click_errors.UsageError as exc:
        print_error(usage_message(exc))
        code = exc.exit_code
    except click_errors.ClickException as exc:
        print_error(exc.format_message())
        code = exc.exit_code
    except typer.Abort:
        err_console.print("interrupted", soft_wrap=True)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
