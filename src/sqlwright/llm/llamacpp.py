"""The embedded backend: a GGUF model run in-process by llama-cpp-python.

Batched sampling. The n samples of one request are decoded together: the prompt is evaluated once into
KV-cache sequence 0, its cells are shared with sequences 1..n-1 (``llama_memory_seq_cp``; in a unified KV
cache that only tags the same cells with more sequence ids, no copy), and then every step puts the next token
of each still-running sample into one batch and calls ``llama_decode`` once. On a CPU, decoding is bound by
reading the weights from memory, and one pass over the weights serves the whole batch, so n samples cost
little more than one. ``Llama``'s own context cannot hold several sequences (its constructor has no
``n_seq_max``/``kv_unified`` and drops unknown keyword arguments), so the ``Llama`` object only supplies the
weights, tokenizer and metadata (with a tiny unused context) and generation runs in a context of our own,
made with the low-level API from the loaded model.

Prefix sharing across requests. Sequence 0 keeps the last request's prompt after the call. The next request
keeps the longest common prefix of the two prompts and evaluates only the rest, e.g. everything after the
system prompt and schema of consecutive questions on one database. The logits after the last prompt token are
kept too, so the same prompt again (the pipeline's greedy call, then its samples) evaluates nothing.

Sampling runs in numpy on views of llama.cpp's logits rows (no copy of the vocabulary per step): greedy is
an argmax; otherwise llama.cpp's default chain — top-k 40, top-p 0.95, min-p 0.05 (on the model's own
distribution), then the temperature — and a draw from a numpy Generator seeded from (seed, i) for sample i,
so a call is reproducible. Each token's log-probability is taken under the model's distribution at
temperature 1 (as OpenAI's ``logprobs`` reports it); ``mean_logprob`` averages them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
# Candidates for top-k are the tokens within this many nats of the best one: a token further down has
# probability < 2e-9 of the best, so leaving it out of top-p's normaliser is below float32 resolution, and
# min-p (p >= 0.05 of the best, i.e. within 3 nats) would drop it anyway. Saves a full-vocabulary partition.
_CANDIDATE_WINDOW = 20.0
_MIN_P_WINDOW = math.log(_MIN_P)

_PROMPT_BATCH = 512  # prompt tokens per llama_decode call (and the context's n_batch/n_ubatch)
DEFAULT_MAX_PARALLEL = 8  # sequences decoded together; more samples run in rounds sharing the prefill


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


def _common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class _Sequence:
    """One sample being decoded: its KV sequence id, random stream and output so far."""

    seq_id: int
    rng: np.random.Generator | None
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text_bytes: bytearray = field(default_factory=bytearray)
    text: str = ""
    checked: int = 0  # characters of `text` already searched for stop strings
    finish_reason: str | None = None
    seconds: float = 0.0


class EmbeddedLLM:
    """A chat model running in this process from a GGUF file (llama.cpp on the CPU)."""

    supports_n: ClassVar[bool] = True  # the n samples share one prompt prefill and are decoded as one batch
    supports_logprobs: ClassVar[bool] = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        seed: int = 0,
        verbose: bool = False,
        max_parallel: int = DEFAULT_MAX_PARALLEL,
    ) -> None:
        """Load `model_path`. `n_ctx` is the KV cache shared by the prompt and all parallel samples (it must
        hold prompt + n × max_tokens for n samples to run in one batch; fewer fit → several rounds);
        `max_parallel` caps the samples decoded together."""
        llama_cpp = _import_llama_cpp()
        self.model_path = Path(model_path)
        self.name = self.model_path.stem
        self.seed = seed
        self.verbose = verbose
        self._llama: Any = None
        self._ctx: Any = None
        self._batch: Any = None
        if not self.model_path.is_file():
            raise ModelMissing(f"model file not found: {self.model_path}")
        threads = n_threads or os.cpu_count() or 1
        self.max_parallel = max(1, min(max_parallel, int(llama_cpp.llama_max_parallel_sequences())))
        started = time.perf_counter()
        try:
            with _quiet(not verbose):
                # Weights, tokenizer and metadata only: its context is never used (see the module docstring),
                # so it is kept tiny.
                self._llama = llama_cpp.Llama(
                    model_path=str(self.model_path),
                    n_ctx=256,
                    n_batch=32,
                    n_ubatch=32,
                    n_threads=threads,
                    n_threads_batch=threads,
                    seed=seed,
                    verbose=verbose,
                )
                params = llama_cpp.llama_context_default_params()
                params.n_ctx = n_ctx
                params.n_batch = _PROMPT_BATCH
                params.n_ubatch = _PROMPT_BATCH
                params.n_seq_max = self.max_parallel
                # One pool of cells for all sequences: the prompt's cells are shared, not copied per sample,
                # and each sample may use whatever room the others leave.
                params.kv_unified = True
                params.n_threads = threads
                params.n_threads_batch = threads
                params.no_perf = True
                self._ctx = llama_cpp.llama_init_from_model(self._llama.model, params)
        except (ValueError, RuntimeError, OSError) as exc:
            self.close()
            raise ModelLoadFailed(
                f"cannot load model {self.model_path}: not a valid GGUF file, or not enough memory ({exc})"
            ) from exc
        if not self._ctx:
            self.close()
            raise ModelLoadFailed(
                f"cannot create a context of {n_ctx} tokens for {self.model_path}: not enough memory"
            )
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(max(_PROMPT_BATCH, self.max_parallel), 0, 1)
        self.n_ctx = int(llama_cpp.llama_n_ctx(self._ctx))
        self._vocab = llama_cpp.llama_model_get_vocab(self._llama.model)
        self._n_vocab = self._llama.n_vocab()
        self._bos = self._llama.token_bos()
        self._formatter = self._chat_formatter()
        # One context holds one KV cache: requests from several threads take turns.
        self._lock = threading.Lock()
        # Tokens held by KV sequence 0 (the last prompt) and the logits after its last token.
        self._cached: list[int] = []
        self._cached_logits: np.ndarray | None = None
        self._scratch = np.empty(self._n_vocab, dtype=np.float32)
        self.last_prefill_tokens = 0  # prompt tokens evaluated during the last complete() call
        self.last_prefill_seconds = 0.0  # its prompt evaluation time
        self.last_decode_seconds = 0.0  # its generation time after the prompt
        log.info("loaded %s (n_ctx=%d, parallel=%d, threads=%d) in %.1fs", self.model_path.name, self.n_ctx,
                 self.max_parallel, threads, time.perf_counter() - started)

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
        """Return `n` completions of `messages`, decoded together after one prompt prefill.

        Sample i draws from a numpy Generator seeded with ``(seed, i)`` (default seed: the model's), so a
        call is reproducible and sample 0 repeats an n=1 call with the same seed. At temperature 0 the n
        completions are identical, so one is decoded and repeated. Each completion's ``seconds`` runs from
        the start of the call to the end of that sample (the shared prefill included).
        """
        if n < 1:
            return []
        prompt = self._prompt_tokens(messages)
        room = self.n_ctx - len(prompt)
        if room <= 0:
            raise LLMRequestFailed(
                f"the prompt takes {len(prompt)} tokens but the context holds {self.n_ctx}; "
                "raise n_ctx (SQLWRIGHT_N_CTX) or shorten the schema"
            )
        if max_tokens <= 0:
            return [Completion("", len(prompt), 0, None, "length", 0.0) for _ in range(n)]
        base_seed = self.seed if seed is None else seed
        greedy = temperature <= 0
        distinct = 1 if greedy else n
        wanted = min(max_tokens, room)
        # As many samples per round as the cache holds at full length (at least one).
        per_round = min(distinct, self.max_parallel, max(1, room // max(wanted, 1)))
        with self._lock:
            started = time.perf_counter()
            self.last_decode_seconds = 0.0
            try:
                first_logits = self._prefill(prompt)
                self.last_prefill_seconds = time.perf_counter() - started
                out: list[Completion] = []
                for first in range(0, distinct, per_round):
                    samples = range(first, min(first + per_round, distinct))
                    limit = min(max_tokens, room // len(samples))
                    out.extend(self._decode(prompt, first_logits, samples, temperature, limit, stop or [],
                                            base_seed, started))
                    self._release_samples(len(prompt))  # the next round reuses the sequences' cells
            except BaseException:
                self._forget()  # the cache state is unknown after a failed or interrupted decode
                raise
            self.last_decode_seconds = time.perf_counter() - started - self.last_prefill_seconds
        return out * n if greedy else out

    def _prefill(self, prompt: list[int]) -> np.ndarray:
        """Put `prompt` into KV sequence 0, reusing the cached common prefix; the logits after its last token.

        Keeps the cache invariant: afterwards sequence 0 holds exactly `prompt` and `_cached` says so.
        """
        llama_cpp = _import_llama_cpp()
        if prompt == self._cached and self._cached_logits is not None:
            self.last_prefill_tokens = 0
            return self._cached_logits
        # At least the last prompt token is evaluated, to get the logits the first sample token comes from.
        keep = min(_common_prefix(self._cached, prompt), len(prompt) - 1)
        self._cached_logits = None
        llama_cpp.llama_memory_seq_rm(self._memory, 0, keep, -1)
        self._cached = prompt[:keep]
        for start in range(keep, len(prompt), _PROMPT_BATCH):
            chunk = prompt[start : start + _PROMPT_BATCH]
            last = start + len(chunk) == len(prompt)
            self._fill([(token, start + i, 0, last and i == len(chunk) - 1) for i, token in enumerate(chunk)])
            self._run_batch()
            self._cached = prompt[: start + len(chunk)]
        self.last_prefill_tokens = len(prompt) - keep
        # A copy: the next decode overwrites llama.cpp's logits buffer, and every round starts from these.
        self._cached_logits = self._logits_row(-1).copy()
        return self._cached_logits

    def _decode(self, prompt: list[int], first_logits: np.ndarray, samples: range, temperature: float,
                max_tokens: int, stop: list[str], base_seed: int, started: float) -> list[Completion]:
        """Decode `samples` (indices of the request's samples) together, one llama_decode per step."""
        llama_cpp = _import_llama_cpp()
        n_prompt = len(prompt)
        greedy = temperature <= 0
        seqs = []
        for j, i in enumerate(samples):
            if j > 0:  # sequence 0 already holds the prompt
                llama_cpp.llama_memory_seq_cp(self._memory, 0, j, 0, n_prompt)
            rng = None if greedy else np.random.default_rng([base_seed & 0xFFFFFFFFFFFFFFFF, i])
            seqs.append(_Sequence(seq_id=j, rng=rng))
        longest_stop = max((len(s) for s in stop), default=0)
        rows: list[np.ndarray] = [first_logits] * len(seqs)
        active = seqs
        while active:
            for seq, row in zip(active, rows, strict=True):
                token, logprob = self._pick(row, temperature, seq.rng)
                seq.logprobs.append(logprob)
                # An end-of-generation token ends the sample without entering its text.
                eog = bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))
                if eog or self._append(seq, token, stop, longest_stop):
                    seq.finish_reason = "stop"
                elif len(seq.tokens) >= max_tokens:
                    seq.finish_reason = "length"
                if seq.finish_reason is not None:
                    seq.seconds = time.perf_counter() - started
            active = [seq for seq in active if seq.finish_reason is None]
            if not active:
                break
            self._fill([(seq.tokens[-1], n_prompt + len(seq.tokens) - 1, seq.seq_id, True) for seq in active])
            self._run_batch()
            rows = [self._logits_row(j) for j in range(len(active))]
        return [
            Completion(
                text=seq.text,
                prompt_tokens=n_prompt,
                completion_tokens=len(seq.logprobs),
                mean_logprob=float(np.mean(seq.logprobs)) if seq.logprobs else None,
                finish_reason=seq.finish_reason,
                seconds=seq.seconds,
            )
            for seq in seqs
        ]

    def _append(self, seq: _Sequence, token: int, stop: list[str], longest_stop: int) -> bool:
        """Add `token` to the sample's text; True when a stop string now ends it (the text is cut there)."""
        seq.tokens.append(token)
        seq.text_bytes += self._llama.detokenize([token])
        raw = bytes(seq.text_bytes)
        if seq.tokens[0] == self._bos and raw.startswith(b" "):
            raw = raw[1:]  # as Llama.detokenize does for a leading BOS
        # Decoding all bytes each step keeps multi-byte characters split across tokens intact.
        seq.text = raw.decode("utf-8", errors="ignore")
        if not stop:
            return False
        # Only the new text (plus a stop's length back) can hold a stop string not seen before.
        start = max(0, seq.checked - longest_stop)
        hit = _first_stop(seq.text[start:], stop)
        if hit is not None:
            seq.text = seq.text[: start + hit]
            return True
        seq.checked = len(seq.text)
        return False

    def _pick(self, row: np.ndarray, temperature: float, rng: np.random.Generator | None) -> tuple[int, float]:
        """The next token from one logits row, and its log-probability at temperature 1."""
        if rng is None or temperature <= 0:
            token = int(row.argmax())
            top = float(row[token])
        else:
            top = float(row.max())
            token = _sample(row, top, temperature, rng)
        # log-softmax of the chosen token, in place in a scratch buffer (no allocation per step).
        scratch = self._scratch
        np.subtract(row, top, out=scratch)
        np.exp(scratch, out=scratch)
        return token, float(row[token]) - top - math.log(float(scratch.sum(dtype=np.float64)))

    # --- low-level batch helpers --------------------------------------------------------------------
    def _fill(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """Load (token, position, sequence, wants logits) entries into the batch."""
        batch = self._batch
        batch.n_tokens = len(entries)
        for i, (token, pos, seq_id, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq_id
            batch.logits[i] = logits

    def _run_batch(self) -> None:
        llama_cpp = _import_llama_cpp()
        status = llama_cpp.llama_decode(self._ctx, self._batch)
        if status == 1:
            raise LLMRequestFailed(
                f"the context ({self.n_ctx} tokens) is full; raise n_ctx (SQLWRIGHT_N_CTX), or ask for fewer "
                "samples or fewer tokens"
            )
        if status != 0:
            raise LLMRequestFailed(f"llama.cpp failed to decode a batch (status {status})")

    def _logits_row(self, i: int) -> np.ndarray:
        """A view (no copy) of the logits of batch token `i` (-1: the last output); valid until the next decode."""
        llama_cpp = _import_llama_cpp()
        pointer = llama_cpp.llama_get_logits_ith(self._ctx, i)
        if not pointer:
            raise LLMRequestFailed(f"llama.cpp returned no logits for batch row {i}")
        return np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self._n_vocab,))

    def _release_samples(self, n_prompt: int) -> None:
        """Drop every sample's cells, keeping the prompt in sequence 0 for the next request."""
        if self._ctx is None or not self._cached:
            return
        llama_cpp = _import_llama_cpp()
        llama_cpp.llama_memory_seq_keep(self._memory, 0)
        llama_cpp.llama_memory_seq_rm(self._memory, 0, n_prompt, -1)

    def _forget(self) -> None:
        """Empty the KV cache and the record of what it holds."""
        self._cached = []
        self._cached_logits = None
        if self._ctx is not None:
            _import_llama_cpp().llama_memory_clear(self._memory, True)

    # --- tokens and lifecycle ----------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in the model's tokenizer."""
        if not text:
            return 0
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def reset_cache(self) -> None:
        """Forget the cached prompt prefix (the next request pays a full prefill)."""
        with self._lock:
            self._forget()

    def close(self) -> None:
        """Free the context, the batch, then the model."""
        llama_cpp = _import_llama_cpp()
        if getattr(self, "_batch", None) is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "_ctx", None) is not None:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        llama = getattr(self, "_llama", None)
        if llama is not None:
            llama.close()
            self._llama = None


def _sample(row: np.ndarray, top: float, temperature: float, rng: np.random.Generator) -> int:
    """Draw a token from `row` (logits; `top` is their maximum) as llama.cpp's default chain does:
    top-k, then top-p and min-p on the model's distribution, then the temperature."""
    candidates = np.flatnonzero(row >= top - _CANDIDATE_WINDOW)
    if candidates.size > _TOP_K:
        candidates = candidates[np.argpartition(row[candidates], -_TOP_K)[-_TOP_K:]]
    logits = row[candidates].astype(np.float64)
    order = np.argsort(-logits, kind="stable")
    candidates, logits = candidates[order], logits[order] - top
    probs = np.exp(logits)
    cumulative = np.cumsum(probs / probs.sum())
    # top-p keeps the shortest head whose mass reaches _TOP_P; min-p the tokens with p >= _MIN_P × p(best).
    keep = min(int(np.searchsorted(cumulative, _TOP_P)) + 1, int(np.count_nonzero(logits >= _MIN_P_WINDOW)))
    keep = max(1, min(keep, candidates.size))
    weights = np.cumsum(np.exp(logits[:keep] / temperature))
    pick = int(np.searchsorted(weights, rng.random() * weights[-1], side="right"))
    return int(candidates[min(pick, keep - 1)])


def _first_stop(text: str, stop: list[str]) -> int | None:
    """The index where the earliest stop string starts in `text`, or None."""
    hits = [i for s in stop if s and (i := text.find(s)) >= 0]
    return min(hits) if hits else None
