"""The command line: `sqlwright ask|sql|schema|models|eval`. One module per command group."""

from sqlwright.cli import ask as _ask  # noqa: F401  (registers commands)
from sqlwright.cli import eval as _eval  # noqa: F401
from sqlwright.cli import models as _models  # noqa: F401
from sqlwright.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
