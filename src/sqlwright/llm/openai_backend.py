"""The OpenAI-compatible backend: any server speaking /v1/chat/completions (vLLM, SGLang, Ollama, llama.cpp
server, llama-cpp-python's server, OpenAI itself), through the official ``openai`` client.

The n samples of one call go out as one request with ``n`` (the server shares the prompt prefill); servers that
ignore ``n`` return fewer choices and the rest are made up with further requests.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, ClassVar

import httpx

from sqlwright.errors import ConfigError, LLMRequestFailed
from sqlwright.llm.base import Completion, Message

log = logging.getLogger(__name__)

# Servers need some key in the Authorization header even when they check none (llama.cpp, vLLM, Ollama).
_PLACEHOLDER_KEY = "sk-no-key-required"
_CHARS_PER_TOKEN = 3.5  # rough ratio for code/English with BPE tokenizers, used when the server can't count


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate of the tokens in `text`."""
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


class OpenAILLM:
    """A chat model behind an OpenAI-compatible HTTP server."""

    supports_n: ClassVar[bool] = True
    supports_logprobs: ClassVar[bool] = True

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 2,
    ) -> None:
        import openai  # imported here so that `import sqlwright.llm` stays light

        if not base_url:
            raise ConfigError("an openai: model needs base_url (SQLWRIGHT_BASE_URL), e.g. http://127.0.0.1:8000/v1")
        self.model = model
        self.name = f"openai:{model}"
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        # The client retries connection errors, 408/409/429 and 5xx with backoff; we convert what is left.
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key or _PLACEHOLDER_KEY, timeout=timeout, max_retries=retries
        )
        self._logprobs = True  # switched off once if the server rejects the logprobs option
        self._tokenize_route: str | None | bool = False  # False: not probed yet; None: server can't tokenize

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
    ) -> list[Completion]:
        """Return `n` completions, asking for all of them in one request where the server honours `n`."""
        if n < 1:
            return []
        out: list[Completion] = []
        while len(out) < n:
            # Follow-up requests get a shifted seed: the same seed would repeat the samples already drawn.
            request_seed = None if seed is None else seed + len(out)
            batch = self._request(messages, n - len(out), temperature, max_tokens, stop, request_seed)
            if not batch:
                raise LLMRequestFailed(f"{self.base_url}: the server returned no choices for model {self.model}")
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
    ) -> list[Completion]:
        import openai

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
        if self._logprobs:
            kwargs["logprobs"] = True
        started = time.perf_counter()
        try:
            try:
                response = self._client.chat.completions.create(**kwargs)
            except openai.BadRequestError as exc:
                if not kwargs.get("logprobs") or "logprob" not in str(exc).lower():
                    raise
                # Some servers refuse logprobs on chat: remember it and ask again without.
                log.info("%s does not support logprobs; continuing without", self.base_url)
                self._logprobs = False
                kwargs.pop("logprobs")
                response = self._client.chat.completions.create(**kwargs)
        except openai.APITimeoutError as exc:
            raise LLMRequestFailed(
                f"{self.base_url}: request timed out after {self.timeout:g}s ({self.retries} retries); "
                "raise request_timeout (SQLWRIGHT_REQUEST_TIMEOUT)"
            ) from exc
        except openai.APIConnectionError as exc:
            reason = exc.__cause__ or exc
            raise LLMRequestFailed(
                f"{self.base_url}: cannot reach the server ({self.retries} retries): {reason}"
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMRequestFailed(f"{self.base_url}: HTTP {exc.status_code}: {_status_reason(exc)}") from exc
        except openai.OpenAIError as exc:
            raise LLMRequestFailed(f"{self.base_url}: bad response: {exc}") from exc
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

    # --- tokens ---------------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens in `text`: the server's tokenizer when it has a tokenize route, else an estimate."""
        if self._tokenize_route is False:
            self._tokenize_route = self._probe_tokenize()
        if self._tokenize_route:
            counted = self._server_count(self._tokenize_route, text)
            if counted is not None:
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
            reply = httpx.post(self._server_root() + route, json=body, timeout=min(10.0, self.timeout))
            if reply.status_code != 200:
                return None
            tokens = reply.json().get("tokens")
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return len(tokens) if isinstance(tokens, list) else None


def _token_logprobs(choice: Any) -> list[float]:
    """The sampled tokens' log-probabilities of one choice, or [] when the server sent none."""
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        return []
    return [float(t.logprob) for t in content if getattr(t, "logprob", None) is not None]


def _status_reason(exc: Any) -> str:
    """A short reason from an HTTP error reply (the server's error message when it sent one)."""
    body = getattr(exc, "body", None)
    message = None
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else body.get("message") or error
    text = str(message or getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else "no reason given"
