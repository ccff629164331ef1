"""`sqlwright serve DB…`: the HTTP API and the web page (FastAPI + uvicorn) over one model."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

import typer

from sqlwright.cli.app import app, err_console, handle_errors
from sqlwright.cli.ask import (
    ABSTAIN_BELOW,
    BASE_URL,
    CANDIDATES,
    DB_HELP,
    EXAMPLES,
    GREEDY,
    LORA,
    pipeline_overrides,
)
from sqlwright.errors import ConfigError, UserError

log = logging.getLogger(__name__)

TOKEN_ENV = "SQLWRIGHT_TOKEN"


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), or ConfigError saying why not (port taken, not an address here) —
    before any model is loaded, and so that port 0 (any free port) can be reported. IPv6 when the host has a
    ':' (as uvicorn decides); '::' listens on IPv4 too."""
    address = host.strip().strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((address, port))
        sock.listen(128)
    except (OSError, UnicodeError, OverflowError) as exc:
        sock.close()
        if isinstance(exc, socket.gaierror):
            raise ConfigError(f"cannot listen on {host!r}: not an address of this machine "
                              f"({exc.strerror or exc})") from exc
        raise ConfigError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from exc
    sock.set_inheritable(True)
    return sock


@app.command()
@handle_errors
def serve(
    dbs: list[str] = typer.Argument(..., metavar="DB", help=DB_HELP + " Several may be served; name one with "
                                    "NAME=URL (clients pick it by name)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Beyond loopback a token is "
                             "required."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free port)."),
    token: str = typer.Option(None, "--token", help=f"Bearer token clients must send (default ${TOKEN_ENV}); at "
                              "least 16 characters.", show_default=False),
    allow_host: list[str] = typer.Option(None, "--allow-host", help="Another Host name the server answers to "
                                         "(behind a proxy or a DNS name; '*': any). Repeatable."),
    queue: int = typer.Option(8, "--queue", min=0, help="Questions that may wait for the model; more get HTTP 429."),
    deadline: float = typer.Option(120.0, "--deadline", min=1, help="Seconds a question may take, waiting "
                                   "included; past it HTTP 504 and the model stops."),
    summarize: bool = typer.Option(False, "--summarize", help="Add a one-sentence answer in words by default."),
    model: str = typer.Option(None, "--model", "-m", help="Model name, .gguf path or openai:NAME."),
    base_url: str = BASE_URL,
    timeout: float = typer.Option(None, "--timeout", help="Seconds allowed per SQL statement."),
    max_rows: int = typer.Option(None, "--max-rows", help="Rows returned per statement at most."),
    max_body: int = typer.Option(1_000_000, "--max-body", min=1_000, help="Largest request body, in bytes."),
    candidates: int = CANDIDATES,
    greedy: bool = GREEDY,
    examples: int = EXAMPLES,
    abstain_below: float = ABSTAIN_BELOW,
    lora: str = LORA,
) -> None:
    """Serve the HTTP API, the web page (/) and the API docs (/docs) over your databases and one model.

    The model is loaded before the server starts listening; questions wait their turn in a bounded queue."""
    from sqlwright.config import load_settings
    from sqlwright.serve.security import allowed_host_names, check_bind

    token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
    check_bind(host, token)
    try:
        import uvicorn

        from sqlwright.serve.app import create_app
        from sqlwright.serve.service import Service
    except ImportError as exc:
        raise UserError(f"serving needs the serve extra ({exc.name} is missing): pip install "
                           "'sqlwright[serve]'") from exc
    from sqlwright.llm import load_llm
    from sqlwright.pipeline import AskOptions
    from sqlwright.serve.databases import DatabaseSet
    from sqlwright.store import open_state_store

    options = AskOptions(**pipeline_overrides(candidates, None, False, abstain_below, False, greedy,
                                              examples=examples))
    settings = load_settings(model=model, base_url=base_url, timeout=timeout, max_rows=max_rows, lora=lora)
    sock = listening_socket(host, port)
    service = None
    try:
        databases = DatabaseSet.open(dbs, settings)
        try:
            with err_console.status(f"loading {settings.model}…"):
                llm = load_llm(settings.model, settings)
            store = open_state_store(settings)
        except BaseException:
            databases.close()
            raise
        service = Service(databases, llm, store, settings, options=options, queue_size=queue, deadline=deadline,
                          summarize=summarize, model_name=settings.model)
        asgi = create_app(service, token=token, allowed_hosts=allowed_host_names(host, allow_host or ()),
                          max_body_bytes=max_body)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        err_console.print(f"serving {', '.join(databases.names)} with {settings.model} on "
                          f"http://{shown}:{bound_port}/ (API docs: /docs){' — token required' if token else ''}",
                          markup=False, highlight=False, soft_wrap=True)
        config = uvicorn.Config(asgi, log_level="warning", lifespan="off", timeout_graceful_shutdown=5)
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler found at start:
        # with this one the process then ends normally (exit 0), as a service manager expects of a clean stop.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda signum, frame: None)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        if service is not None:
            service.close()
