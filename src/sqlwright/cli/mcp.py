"""`sqlwright mcp DB…`: the databases as an MCP server for AI agents (stdio, or streamable HTTP with --http)."""

from __future__ import annotations

import sys

import typer

from sqlwright.cli.app import app, err_console, handle_errors
from sqlwright.cli.ask import BASE_URL, DB_HELP

MCP_DBS_HELP = (DB_HELP + " Several may be given; name one with NAME=URL (clients pick it with `db`, and "
                "only these can be queried).")


@app.command("mcp")
@handle_errors
def mcp(
    databases: list[str] = typer.Argument(..., help=MCP_DBS_HELP, show_default=False, metavar="DB"),
    http: bool = typer.Option(False, "--http", help="Serve streamable HTTP at http://HOST:PORT/mcp instead "
                              "of stdio."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (with --http); beyond "
                             "loopback only with a token."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (with --http; 0: a free one)."),
    token: str = typer.Option(None, "--token", envvar="SQLWRIGHT_TOKEN", show_envvar=True,
                              help="Bearer token clients must send (with --http)."),
    allow_host: list[str] = typer.Option(None, "--allow-host", help="Another Host name the server answers to "
                                         "(with --http; repeatable; '*': any)."),
    allow_examples: bool = typer.Option(False, "--allow-examples", help="Offer the add_example tool (it "
                                        "writes question-SQL examples to sqlwright's state store)."),
    model: str = typer.Option(None, "--model", "-m", help="Model name, .gguf path or openai:NAME (loaded on "
                              "the first question)."),
    base_url: str = BASE_URL,
    timeout: float = typer.Option(None, "--timeout", help="Seconds allowed per SQL statement."),
    max_rows: int = typer.Option(None, "--max-rows", help="Rows a statement returns at most."),
) -> None:
    """Serve databases to AI agents over MCP: ask, generate_sql, run_sql, validate_sql, search_schema,
    describe_table, and the schema as resources. Read-only; stdio by default (for agent hosts that start
    the server), --http for streamable HTTP."""
    from sqlwright.config import load_settings
    from sqlwright.errors import ConfigError
    from sqlwright.serve.security import check_bind

    if http:
        check_bind(host, token)  # refused before anything is loaded or opened
    try:
        from sqlwright.serve.mcp import build_mcp_server, close_mcp_server, run_http, run_stdio
    except ImportError as exc:
        raise ConfigError(f"the MCP server needs the serve extra: pip install 'sqlwright[serve]' "
                          f"({exc.name} missing)") from exc
    from sqlwright.serve.databases import DatabaseSet

    settings = load_settings(model=model, base_url=base_url, timeout=timeout, max_rows=max_rows)
    opened = DatabaseSet.open(databases, settings)
    try:
        server = build_mcp_server(opened, settings, allow_examples=allow_examples)
    except BaseException:
        opened.close()
        raise

    def say(message: str) -> None:  # stderr: on stdio, stdout is the protocol's
        err_console.print(f"sqlwright mcp: {message}", soft_wrap=True, highlight=False, markup=False)

    try:
        if http:
            run_http(server, host=host, port=port, token=token, allow_hosts=allow_host or (),
                     on_ready=lambda url: say(f"serving {', '.join(opened.names)} at {url}"))
        else:
            if sys.stdin.isatty():
                say(f"serving {', '.join(opened.names)} over stdio: an MCP client starts this command and "
                    "speaks JSON-RPC on its stdin (Ctrl-C quits); --http serves HTTP")
            run_stdio(server)
    finally:
        close_mcp_server(server)
