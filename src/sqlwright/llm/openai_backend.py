"""The OpenAI-compatible backend: any server speaking /v1/chat/completions (vLLM, SGLang, Ollama, llama.cpp
server, llama-cpp-python's server, OpenAI itself), through the official ``openai`` client.

The n samples of one call go out as one request with ``n`` (the server shares the prompt prefill); servers that
ignore ``n`` return fewer choices and the rest are made up with further requests.

Timeouts. A completion is not streamed, so the server sends its first byte only when the whole answer is
written: the read timeout of a completion is the generation deadline (``request_timeout``), and a server that
accepts connections but never answers cannot be told from a slow one by waiting on it. So before its first
request, and after any failure, the backend checks that the server answers ``GET /models`` (any HTTP status
will do) within ``min(request_timeout, LIVENESS_TIMEOUT)``: a hung server is reported in seconds, while a working
one keeps the whole ``request_timeout`` to generate. Timeouts are never retried (a retry would wait as long
again); dropped connections and HTTP 408/409/429/5xx are, ``retries`` times with backoff.

Rate limits. A ``Retry-After`` header (seconds, an HTTP date, or ``retry-after-ms``) is waited out exactly (plus a
little jitter), up to ``MAX_RETRY_AFTER`` seconds; a server asking for longer gets an error saying so rather than
an early retry that would only be refused again. The wait holds back every thread that shares the backend, not
only the one that was told. A 429 is retried at least ``retries`` times and for as long as the waits fit in
``request_timeout``: a server under load may ask several times before it takes the request.

Threads. One backend may serve several threads at once (``sqlwright eval --concurrency N``): the HTTP client
pools connections, and the first contact (liveness check, tokenize probe) is made by one thread while the others
wait for its outcome, so that N threads starting together send one check, not N, and none of them checks while
the others' completions hold the server (llama-cpp-python's server answers ``GET /models`` only between
completions).
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import math
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from sqlwright.config import LIVENESS_TIMEOUT
from sqlwright.errors import (
    ConfigError,
    LLMRequestFailed,
    ModelAPIKeyRefused,
    ModelNotServed,
    ModelServerNotAnswering,
    ModelServerUnreachable,
)
from sqlwright.llm.base import Completion, Message, raise_if_stopped

log = logging.getLogger(__name__)

# Servers need some key in the Authorization header even when they check none (llama.cpp, vLLM, Ollama).
_PLACEHOLDER_KEY = "sk-no-key-required"
_CHARS_PER_TOKEN = 3.5  # rough ratio for code/English with BPE tokenizers, used when the server can't count
# The statuses openai-python itself retries: timeouts and conflicts on the server's side, rate limits, 5xx.
_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_BACKOFF = 8.0  # seconds between two attempts at most, when the server did not say (no Retry-After)
MAX_RETRY_AFTER = 60.0  # seconds of a server's Retry-After that are waited out; a longer one is an error
_JITTER = 0.1  # waits are stretched by up to this fraction, so that threads told alike do not retry in a burst
_TOKEN_CACHE_SIZE = 1024  # texts whose server token count is remembered (schemas, asked again per thread)
_REASON_CHARS = 200  # a server's error text is cut to this many characters: one line of a terminal or log
_ERRNO_PREFIX = re.compile(r"^\[Errno -?\d+\]\s*")
_HTML_TAG = re.compile(r"<[^>]*>")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate of the tokens in `text`."""
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


class OpenAILLM:
    """A chat model behind an OpenAI-compatible HTTP server.

    `timeout` is the generation deadline of one request (request_timeout), `connect_timeout` the time the
    server has to accept a connection and take the request; `retries` applies to dropped connections and
    retryable HTTP statuses, never to timeouts."""

    supports_n: ClassVar[bool] = True
    supports_logprobs: ClassVar[bool] = True
    # Several threads may call complete() and count_tokens() at once (the server does the work).
    supports_concurrency: ClassVar[bool] = True

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 2,
        connect_timeout: float = 5.0,
    ) -> None:
        import openai  # imported here so that `import sqlwright.llm` stays light

        if not base_url:
            raise ConfigError("an openai: model needs base_url (SQLWRIGHT_BASE_URL), e.g. http://127.0.0.1:8000/v1")
        self.model = model
        self.name = f"openai:{model}"
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self._has_api_key = bool(api_key)
        # The client's own retries are off: it retries timeouts too, which multiplies a hung server's wait.
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key or _PLACEHOLDER_KEY,
            timeout=openai.Timeout(**self._limits(self.timeout)), max_retries=0,
        )
        self._answering = False  # the server answered since the last failure; checked before a request if not
        self._logprobs = True  # switched off once if the server rejects the logprobs option
        self._tokenize_route: str | None | bool = False  # False: not probed yet; None: server can't tokenize
        # Shared by the threads that use this backend: one first contact at a time, the server's Retry-After
        # (no request leaves before this monotonic time), and the token counts the server gave.
        self._contact_lock = threading.Lock()
        self._shared_lock = threading.Lock()
        self._pause_until = 0.0
        self._token_counts: OrderedDict[bytes, int] = OrderedDict()  # sha256 of a text -> its tokens

    # --- timeouts -------------------------------------------------------------------------------
    def _limits(self, read: float) -> dict[str, float]:
        """Keyword arguments of an httpx Timeout (the openai client's own httpx flavour, or httpx)."""
        c = self.connect_timeout
        return {"connect": c, "write": c, "pool": c, "read": read}

    @property
    def _liveness_read(self) -> float:
        return min(self.timeout, LIVENESS_TIMEOUT)

    @property
    def silent_server_deadline(self) -> float:
        """Seconds, at most, before a server that accepts connections but never answers is reported: the
        liveness check's connect, write and read limits (it is not retried). A completion's own read limit,
        request_timeout, is its generation deadline: not streamed, it sends no byte before the whole answer."""
        return 2 * self.connect_timeout + self._liveness_read

    # --- completion ------------------------------------------------------------------------------
    def complete(
        self,
        messages: list[Message],
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 512,
        stop: list[str] | None = None,
        seed: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        """Return `n` completions, asking for all of them in one request where the server honours `n`.
        `should_stop` is polled before each request (retries included) and during waits between them; a
        request in flight runs to its end (the reply is not streamed)."""
        if n < 1:
            return []
        out: list[Completion] = []
        while len(out) < n:
            # Follow-up requests get a shifted seed: the same seed would repeat the samples already drawn.
            request_seed = None if seed is None else seed + len(out)
            batch = self._request(messages, n - len(out), temperature, max_tokens, stop, request_seed,
                                  should_stop)
            if not batch:
                raise LLMRequestFailed(
                    f"The model server ({self.base_url}) returned no choices for model {self.model!r}"
                )
            if len(batch) < n - len(out):
                log.debug("server returned %d of %d choices; requesting the rest", len(batch), n - len(out))
            out.extend(batch)
        return out[:n]

    def _request(
        self,
        messages: list[Message],
        n: int,
        temperature: float,
        max_tokens: int,
        stop: list[str] | None,
        seed: int | None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "n": n,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if stop:
            kwargs["stop"] = stop
        if seed is not None:
            kwargs["seed"] = seed
        started = time.perf_counter()
        response = self._create_with_retries(kwargs, should_stop)
        elapsed = time.perf_counter() - started
        choices = list(response.choices or [])
        usage = response.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        total_completion = usage.completion_tokens if usage else None
        out = []
        for choice in choices:
            text = (choice.message.content or "") if choice.message else ""
            token_logprobs = _token_logprobs(choice)
            if token_logprobs:
                completion_tokens = len(token_logprobs)
            elif len(choices) == 1 and total_completion is not None:
                completion_tokens = total_completion
            else:
                completion_tokens = self.count_tokens(text) if text else 0
            out.append(
                Completion(
                    text=text,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    mean_logprob=sum(token_logprobs) / len(token_logprobs) if token_logprobs else None,
                    finish_reason=choice.finish_reason,
                    # One request serves every choice: its wall time is shared out so the sum is the total.
                    seconds=elapsed / max(1, len(choices)),
                )
            )
        return out

    def _create_with_retries(self, kwargs: dict[str, Any],
                             should_stop: Callable[[], bool] | None = None) -> Any:
        """The server's ChatCompletion for `kwargs`; every failure converted to an LLMRequestFailed
        (`Cancelled` when `should_stop` says so before an attempt)."""
        import openai

        raise_if_stopped(should_stop)
        if not self._answering:
            self._first_contact()
        attempt = 0
        started = time.monotonic()
        while True:
            self._wait_for_pause(should_stop)
            raise_if_stopped(should_stop)
            try:
                response = self._create(kwargs)
                self._answering = True
                return response
            except openai.APITimeoutError as exc:
                self._answering = False
                if _caused_by(exc, "ConnectTimeout"):
                    raise self._connection_error(exc) from exc
                # The whole request_timeout went by: hung (reported as such by the check) or only slow.
                # Neither is retried, since a retry would wait as long again.
                self._check_answering()
                raise LLMRequestFailed(
                    f"The model server ({self.base_url}) did not finish the completion within {self.timeout:g}s: "
                    "raise request_timeout (--request-timeout, SQLWRIGHT_REQUEST_TIMEOUT) or ask for fewer "
                    "candidates"
                ) from exc
            except openai.APIConnectionError as exc:
                self._answering = False
                if attempt >= self.retries:
                    raise self._connection_error(exc, attempts=attempt + 1) from exc
                delay = _backoff(attempt)
            except openai.APIStatusError as exc:
                if exc.status_code not in _RETRY_STATUSES:
                    raise self._status_error(exc) from exc
                told = retry_after_seconds(getattr(exc, "response", None))
                if told is not None and told > MAX_RETRY_AFTER:
                    raise self._status_error(exc, f"; it asks to retry after {told:.0f}s, longer than sqlwright "
                                                  f"waits ({MAX_RETRY_AFTER:g}s)") from exc
                delay = _backoff(attempt) if told is None else told * (1 + random.uniform(0, _JITTER))
                # A 429 says "not now", not "broken": retried while the waits fit in the request's deadline.
                patient = exc.status_code == 429 and time.monotonic() - started + delay <= self.timeout
                if attempt >= self.retries and not patient:
                    detail = ""
                    if exc.status_code == 429:
                        detail = (f" ({attempt + 1} attempts in {time.monotonic() - started:.0f}s): send fewer "
                                  "requests at once (eval --concurrency) or raise request_timeout")
                    raise self._status_error(exc, detail) from exc
                if told is not None:
                    self._pause(delay)
            except openai.OpenAIError as exc:
                raise LLMRequestFailed(
                    f"The model server ({self.base_url}) sent a bad response: {_one_line(exc)}"
                ) from exc
            attempt += 1
            log.info("%s: retrying in %.1fs (attempt %d)", self.base_url, delay, attempt + 1)
            _sleep(delay, should_stop)

    def _pause(self, seconds: float) -> None:
        """Hold back every thread's next request for `seconds` (the server's Retry-After)."""
        with self._shared_lock:
            self._pause_until = max(self._pause_until, time.monotonic() + seconds)

    def _wait_for_pause(self, should_stop: Callable[[], bool] | None = None) -> None:
        while (left := self._pause_until - time.monotonic()) > 0:
            _sleep(left, should_stop)

    def _create(self, kwargs: dict[str, Any]) -> Any:
        import openai

        if not self._logprobs:
            return self._client.chat.completions.create(**kwargs)
        try:
            return self._client.chat.completions.create(**kwargs, logprobs=True)
        except openai.BadRequestError as exc:
            if "logprob" not in str(exc).lower():
                raise
        # Some servers refuse logprobs on chat: remember it and ask again without.
        log.info("%s does not support logprobs; continuing without", self.base_url)
        self._logprobs = False
        return self._client.chat.completions.create(**kwargs)

    def _first_contact(self) -> None:
        """Check the server answers, once for all threads: a thread that comes while another checks waits for
        that check and uses its outcome (raised again if it failed: each thread's request fails alike)."""
        with self._contact_lock:
            if not self._answering:
                self._check_answering()

    def _check_answering(self) -> None:
        """Return when the server answers GET /models with any HTTP status; raise ModelServerUnreachable or
        ModelServerNotAnswering (not retried: a dead or hung address is the user's to fix) when it does not."""
        import openai

        quick = self._client.with_options(timeout=openai.Timeout(**self._limits(self._liveness_read)),
                                          max_retries=0)
        try:
            quick.models.with_raw_response.list()
        except openai.APIStatusError:
            pass  # an error status is an answer: the server is there (the request says what is wrong)
        except openai.APIConnectionError as exc:
            raise self._connection_error(exc, liveness=True) from exc
        self._answering = True

    # --- errors ---------------------------------------------------------------------------------
    def _connection_error(self, exc: Exception, *, liveness: bool = False, attempts: int = 1) -> LLMRequestFailed:
        """The error for a request that got no HTTP answer. A wrong address (refused, unknown host, nothing
        accepting) and a server that accepts but never answers (often a port where something else listens,
        or a stopped process) are the user's to fix: exit code 2, as for an unreachable database. A
        connection dropped after the server had the request is a failure: exit code 1."""
        cause = exc.__cause__
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        if _caused_by(exc, "ConnectTimeout"):
            return ModelServerUnreachable(
                f"Could not connect to the model server ({self.base_url}): no connection within "
                f"{self.connect_timeout:g}s (connect_timeout: --connect-timeout, SQLWRIGHT_CONNECT_TIMEOUT)"
            )
        if _caused_by(exc, "TimeoutException"):
            waited = self._liveness_read if liveness else self.timeout
            return ModelServerNotAnswering(
                f"The model server ({self.base_url}) accepted the connection but did not answer within "
                f"{waited:g}s: is it the right address, and is the server running?"
            )
        if cause is not None and _caused_by(exc, "ConnectError"):
            return ModelServerUnreachable(
                f"Could not connect to the model server ({self.base_url}){tries}: {_connect_reason(cause)}"
            )
        return LLMRequestFailed(
            f"The model server ({self.base_url}) closed the connection without an answer{tries}: "
            f"{_connect_reason(cause or exc)}"
        )

    def _status_error(self, exc: Any, detail: str = "") -> LLMRequestFailed:
        status = exc.status_code
        reason = _status_reason(exc)
        if status in (401, 403):
            what = "refused the API key" if self._has_api_key else "needs an API key"
            return ModelAPIKeyRefused(
                f"The model server ({self.base_url}) {what} (HTTP {status}: {reason}): set SQLWRIGHT_API_KEY"
            )
        if status == 404:
            return ModelNotServed(
                f"The model server ({self.base_url}) does not know model {self.model!r} (HTTP 404: {reason}): "
                "check the name after 'openai:' and that the URL is the API's root (most end in /v1)"
            )
        return LLMRequestFailed(f"The model server ({self.base_url}) answered HTTP {status}: {reason}{detail}")

    # --- tokens ---------------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens in `text`: the server's tokenizer when it has a tokenize route, else an estimate.

        The first call is the first contact with the server: it raises ModelServerUnreachable or
        ModelServerNotAnswering when the server is not there, as a completion would."""
        if self._tokenize_route is False:
            with self._contact_lock:
                if self._tokenize_route is False:
                    if not self._answering:
                        self._check_answering()
                    self._tokenize_route = self._probe_tokenize()
        if self._tokenize_route:
            # Remembered: every thread's engine counts the same schemas, and a count must not change with the
            # server's load (a tokenize request that times out falls back to the estimate).
            key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
            with self._shared_lock:
                known = self._token_counts.get(key)
                if known is not None:
                    self._token_counts.move_to_end(key)
                    return known
            counted = self._server_count(self._tokenize_route, text)
            if counted is not None:
                with self._shared_lock:
                    self._token_counts[key] = counted
                    while len(self._token_counts) > _TOKEN_CACHE_SIZE:
                        self._token_counts.popitem(last=False)
                return counted
        return estimate_tokens(text)

    def _server_root(self) -> str:
        root = self.base_url
        return root[: -len("/v1")] if root.endswith("/v1") else root

    def _probe_tokenize(self) -> str | None:
        """Find the server's tokenize route (llama-cpp-python: /extras/tokenize; llama.cpp, vLLM: /tokenize)."""
        for route in ("/extras/tokenize", "/tokenize"):
            if self._server_count(route, "SELECT 1") is not None:
                log.debug("%s counts tokens at %s", self.base_url, route)
                return route
        return None

    def _server_count(self, route: str, text: str) -> int | None:
        # The three tokenize APIs name the text differently; send all three names, read "tokens".
        body = {"model": self.model, "input": text, "content": text, "prompt": text}
        try:
            reply = httpx.post(self._server_root() + route, json=body,
                               timeout=httpx.Timeout(**self._limits(self._liveness_read)))
            if reply.status_code != 200:
                return None
            tokens = reply.json().get("tokens")
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return len(tokens) if isinstance(tokens, list) else None


_STOP_POLL = 0.1  # seconds between two polls of should_stop while waiting to retry


def _sleep(seconds: float, should_stop: Callable[[], bool] | None) -> None:
    """Sleep `seconds`, raising `Cancelled` as soon as `should_stop` says so."""
    if should_stop is None:
        time.sleep(seconds)
        return
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        raise_if_stopped(should_stop)
        time.sleep(min(left, _STOP_POLL))
    raise_if_stopped(should_stop)


def _caused_by(exc: BaseException, name: str) -> bool:
    """Whether `exc` was raised from an httpx error of class `name` (or a subclass). By name, since the
    openai client may run on its own httpx flavour (openai 3 uses httpx2), whose classes are not httpx's."""
    cause = exc.__cause__
    return cause is not None and any(klass.__name__ == name for klass in type(cause).__mro__)


def _backoff(attempt: int) -> float:
    """Seconds before retry `attempt` + 1 when the server did not say: exponential, jittered, capped."""
    return min(_MAX_BACKOFF, 0.5 * 2**attempt) * (1 + random.uniform(0, _JITTER))


def retry_after_seconds(response: Any, now: datetime | None = None) -> float | None:
    """The wait a response asks for, in seconds (>= 0), or None when it asks for none it can be read.

    ``retry-after-ms`` (OpenAI's, milliseconds) first, then ``Retry-After`` as RFC 9110 allows it: a number of
    seconds or an HTTP date (a date already past means now)."""
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    text = (headers.get("retry-after") or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return value if math.isfinite(value) and value >= 0 else None


def _token_logprobs(choice: Any) -> list[float]:
    """The sampled tokens' log-probabilities of one choice, or [] when the server sent none."""
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        return []
    return [float(t.logprob) for t in content if getattr(t, "logprob", None) is not None]


def _one_line(text: object, limit: int = _REASON_CHARS) -> str:
    """`text` on one line (blanks collapsed), cut to `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _connect_reason(exc: BaseException) -> str:
    """'connection refused', 'name or service not known', …: the OS's reason without its errno."""
    text = _ERRNO_PREFIX.sub("", _one_line(exc)) or type(exc).__name__
    return text[:1].lower() + text[1:]


def _status_reason(exc: Any) -> str:
    """The server's own error text from an HTTP error reply, on one line: the message of an OpenAI-style
    {"error": {"message": …}} (the client has already unwrapped "error"), FastAPI's {"detail": …}, or the
    plain text (an HTML page's tags removed)."""
    body = getattr(exc, "body", None)
    message: object = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail")
        message = message or body.get("message") or body.get("detail") or error or body.get("msg")
    elif isinstance(body, str):
        message = body
    if not message:
        response = getattr(exc, "response", None)
        message = getattr(response, "text", None) or getattr(exc, "message", None) or exc
    text = str(message)
    if "<" in text and ">" in text:
        text = _HTML_TAG.sub(" ", text)
    return _one_line(text) or "no reason given"
