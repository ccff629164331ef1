"""The embedded backend: a GGUF model run in-process by llama-cpp-python.

Prefix sharing. llama-cpp-python's ``Llama.generate`` compares the new prompt with the tokens already in the
KV cache and decodes only the part that differs. So the n samples of one request pay one prompt prefill: the
first sample decodes the whole prompt, every later sample finds the prompt in the cache and replays only its
last token (to refresh the logits) before sampling with its own seed. Across requests the same mechanism keeps
the longest shared prefix, e.g. the system prompt and schema of consecutive questions on one database.
(Measured: ``save_state``/``load_state`` would copy the whole KV cache per sample and gains nothing here.)

Log-probabilities. Sampling runs inside llama.cpp's sampler chain, so the Python side never sees the
probabilities it used. After each sampled token we read the logits of the position it was sampled from
(``llama_get_logits_ith(ctx, -1)``, still valid until the next decode) and take the token's log-softmax:
the model's own distribution at temperature 1, as OpenAI's ``logprobs`` reports it. This costs one pass over
the vocabulary per token (well under a millisecond) instead of ``logits_all=True`` on every prompt token.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sqlwright.errors import LLMRequestFailed, ModelLoadFailed, ModelMissing
from sqlwright.llm.base import Completion, Message

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "llama-cpp-python is not installed (needed for embedded models): pip install 'sqlwright[embedded]', "
    "or run ./sqlwright.sh, which builds it"
)

# Sampling filters for temperature > 0 (llama.cpp's defaults): drop the long tail, keep diversity.
_TOP_K = 40
_TOP_P = 0.95
_MIN_P = 0.05


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ModelMissing(INSTALL_HINT) from exc
    return llama_cpp


def _format_chatml(messages: list[Message]) -> str:
    """ChatML (Qwen's format), used when the GGUF carries no chat template."""
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Silence llama.cpp's C-level stderr chatter (load messages, errors of a bad file) unless verbose."""
    if not enabled:
        yield
        return
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr(disable=False):
        yield


class EmbeddedLLM:
    """A chat model running in this process from a GGUF file (llama.cpp on the CPU)."""

    supports_n: ClassVar[bool] = True  # the n samples share one prompt prefill
    supports_logprobs: ClassVar[bool] = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        llama_cpp = _import_llama_cpp()
        self.model_path = Path(model_path)
        self.name = self.model_path.stem
        self.seed = seed
        self.verbose = verbose
        if not self.model_path.is_file():
            raise ModelMissing(f"model file not found: {self.model_path}")
        threads = n_threads or os.cpu_count() or 1
        started = time.perf_counter()
        try:
            with _quiet(not verbose):
                self._llama = llama_cpp.Llama(
                    model_path=str(self.model_path),
                    n_ctx=n_ctx,
                    n_threads=threads,
                    n_threads_batch=threads,
                    seed=seed,
                    verbose=verbose,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadFailed(
                f"cannot load model {self.model_path}: not a valid GGUF file, or not enough memory ({exc})"
            ) from exc
        self.n_ctx = self._llama.n_ctx()
        self._vocab = llama_cpp.llama_model_get_vocab(self._llama.model)
        self._n_vocab = self._llama.n_vocab()
        self._formatter = self._chat_formatter()
        # One Llama object holds one KV cache: requests from several threads take turns.
        self._lock = threading.Lock()
        self.last_prefill_tokens = 0  # prompt tokens llama.cpp decoded during the last complete() call
        log.info("loaded %s (n_ctx=%d, threads=%d) in %.1fs", self.model_path.name, self.n_ctx, threads,
                 time.perf_counter() - started)

    # --- prompt ---------------------------------------------------------------------------------
    def _chat_formatter(self) -> Any:
        """The model's own chat template from the GGUF metadata, or None to fall back to ChatML."""
        template = self._llama.metadata.get("tokenizer.chat_template")
        if not template:
            log.warning("%s has no chat template; using ChatML", self.model_path.name)
            return None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def token_text(token: int) -> str:
            return self._llama._model.token_get_text(token) if token >= 0 else ""

        return Jinja2ChatFormatter(
            template=template,
            eos_token=token_text(self._llama.token_eos()),
            bos_token=token_text(self._llama.token_bos()),
        )

    def format_prompt(self, messages: list[Message]) -> str:
        """The prompt text the model sees for `messages` (its chat template, ending at the assistant turn)."""
        if self._formatter is None:
            return _format_chatml(messages)
        return self._formatter(messages=messages).prompt

    def _prompt_tokens(self, messages: list[Message]) -> list[int]:
        # The template already renders any BOS token, so none is added; special=True parses <|im_start|> etc.
        return self._llama.tokenize(self.format_prompt(messages).encode("utf-8"), add_bos=False, special=True)

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
        """Return `n` completions of `messages`; they share one prompt prefill.

        Sample i is drawn with seed ``seed + i`` (default: the model's seed), so a call is reproducible.
        """
        if n < 1:
            return []
        llama_cpp = _import_llama_cpp()
        prompt = self._prompt_tokens(messages)
        room = self.n_ctx - len(prompt)
        if room <= 0:
            raise LLMRequestFailed(
                f"the prompt takes {len(prompt)} tokens but the context holds {self.n_ctx}; "
                "raise n_ctx (SQLWRIGHT_N_CTX) or shorten the schema"
            )
        limit = min(max_tokens, room)
        base_seed = self.seed if seed is None else seed
        with self._lock:
            llama_cpp.llama_perf_context_reset(self._llama.ctx)
            out = [
                self._sample(prompt, temperature, limit, stop or [], base_seed + i) for i in range(n)
            ]
            self.last_prefill_tokens = int(llama_cpp.llama_perf_context(self._llama.ctx).n_p_eval)
        return out

    def _sample(self, prompt: list[int], temperature: float, max_tokens: int, stop: list[str],
                seed: int) -> Completion:
        """Draw one completion; `generate` reuses the cached prompt prefix (see the module docstring)."""
        llama_cpp = _import_llama_cpp()
        llama = self._llama
        started = time.perf_counter()
        llama.set_seed(seed)
        tokens: list[int] = []
        logprobs: list[float] = []
        text = ""
        finish_reason = "length"
        longest_stop = max((len(s) for s in stop), default=0)
        checked = 0
        if max_tokens <= 0:
            return Completion("", len(prompt), 0, None, finish_reason, time.perf_counter() - started)
        generator = llama.generate(
            prompt,
            temp=max(temperature, 0.0),
            top_k=_TOP_K,
            top_p=_TOP_P,
            min_p=_MIN_P,
            repeat_penalty=1.0,
        )
        try:
            for token in generator:
                logprobs.append(self._last_logprob(token))
                if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    finish_reason = "stop"
                    break
                tokens.append(token)
                # Decoding the whole completion each step keeps multi-byte characters intact; it is cheap
                # next to a forward pass.
                text = llama.detokenize(tokens, prev_tokens=prompt).decode("utf-8", errors="ignore")
                if stop:
                    # Only the new text (plus a stop's length back) can hold a stop string not seen before.
                    start = max(0, checked - longest_stop)
                    hit = _first_stop(text[start:], stop)
                    if hit is not None:
                        text = text[: start + hit]
                        finish_reason = "stop"
                        break
                    checked = len(text)
                if len(tokens) >= max_tokens:
                    break
        finally:
            generator.close()
        return Completion(
            text=text,
            prompt_tokens=len(prompt),
            completion_tokens=len(logprobs),
            mean_logprob=float(np.mean(logprobs)) if logprobs else None,
            finish_reason=finish_reason,
            seconds=time.perf_counter() - started,
        )

    def _last_logprob(self, token: int) -> float:
        """log p(token) under the logits it was just sampled from (valid until the next decode)."""
        llama_cpp = _import_llama_cpp()
        pointer = llama_cpp.llama_get_logits_ith(self._llama.ctx, -1)
        logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).astype(np.float64)
        top = logits.max()
        return float(logits[token] - top - np.log(np.exp(logits - top).sum()))

    # --- tokens and lifecycle ----------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in the model's tokenizer."""
        if not text:
            return 0
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def reset_cache(self) -> None:
        """Forget the cached prompt prefix (the next request pays a full prefill)."""
        with self._lock:
            self._llama.reset()

    def close(self) -> None:
        """Free the model and its context."""
        llama = getattr(self, "_llama", None)
        if llama is not None:
            llama.close()
            self._llama = None


def _first_stop(text: str, stop: list[str]) -> int | None:
    """The index where the earliest stop string starts in `text`, or None."""
    hits = [i for s in stop if s and (i := text.find(s)) >= 0]
    return min(hits) if hits else None
