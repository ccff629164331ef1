"""The HTTP API (FastAPI) over a Service, behind the RequestGuard (token, Host allow-list, body cap).

    app = create_app(service, token="…", allowed_hosts=allowed_host_names("127.0.0.1"))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Routes (JSON unless said otherwise; the OpenAPI schema at /openapi.json, docs at /docs):

    GET  /healthz                      {"status": "ok"}                              (no token)
    GET  /                             the web page (serve/static/index.html)        (no token)
    GET  /static/…                     its assets                                    (no token)
    GET  /api/v1/info                  version, model, databases, read-only, queue, limits
    GET  /api/v1/databases             {"databases": [{name, dialect, tables}]}
    GET  /api/v1/schema?db=            {db, dialect, tables: [...], text}
    POST /api/v1/ask                   {db?, question, conversation_id?, evidence?, summarize?} -> the answer
    POST /api/v1/ask/stream            the same, as server-sent events (sse.py), `answer` last
    POST /api/v1/sql                   {db?, sql, validate_only?} -> {id, db, sql, columns, rows, truncated,
                                       seconds} or {db, valid, detail}
    GET  /api/v1/history?db=&conversation_id=&limit=&before=     {"entries": [...]}, newest first
    GET  /api/v1/history/{id}          one entry;   GET /api/v1/history/{id}.csv: its rows as CSV
    POST /api/v1/feedback              {id, rating: up|down, sql?, comment?} -> {feedback, example}
    GET  /api/v1/examples?db=          {"examples": [...]};  POST {db?, question, sql} -> {example, new}
    DELETE /api/v1/examples/{id}?db=   {"removed": id}
    GET  /api/v1/notes?db=             {"notes": [...]};     POST {db?, text} -> {note, new};  DELETE …/{id}

Every error is JSON {"detail": "one line"} with a 4xx status for what a client can cause (see STATUS):
400 a request the server cannot act on (refused SQL, empty question…), 401 token, 404 unknown database /
entry / example, 413 body too large, 415 not JSON, 421 Host not allowed, 422 malformed body or parameters,
429 the model's queue is full (Retry-After), 504 the deadline passed; 502/503 when the model server or the
state store fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from sqlwright import __version__
from sqlwright.errors import (
    Cancelled,
    LLMRequestFailed,
    ModelError,
    QueryFailed,
    SqlwrightError,
    StateStoreError,
    UnknownHistoryEntry,
    UserError,
)
from sqlwright.serve import api_models as m
from sqlwright.serve.databases import UnknownDatabase
from sqlwright.serve.security import DEFAULT_MAX_BODY_BYTES, RequestGuard, allowed_host_names
from sqlwright.serve.service import NotFound, Service
from sqlwright.serve.sse import PING, EventStream, event
from sqlwright.serve.worker import DeadlineExceeded, Job, QueueFull
from sqlwright.store.jsonsafe import json_safe

log = logging.getLogger(__name__)

API = "/api/v1"
STATIC_DIR = Path(__file__).resolve().parent / "static"
POLL_SECONDS = 0.1  # how often a waiting /ask looks whether its client is still there
PING_SECONDS = 1.0  # a quiet event stream sends a comment this often (and so notices a client gone)
DOCS_ASSETS = "/docs-assets"  # Swagger UI's files (public, like the page's)
PUBLIC_PATHS = ("/", "/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/favicon.ico")
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class ClientGone(SqlwrightError):
    """The client closed the connection before its answer was ready (nobody reads the response)."""


# The status of each error a handler can raise, the most specific first.
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (QueueFull, 429),
    (DeadlineExceeded, 504),
    (ClientGone, 499),
    (Cancelled, 503),  # the server is shutting down
    (UnknownDatabase, 404),
    (UnknownHistoryEntry, 404),
    (NotFound, 404),
    (StateStoreError, 503),  # the state store cannot be reached or written (not the client's doing)
    (LLMRequestFailed, 502),  # the model server failed or is unreachable
    (ModelError, 503),
    (UserError, 400),
    (QueryFailed, 400),  # the SQL a client sent failed in the database, or timed out
)


def one_line(text: object) -> str:
    return " ".join(str(text).split()) or "error"


def error_status(exc: BaseException, job: Job | None = None) -> tuple[int, str]:
    """(HTTP status, one-line detail) for an error; a job's Cancelled past its deadline is a 504."""
    if isinstance(exc, Cancelled) and job is not None and job.expired():
        exc = DeadlineExceeded("no answer within the deadline")
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status, one_line(exc)
    return 500, "internal error (see the server's log)"


class SafeJSONResponse(JSONResponse):
    """JSON that never fails to encode: cells made JSON-safe (NaN, bytes, lone surrogates) first."""

    def __init__(self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(content, status_code, {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
                                                **(headers or {})}, **kwargs)

    def render(self, content: Any) -> bytes:
        return json.dumps(json_safe(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> SafeJSONResponse:
    return SafeJSONResponse({"detail": detail}, status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    """A request validation error as one line: where, and what is wrong."""
    errors = exc.errors()
    if not errors:
        return "the request is not valid"
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ())]
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        return one_line(f"the request body is not valid JSON{': ' + str(reason) if reason else ''}")
    where = loc[0] if loc else "request"
    field = ".".join(loc[1:])
    if where == "body":
        place = f"body field {field!r}" if field else "the request body"
    elif field:
        place = f"{where} parameter {field!r}"
    else:
        place = where
    message = str(first.get("msg", "is not valid"))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return one_line(f"{place}: {message}{more}")


def _json_body(request: Request) -> None:
    """POST bodies are JSON: a form or text body (what a page on another site can send without asking) is
    refused before it is read."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
        raise HTTPException(415, "send the body as JSON, with the header Content-Type: application/json")


class _Assets(StaticFiles):
    async def get_response(self, path: str, scope: Any) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": m.ErrorResponse, "description": description}
    for status, description in ((400, "The request cannot be acted on (refused SQL, empty question, …)."),
                                (401, "A bearer token is required."),
                                (404, "Unknown database, entry, example or note."),
                                (413, "The body is over the size cap."),
                                (415, "The body is not JSON."),
                                (421, "The server does not answer to this Host."),
                                (422, "A malformed body or parameter."))
}
ASK_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    429: {"model": m.ErrorResponse, "description": "The model's queue is full; see Retry-After."},
    504: {"model": m.ErrorResponse, "description": "No answer within the server's deadline."},
}
DB_QUERY = Query(None, pattern=m.DB_NAME, description="A database name (may be omitted when there is one).")


async def _wait(job: Job, request: Request) -> Any:
    """The job's result, while watching the deadline (DeadlineExceeded) and the client (ClientGone): either
    way the job is cancelled, so the model stops."""
    future = asyncio.wrap_future(job.future)
    future.add_done_callback(_retrieved)
    try:
        while True:
            remaining = job.deadline - time.monotonic()
            if remaining <= 0 and not future.done():
                raise DeadlineExceeded("no answer within the deadline")
            done, _ = await asyncio.wait({future}, timeout=min(POLL_SECONDS, max(remaining, 0.0)))
            if done:
                try:
                    return future.result()
                except Cancelled as exc:
                    if job.expired():
                        raise DeadlineExceeded("no answer within the deadline") from exc
                    raise
            if await request.is_disconnected():
                raise ClientGone("the client went away")
    finally:
        if not future.done():
            job.cancel()


def _retrieved(future: asyncio.Future) -> None:
    """Mark a future's error as seen (it is reported elsewhere, or nobody waits for it any more)."""
    if not future.cancelled():
        future.exception()


def _mount_api_docs(api: FastAPI) -> None:
    """GET /docs: the OpenAPI docs (Swagger UI) from the files of the swagger-ui-bundle package, so that they
    render offline like the page (FastAPI's own /docs loads Swagger UI from a CDN)."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # the serve extra without it: the schema is still at /openapi.json
        return
    from fastapi.openapi.docs import get_swagger_ui_html

    api.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @api.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="sqlwright API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")


def create_app(service: Service, *, token: str | None = None, allowed_hosts: tuple[str, ...] | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> RequestGuard:
    """The server's ASGI app: the API over `service`, wrapped in the RequestGuard. `allowed_hosts` defaults
    to the loopback names (allowed_host_names("127.0.0.1"))."""
    if allowed_hosts is None:
        allowed_hosts = allowed_host_names("127.0.0.1")
    api = FastAPI(title="sqlwright", version=__version__, default_response_class=SafeJSONResponse,
                  description="Ask your databases in plain words; every statement read-only and guarded.",
                  docs_url=None, redoc_url=None)
    api.state.service = service
    deadline_text = f"{service.deadline:g} s"

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error_response(422, _validation_detail(exc))

    @api.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return _error_response(exc.status_code, one_line(exc.detail), getattr(exc, "headers", None))

    @api.exception_handler(SqlwrightError)
    async def _sqlwright(request: Request, exc: SqlwrightError) -> Response:
        status, detail = error_status(exc)
        headers = None
        if isinstance(exc, QueueFull):
            headers = {"Retry-After": str(exc.retry_after)}
        elif isinstance(exc, DeadlineExceeded):
            detail = (f"no answer within the server's deadline of {deadline_text} (the model was busy or slow): "
                      "try again, or start the server with a longer --deadline")
        if status >= 500:
            log.warning("%s %s: %d %s", request.method, request.url.path, status, detail)
        return _error_response(status, detail, headers)

    @api.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error_response(500, "internal error (see the server's log)")

    # --- no token -------------------------------------------------------------------------------------
    @api.get("/healthz", tags=["server"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/", include_in_schema=False)
    def page() -> Response:
        index = STATIC_DIR / "index.html"
        if not index.is_file():
            raise HTTPException(404, "the web page is not installed (sqlwright/serve/static/index.html)")
        return FileResponse(index, media_type="text/html; charset=utf-8",
                            headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})

    if STATIC_DIR.is_dir():  # a missing folder would make every asset request fail with a 500
        api.mount("/static", _Assets(directory=STATIC_DIR), name="static")
    _mount_api_docs(api)

    # --- server and databases ---------------------------------------------------------------------------
    @api.get(f"{API}/info", tags=["server"], response_model=m.InfoResponse, responses=ERRORS)
    def info() -> Response:
        return SafeJSONResponse(service.info(token_required=bool(token)))

    @api.get(f"{API}/databases", tags=["databases"], response_model=m.DatabasesResponse, responses=ERRORS)
    def databases() -> Response:
        return SafeJSONResponse(service.database_list())

    @api.get(f"{API}/schema", tags=["databases"], response_model=m.SchemaResponse, responses=ERRORS)
    def schema(db: str | None = DB_QUERY) -> Response:
        return SafeJSONResponse(service.schema(db))

    # --- ask -----------------------------------------------------------------------------------------
    @api.post(f"{API}/ask", tags=["ask"], response_model=m.AskResponse, responses=ASK_ERRORS,
              dependencies=[Depends(_json_body)])
    async def ask(body: m.AskRequest, request: Request) -> Response:
        """Answer a question with SQL the model writes, run read-only; recorded in the history."""
        plan = await run_in_threadpool(service.prepare_ask, body.db, body.question, evidence=body.evidence,
                                       conversation_id=body.conversation_id, summarize=body.summarize)
        job = service.submit_ask(plan)
        answer = await _wait(job, request)
        return SafeJSONResponse(await run_in_threadpool(service.record_ask, plan, answer))

    @api.post(f"{API}/ask/stream", tags=["ask"], responses={
        **ASK_ERRORS, 200: {"content": {"text/event-stream": {}}, "description":
                            "Server-sent events: schema, examples, candidate…, repair…, vote, [summary], then "
                            "answer (the JSON of /ask) or error {detail, status}."}},
              dependencies=[Depends(_json_body)])
    async def ask_stream(body: m.AskRequest) -> Response:
        """POST /ask as server-sent events: one per pipeline stage, then `answer` (or `error`)."""
        plan = await run_in_threadpool(service.prepare_ask, body.db, body.question, evidence=body.evidence,
                                       conversation_id=body.conversation_id, summarize=body.summarize)
        loop = asyncio.get_running_loop()
        pending: queue.SimpleQueue[tuple[str, dict]] = queue.SimpleQueue()
        wake = asyncio.Event()

        def on_event(kind: str, data: dict) -> None:  # in the model's thread
            if kind != "answer":  # the answer event is sent once it is recorded (with its history id)
                pending.put((kind, data))
                loop.call_soon_threadsafe(wake.set)

        job = service.submit_ask(plan, on_event=on_event)  # a full queue is a 429 before the stream starts
        future = asyncio.wrap_future(job.future)
        future.add_done_callback(_retrieved)
        future.add_done_callback(lambda _: wake.set())

        async def events() -> AsyncIterator[bytes]:
            while True:
                wake.clear()
                while not pending.empty():
                    yield event(*pending.get())
                if future.done():
                    while not pending.empty():  # put before the result was set
                        yield event(*pending.get())
                    try:
                        answer = future.result()
                    except BaseException as exc:  # noqa: BLE001  (every failure becomes an error event)
                        status, detail = error_status(exc, job)
                        if status == 504:
                            detail = f"no answer within the server's deadline of {deadline_text}"
                        yield event("error", {"detail": detail, "status": status})
                        return
                    try:
                        data = await run_in_threadpool(service.record_ask, plan, answer)
                    except Exception as exc:  # noqa: BLE001
                        status, detail = error_status(exc)
                        yield event("error", {"detail": detail, "status": status})
                        return
                    yield event("answer", data)
                    return
                remaining = job.deadline - time.monotonic()
                if remaining <= 0:
                    job.cancel()
                    yield event("error", {"detail": f"no answer within the server's deadline of {deadline_text}",
                                          "status": 504})
                    return
                try:
                    await asyncio.wait_for(wake.wait(), timeout=min(PING_SECONDS, remaining))
                except TimeoutError:
                    yield PING

        return EventStream(events(), on_close=job.cancel)

    # --- SQL a person wrote ----------------------------------------------------------------------------
    @api.post(f"{API}/sql", tags=["sql"], response_model=m.SqlResponse | m.SqlValidation, responses=ERRORS,
              dependencies=[Depends(_json_body)])
    def sql(body: m.SqlRequest) -> Response:
        """Run (or with validate_only, only check) one statement through the same guard, timeout and row
        cap as the model's SQL; a run is recorded in the history."""
        if body.validate_only:
            return SafeJSONResponse(service.validate_sql(body.db, body.sql))
        return SafeJSONResponse(service.run_sql(body.db, body.sql))

    # --- history and feedback ------------------------------------------------------------------------
    @api.get(f"{API}/history", tags=["history"], response_model=m.HistoryResponse, responses=ERRORS)
    def history(db: str | None = DB_QUERY,
                conversation_id: str | None = Query(None, pattern=m.CONVERSATION_ID),
                limit: int = Query(50, ge=1, le=500),
                before: str | None = Query(None, pattern=m.HISTORY_ID,
                                           description="An entry's id: the page of entries older than it.")
                ) -> Response:
        """What was asked and run, newest first."""
        return SafeJSONResponse(service.history(db=db, conversation_id=conversation_id, limit=limit,
                                                before=before))

    @api.get(API + "/history/{entry_id}.csv", tags=["history"], responses={
        **ERRORS, 200: {"content": {"text/csv": {}}, "description": "The entry's columns and rows."}})
    def history_csv(entry_id: str = PathParam(..., pattern=m.HISTORY_ID)) -> Response:
        text = service.history_csv(entry_id)
        return PlainTextResponse(text, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="sqlwright-{entry_id}.csv"',
            "X-Content-Type-Options": "nosniff"})

    @api.get(API + "/history/{entry_id}", tags=["history"], response_model=m.HistoryEntryModel,
             responses=ERRORS)
    def history_entry(entry_id: str = PathParam(..., pattern=m.HISTORY_ID)) -> Response:
        return SafeJSONResponse(service.history_entry(entry_id).to_dict())

    @api.post(f"{API}/feedback", tags=["history"], response_model=m.FeedbackResponse, responses=ERRORS,
              dependencies=[Depends(_json_body)])
    def feedback(body: m.FeedbackRequest) -> Response:
        """Thumbs up: the answer's question and SQL become an example. Thumbs down with `sql`: that SQL is
        checked (guard, then run) and stored as the question's example."""
        return SafeJSONResponse(service.feedback(body.id, body.rating, sql=body.sql, comment=body.comment))

    # --- examples and notes ------------------------------------------------------------------------------
    @api.get(f"{API}/examples", tags=["examples"], response_model=m.ExamplesResponse, responses=ERRORS)
    def examples(db: str | None = DB_QUERY) -> Response:
        return SafeJSONResponse(service.examples(db))

    @api.post(f"{API}/examples", tags=["examples"], response_model=m.ExampleAdded, responses=ERRORS,
              dependencies=[Depends(_json_body)])
    def add_example(body: m.ExampleRequest) -> Response:
        """Teach an example; its SQL must pass the guard and run, as with `sqlwright examples add`."""
        return SafeJSONResponse(service.add_example(body.db, body.question, body.sql))

    @api.delete(API + "/examples/{example_id}", tags=["examples"], response_model=m.Removed, responses=ERRORS)
    def remove_example(example_id: int, db: str | None = DB_QUERY) -> Response:
        return SafeJSONResponse(service.remove_example(db, example_id))

    @api.get(f"{API}/notes", tags=["examples"], response_model=m.NotesResponse, responses=ERRORS)
    def notes(db: str | None = DB_QUERY) -> Response:
        return SafeJSONResponse(service.notes(db))

    @api.post(f"{API}/notes", tags=["examples"], response_model=m.NoteAdded, responses=ERRORS,
              dependencies=[Depends(_json_body)])
    def add_note(body: m.NoteRequest) -> Response:
        return SafeJSONResponse(service.add_note(body.db, body.text))

    @api.delete(API + "/notes/{note_id}", tags=["examples"], response_model=m.Removed, responses=ERRORS)
    def remove_note(note_id: int, db: str | None = DB_QUERY) -> Response:
        return SafeJSONResponse(service.remove_note(db, note_id))

    return RequestGuard(api, token=token, allowed_hosts=allowed_hosts, max_body_bytes=max_body_bytes,
                        public_paths=PUBLIC_PATHS, public_prefixes=("/static/", f"{DOCS_ASSETS}/"))
