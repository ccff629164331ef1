"""The embedded backend: a GGUF model run in-process by llama-cpp-python.

n samples for about the price of the tokens they do not share. ``complete(n=...)`` evaluates the prompt once
into KV-cache sequence 0 and draws the n samples through a trie of continuations: samples whose histories
are equal sit on the same node, so a continuation is decoded once however many samples take it, and a sample
that branches off gets its own KV sequence that shares the parent's cells (``llama_memory_seq_cp``; in the
unified KV cache this tags the same cells with one more sequence id, no copy). At text-to-SQL temperatures
most steps leave one candidate after min-p, so samples run together for long stretches. Each step evaluates
the new nodes of all samples: one ``llama_decode`` for the whole step when there are at least ``min_batch``
of them, else one call per node. (Where decoding is bound by memory bandwidth a batch of n tokens costs about
one; on the 2-core machine a batch of 2 costs ~1.4x one token, of 4 ~1.5x: see DEFAULT_MIN_BATCH and
bench/results/sampling_speed.json.)

``Llama``'s own context cannot hold several sequences (its constructor has no ``n_seq_max``/``kv_unified``
and drops unknown keyword arguments), so the ``Llama`` object only supplies the weights, tokenizer and
metadata (with a tiny unused context) and generation runs in a context of our own, made with the low-level
API from the loaded model and llama-cpp-python's own context settings.

Prefix sharing across requests. Sequence 0 keeps the last request's prompt and one continuation (sample 0's)
with the next-token distributions along it. The next request keeps the longest common prefix of the two
prompts and evaluates only the rest, e.g. everything after the system prompt and schema of consecutive
questions on one database. The same prompt again evaluates nothing: the pipeline's samples, asked right after
its greedy call, walk the greedy reply for free as long as they agree with it.

Sampling runs in numpy on views of llama.cpp's logits rows (no copy of the vocabulary): each decoded node
keeps its top candidates and the log-normaliser; greedy takes the best candidate; otherwise llama.cpp's
default chain — top-k 40, top-p 0.95, min-p 0.05 (on the model's own distribution), then the temperature —
and a draw from a numpy Generator seeded from (seed, i) for sample i, so a call is reproducible. Each token's
log-probability is taken under the model's distribution at temperature 1 (as OpenAI's ``logprobs`` reports
it); ``mean_logprob`` averages them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sqlwright.errors import LLMRequestFailed, ModelLoadFailed, ModelMissing
from sqlwright.llm.base import Completion, Message, raise_if_stopped
from sqlwright.llm.prompt_cache import PromptCache

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
# Fewest new tokens a step evaluates as one batch. Measured with 2 threads (ms per llama_decode, 1.5B): the
# portable AVX2 build on an earlier day 30 for 1 token, 58 / 78 / 94 for 2 / 3 / 4 (one call per token as fast);
# the native build (AVX-512, VNNI) on 2026-12-01 85 for 1, 118 / 146 / 126 for 2 / 3 / 4. A batch of 2 now
# wins: greedy + 3 samples decoded 15 % (1.5B) to 42 % (0.5B) faster than with 4 (bench/sampling_speed.py,
# labels native-build and native-min-batch-2).
DEFAULT_MIN_BATCH = 2
# Prompt lookup (see `_lookup_draft`): draft tokens evaluated with each new token, and the longest n-gram matched.
DEFAULT_LOOKUP_TOKENS = 0
DEFAULT_LOOKUP_NGRAM = 3


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
class _Dist:
    """The next-token distribution after one history, reduced to what sampling needs."""

    ids: np.ndarray  # candidate tokens (top-k of those within _CANDIDATE_WINDOW of the best), best first
    logits: np.ndarray  # their logits minus the best one (float64), so logits[0] == 0
    log_z: float  # log sum(exp(logit - best)) over the whole vocabulary: log p(token) = logit - log_z
    keep: int = 0  # candidates left by top-p and min-p (computed on first use)


class _Node:
    """A node of the request's continuation trie: one history (prompt + generated tokens).

    `dist` is the distribution of the next token (None until the node's token is decoded); `seq` is a KV
    sequence holding the cells of the history (valid while a running sample sits at or below the node).
    """

    __slots__ = ("parent", "token", "depth", "dist", "seq", "children", "draft")

    def __init__(self, parent: _Node | None, token: int | None, depth: int, dist: _Dist | None, seq: int,
                 draft: bool = False) -> None:
        self.parent = parent
        self.token = token
        self.depth = depth
        self.dist = dist
        self.seq = seq
        self.children: dict[int, _Node] = {}
        self.draft = draft  # a prompt-lookup draft token no sample has taken yet


@dataclass
class _Sample:
    """One sample being drawn: where it is in the trie, its random stream and output so far."""

    node: _Node
    rng: np.random.Generator | None
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text_bytes: bytearray = field(default_factory=bytearray)
    text: str = ""
    checked: int = 0  # characters of `text` already searched for stop strings
    finish_reason: str | None = None
    seconds: float = 0.0


# Models still open at interpreter exit are closed by atexit, while llama_cpp's module globals still
# exist: left to garbage collection during shutdown, llama-cpp-python's own finalizers call freed
# functions ("'NoneType' object is not callable").
_OPEN_MODELS: weakref.WeakSet[EmbeddedLLM] = weakref.WeakSet()


@atexit.register
def _close_open_models() -> None:
    for model in list(_OPEN_MODELS):
        model.close()


class EmbeddedLLM:
    """A chat model running in this process from a GGUF file (llama.cpp on the CPU)."""

    supports_n: ClassVar[bool] = True  # the n samples share one prompt prefill and are decoded as one batch
    supports_logprobs: ClassVar[bool] = True
    # complete() takes `shared_prefix`: the prompt's state up to it is saved to and loaded from the prompt cache.
    supports_shared_prefix: ClassVar[bool] = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        seed: int = 0,
        verbose: bool = False,
        max_parallel: int = DEFAULT_MAX_PARALLEL,
        min_batch: int = DEFAULT_MIN_BATCH,
        lookup_tokens: int = DEFAULT_LOOKUP_TOKENS,
        lookup_ngram: int = DEFAULT_LOOKUP_NGRAM,
        prompt_cache: PromptCache | None = None,
        model_sha256: str | None = None,
        lora_path: str | Path | None = None,
    ) -> None:
        """Load `model_path`. `n_ctx` is the KV cache shared by the prompt and all parallel samples: it must
        hold prompt + n × max_tokens for n samples to run together (when fewer fit, they run in rounds that
        share the prefill); `max_parallel` caps the samples run together; a step with at least `min_batch` new
        tokens evaluates them in one batch, fewer get one call each (see the module docstring). With a
        `prompt_cache`, the states of shared prompt prefixes are kept there across processes (the model file
        is identified by `model_sha256`, computed on first use when not given). `lora_path`: a GGUF LoRA
        adapter applied to the context (llm/adapters.py); refused when it was made for another model file."""
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
        self._n_seq = max(2, min(max_parallel + 1, int(llama_cpp.llama_max_parallel_sequences())))
        self.max_parallel = self._n_seq - 1
        self.min_batch = max(2, min_batch)
        self.lookup_tokens = max(0, lookup_tokens)
        self.lookup_ngram = max(1, lookup_ngram)
        self.lookup_ngram_min = 1
        self._lookup_prompt: list[int] = []
        self._lookup_index: dict[tuple[int, ...], int] = {}
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
                # The settings llama-cpp-python gives its own context (flash attention off, rope/yarn from the
                # model, ...), so the numbers match a plain Llama; only the size and sequences differ.
                params = llama_cpp.llama_context_params.from_buffer_copy(self._llama.context_params)
                params.n_ctx = n_ctx
                params.n_batch = _PROMPT_BATCH
                params.n_ubatch = _PROMPT_BATCH
                # One sequence per parallel sample, plus one: the kept continuation can hold sequence 0
                # while every sample has branched off it.
                params.n_seq_max = self._n_seq
                # One pool of cells for all sequences: the prompt's cells are shared, not copied per sample,
                # and each sample may use whatever room the others leave.
                params.kv_unified = True
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
        self._batch = llama_cpp.llama_batch_init(max(_PROMPT_BATCH, self._n_seq), 0, 1)
        self.n_ctx = int(llama_cpp.llama_n_ctx(self._ctx))
        self._vocab = llama_cpp.llama_model_get_vocab(self._llama.model)
        self._n_vocab = self._llama.n_vocab()
        self._bos = self._llama.token_bos()
        self._formatter = self._chat_formatter()
        # One context holds one KV cache: requests from several threads take turns.
        self._lock = threading.Lock()
        self.prompt_cache = prompt_cache
        self._model_sha256 = model_sha256
        self._model_id: str | None = None
        self._kv_layout = f"type_k={params.type_k} type_v={params.type_v} n_seq={self._n_seq} unified"
        _OPEN_MODELS.add(self)
        # A LoRA adapter is applied to our context (the weights stay as loaded): see llm/adapters.py.
        self.lora_path = Path(lora_path) if lora_path else None
        self._lora: Any = None
        self._lora_sha256: str | None = None
        if self.lora_path is not None:
            self._attach_lora(self.lora_path, llama_cpp)
        # Tokens held by KV sequence 0 (the last prompt and one continuation), and the next-token
        # distribution after each of its prefixes that has one, by prefix length.
        self._cached: list[int] = []
        self._cached_dists: dict[int, _Dist] = {}
        self._tips: dict[int, _Node] = {}  # per live KV sequence, the trie node whose history it holds
        self._prompt_len = 0
        self._scratch = np.empty(self._n_vocab, dtype=np.float32)
        self.last_prefill_tokens = 0  # prompt tokens evaluated during the last complete() call
        self.last_prefill_seconds = 0.0  # its prompt evaluation time
        self.last_decode_seconds = 0.0  # its generation time after the prompt
        self.last_decoded_tokens = 0  # generated tokens evaluated (shared continuations count once)
        self.last_decode_calls = 0  # llama_decode calls for them
        self.last_draft_tokens = 0  # prompt-lookup draft tokens evaluated
        self.last_draft_accepted = 0  # of them, taken by a sample
        self.last_prefix_restored = 0  # prompt tokens whose state the last call loaded from the prompt cache
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

    def _prompt_tokens(self, text: str) -> list[int]:
        """The tokens of prompt text (a formatted prompt, or the start of one)."""
        # The template already renders any BOS token, so none is added; special=True parses <|im_start|> etc.
        return self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

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
        shared_prefix: str | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        """Return `n` completions of `messages`, decoded together after one prompt prefill.

        Sample i draws from a numpy Generator seeded with ``(seed, i)`` (default seed: the model's), so a
        call is reproducible and sample 0 repeats an n=1 call with the same seed. At temperature 0 the n
        completions are identical, so one is decoded and repeated. Each completion's ``seconds`` runs from
        the start of the call to the end of that sample (the shared prefill included).

        `shared_prefix` is text that ends the part of the prompt other requests share (the schema): the
        prompt's state up to the end of its first occurrence is loaded from the prompt cache when there, and
        saved to it when computed. The prefill always stops at that point first, so the numbers are the same
        with and without the cache.

        `should_stop` is polled before each prompt batch of the prefill and before each decoding step (each new
        token of the samples); when it returns True, `Cancelled` is raised (the KV cache is forgotten, as after
        any error).
        """
        if n < 1:
            return []
        raise_if_stopped(should_stop)
        text = self.format_prompt(messages)
        prompt = self._prompt_tokens(text)
        boundary = self._shared_boundary(text, prompt, shared_prefix)
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
        per_round = min(distinct, self.max_parallel, max(1, room // wanted))
        with self._lock:
            started = time.perf_counter()
            self.last_decode_seconds = 0.0
            self.last_decoded_tokens = 0
            self.last_decode_calls = 0
            self.last_draft_tokens = 0
            self.last_draft_accepted = 0
            if self.lookup_tokens:
                self._index_prompt(prompt)
            try:
                root = self._prefill(prompt, boundary, should_stop)
                self.last_prefill_seconds = time.perf_counter() - started
                out: list[Completion] = []
                for first in range(0, distinct, per_round):
                    samples = range(first, min(first + per_round, distinct))
                    limit = min(max_tokens, room // len(samples))
                    if self._tips[0].depth + len(samples) * limit > room:
                        self._cut_chain(root)  # the samples may need the cells of the kept continuation
                    out.extend(self._decode(root, samples, temperature, limit, stop or [], base_seed, started,
                                            should_stop))
                    self._end_round(root)
            except BaseException:
                self._forget()  # the cache state is unknown after a failed or interrupted decode
                raise
            self.last_decode_seconds = time.perf_counter() - started - self.last_prefill_seconds
        return out * n if greedy else out

    def _prefill(self, prompt: list[int], boundary: int = 0,
                 should_stop: Callable[[], bool] | None = None) -> _Node:
        """Put `prompt` into KV sequence 0, reusing the cached common prefix; the trie root for the request.

        When the cache holds exactly `prompt` (plus a kept continuation), nothing is evaluated: the root and
        the continuation's distributions come from the cache. `boundary` (0: none) is the length of the
        prompt's shared prefix: when sequence 0 holds less of it, its state is loaded from the prompt cache,
        or else evaluated (in batches that stop at the boundary) and saved there.
        """
        llama_cpp = _import_llama_cpp()
        n_prompt = len(prompt)
        common = _common_prefix(self._cached, prompt)
        root_dist = self._cached_dists.get(n_prompt) if common == n_prompt else None
        self.last_prefix_restored = 0
        if root_dist is None:
            # At least the last prompt token is evaluated, for the logits the first sample token comes from.
            keep = min(common, n_prompt - 1)
            save = False
            if 0 < boundary < n_prompt and keep < boundary and self.prompt_cache is not None:
                held = self._restore_prefix(prompt[:boundary])
                keep = keep if held is None else held
                save = keep < boundary
            llama_cpp.llama_memory_seq_rm(self._memory, 0, keep, -1)
            self._cached = prompt[:keep]
            self._cached_dists = {}
            start = keep
            for end in sorted({boundary, n_prompt} if keep < boundary < n_prompt else {n_prompt}):
                for chunk_start in range(start, end, _PROMPT_BATCH):
                    raise_if_stopped(should_stop)
                    chunk = prompt[chunk_start : min(end, chunk_start + _PROMPT_BATCH)]
                    last = chunk_start + len(chunk) == n_prompt
                    self._fill([(token, chunk_start + i, 0, last and i == len(chunk) - 1)
                                for i, token in enumerate(chunk)])
                    self._run_batch()
                    self._cached = prompt[: chunk_start + len(chunk)]
                if end == boundary and save:
                    self._save_prefix(prompt[:boundary])
                start = end
            self.last_prefill_tokens = n_prompt - keep
            root_dist = _reduce(self._logits_row(-1), self._scratch)
            self._cached_dists = {n_prompt: root_dist}
        else:
            self.last_prefill_tokens = 0
        root = _Node(None, None, 0, root_dist, 0)
        # The continuation kept in sequence 0 after the prompt (the last request's sample 0, e.g. the greedy
        # reply before its samples), as far as its distributions are known.
        node = root
        for m in range(n_prompt, len(self._cached)):
            dist = self._cached_dists.get(m + 1)
            if dist is None:
                break
            child = _Node(node, self._cached[m], node.depth + 1, dist, 0)
            node.children[child.token] = child
            node = child
        if n_prompt + node.depth < len(self._cached):
            llama_cpp.llama_memory_seq_rm(self._memory, 0, n_prompt + node.depth, -1)
            del self._cached[n_prompt + node.depth :]
        self._prompt_len = n_prompt
        self._tips = {0: node}
        return root

    def _shared_boundary(self, text: str, prompt: list[int], shared_prefix: str | None) -> int:
        """The number of `prompt`'s tokens that make up `text` up to the end of `shared_prefix` (0: none).

        The prefix is tokenized alone and compared with the prompt's tokens: where the tokenizer merged
        across the boundary, the shared part is the tokens both agree on."""
        if not shared_prefix:
            return 0
        at = text.find(shared_prefix)
        if at < 0:
            return 0
        return _common_prefix(self._prompt_tokens(text[: at + len(shared_prefix)]), prompt)

    def model_sha256(self) -> str:
        """The model file's sha256 (recorded when sqlwright assembled or hashed it, else computed once)."""
        if self._model_sha256 is None:
            from sqlwright.llm.models import known_sha256

            memo = self.prompt_cache.directory if self.prompt_cache is not None else None
            self._model_sha256 = known_sha256(self.model_path, memo)
        return self._model_sha256

    def _attach_lora(self, path: Path, llama_cpp: Any) -> None:
        """Apply the LoRA adapter at `path` to the context (closing the model when it is refused)."""
        from sqlwright.llm.adapters import attach_lora
        from sqlwright.llm.models import file_sha256

        try:
            self._lora = attach_lora(llama_cpp, self._llama.model, self._ctx, path, model_name=self.model_path.name,
                                     model_sha256=self.model_sha256, quiet=lambda: _quiet(not self.verbose))
            self._lora_sha256 = file_sha256(path)
        except BaseException:
            self.close()
            raise
        self.name = f"{self.name}+{path.stem}"
        log.info("applied the LoRA adapter %s to %s", path.name, self.model_path.name)

    def model_id(self) -> str:
        """What a saved KV state depends on: the model file's sha256 (and the LoRA adapter's), the llama.cpp
        build (its version and the CPU features it was compiled for) and the KV cache's layout."""
        if self._model_id is None:
            llama_cpp = _import_llama_cpp()
            lora = f" lora={self._lora_sha256}" if self._lora_sha256 else ""
            system = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
            self._model_id = (f"model={self.model_sha256()}{lora} llama_cpp={llama_cpp.__version__} "
                              f"{self._kv_layout} system=[{system}]")
        return self._model_id

    def _restore_prefix(self, tokens: list[int]) -> int | None:
        """Load the saved state of `tokens` into sequence 0: the tokens it now holds (len(tokens), or 0 when
        llama.cpp refused the state and emptied the sequence), or None when the cache has no such state."""
        assert self.prompt_cache is not None
        started = time.perf_counter()
        state = self.prompt_cache.load(self.model_id(), tokens)
        if state is None:
            return None
        llama_cpp = _import_llama_cpp()
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        with _quiet(not self.verbose):
            loaded = llama_cpp.llama_state_seq_set_data(self._ctx, buffer, len(state), 0)
        if not loaded:
            log.warning("prompt cache: llama.cpp refused a saved state; evaluating the prompt instead")
            llama_cpp.llama_memory_seq_rm(self._memory, 0, -1, -1)
            return 0
        self.last_prefix_restored = len(tokens)
        log.info("prompt cache: loaded %d prompt tokens in %.3fs", len(tokens), time.perf_counter() - started)
        return len(tokens)

    def _save_prefix(self, tokens: list[int]) -> None:
        """Save sequence 0's state, which holds exactly `tokens`, to the prompt cache."""
        assert self.prompt_cache is not None
        llama_cpp = _import_llama_cpp()
        size = int(llama_cpp.llama_state_seq_get_size(self._ctx, 0))
        buffer = (ctypes.c_uint8 * size)()
        written = int(llama_cpp.llama_state_seq_get_data(self._ctx, buffer, size, 0))
        if written <= 0:
            log.warning("prompt cache: llama.cpp could not copy the prompt's state; not saved")
            return
        self.prompt_cache.store(self.model_id(), tokens, bytes(memoryview(buffer)[:written]))

    def _decode(self, root: _Node, samples: range, temperature: float, max_tokens: int, stop: list[str],
                base_seed: int, started: float,
                should_stop: Callable[[], bool] | None = None) -> list[Completion]:
        """Draw `samples` (indices of the request's samples) from the trie below `root`.

        Samples whose histories are equal share a node, so a continuation is decoded once however many
        samples take it; each step decodes the new nodes of all samples together. `should_stop` is polled
        before each step (Cancelled).
        """
        llama_cpp = _import_llama_cpp()
        greedy = temperature <= 0
        runs = [
            _Sample(root, None if greedy else np.random.default_rng([base_seed & 0xFFFFFFFFFFFFFFFF, i]))
            for i in samples
        ]
        longest_stop = max((len(s) for s in stop), default=0)
        active = runs
        while active:
            raise_if_stopped(should_stop)
            pending: list[_Node] = []
            for run in active:
                # Walk down the decoded nodes until the sample ends or needs a new node decoded.
                while True:
                    node = run.node
                    assert node.dist is not None
                    token, logprob = _draw(node.dist, temperature, run.rng)
                    run.logprobs.append(logprob)
                    # An end-of-generation token ends the sample without entering its text.
                    eog = bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))
                    if eog or self._append(run, token, stop, longest_stop):
                        run.finish_reason = "stop"
                    elif len(run.tokens) >= max_tokens:
                        run.finish_reason = "length"
                    if run.finish_reason is not None:
                        run.seconds = time.perf_counter() - started
                        break
                    child = node.children.get(token)
                    if child is None:
                        child = _Node(node, token, node.depth + 1, None, -1)
                        node.children[token] = child
                        pending.append(child)
                    run.node = child
                    if child.draft:
                        child.draft = False
                        self.last_draft_accepted += 1
                    if child.dist is None:
                        break
            active = [run for run in active if run.finish_reason is None]
            if pending:
                self._decode_nodes(pending, max_tokens)
            self._free_sequences({run.node.seq for run in active})
        return [
            Completion(
                text=run.text,
                prompt_tokens=self._prompt_len,
                completion_tokens=len(run.logprobs),
                mean_logprob=float(np.mean(run.logprobs)) if run.logprobs else None,
                finish_reason=run.finish_reason,
                seconds=run.seconds,
            )
            for run in runs
        ]

    def _decode_nodes(self, nodes: list[_Node], max_depth: int) -> None:
        """Evaluate each new node's token after its parent's history and set its distribution.

        A node continues its parent's sequence when the parent is that sequence's tip; otherwise (a second
        child of the same parent, or a branch off the kept continuation) it gets a free sequence that first
        shares the parent's cells. Draft tokens no sample took are dropped first (see `_drop_rejected_drafts`).
        With prompt lookup on, each node is followed in the same batch by the tokens that followed its last
        few tokens in the prompt (or earlier in its reply): draft nodes, each with its distribution, which
        samples walk for free while they draw the same tokens.
        """
        llama_cpp = _import_llama_cpp()
        n_prompt = self._prompt_len
        self._drop_rejected_drafts(nodes)
        claimed: set[int] = set()
        chains: list[list[_Node]] = []
        for node in nodes:
            parent = node.parent
            assert parent is not None and node.token is not None
            seq = parent.seq
            if self._tips.get(seq) is not parent or seq in claimed:
                source, seq = seq, self._free_seq()
                llama_cpp.llama_memory_seq_cp(self._memory, source, seq, 0, n_prompt + parent.depth)
            claimed.add(seq)
            node.seq = seq
            chain = [node]
            for token in self._lookup_draft(node, max_depth):
                chain.append(_Node(chain[-1], token, chain[-1].depth + 1, None, seq, draft=True))
                chain[-2].children[token] = chain[-1]
            self._tips[seq] = chain[-1]
            self.last_draft_tokens += len(chain) - 1
            chains.append(chain)
        entries = [(n.token, n_prompt + n.depth - 1, n.seq, True) for chain in chains for n in chain]
        if len(entries) >= self.min_batch:
            self._fill(entries)
            self._run_batch()
            rows = [self._logits_row(i) for i in range(len(entries))]
            for node, row in zip((n for chain in chains for n in chain), rows, strict=True):
                node.dist = _reduce(row, self._scratch)
            self.last_decode_calls += 1
        else:
            for chain in chains:
                self._fill([(n.token, n_prompt + n.depth - 1, n.seq, True) for n in chain])
                self._run_batch()
                for i, node in enumerate(chain):
                    node.dist = _reduce(self._logits_row(i), self._scratch)
            self.last_decode_calls += len(chains)
        self.last_decoded_tokens += len(entries)

    def _drop_rejected_drafts(self, nodes: list[_Node]) -> None:
        """Cut the draft tokens no sample took from the sequences about to grow.

        Every running sample sits on one of the new `nodes`, so in a sequence the cells below the deepest
        parent of a new node are needed by no one; when the first of them is a draft no sample took, they are
        removed (and their nodes unlinked), so that the sample that left the draft continues in the same
        sequence instead of taking a new one. The kept continuation of sequence 0 is not a draft and stays.
        """
        deepest: dict[int, _Node] = {}
        for node in nodes:
            parent = node.parent
            assert parent is not None
            if parent.seq not in deepest or parent.depth > deepest[parent.seq].depth:
                deepest[parent.seq] = parent
        for seq, parent in deepest.items():
            tip = self._tips.get(seq)
            if tip is None or tip.depth <= parent.depth:
                continue
            below = tip
            while below.parent is not None and below.parent.depth > parent.depth:
                below = below.parent
            if below.parent is not parent or not below.draft:
                continue
            _import_llama_cpp().llama_memory_seq_rm(self._memory, seq, self._prompt_len + parent.depth, -1)
            del parent.children[below.token]
            self._tips[seq] = parent

    def _index_prompt(self, prompt: list[int]) -> None:
        """For prompt lookup: each n-gram of the prompt (n up to lookup_ngram) -> where its last occurrence ends."""
        self._lookup_prompt = prompt
        index: dict[tuple[int, ...], int] = {}
        for n in range(self.lookup_ngram_min, self.lookup_ngram + 1):
            for end in range(n, len(prompt) + 1):
                index[tuple(prompt[end - n : end])] = end
        self._lookup_index = index

    def _lookup_draft(self, node: _Node, max_depth: int) -> list[int]:
        """Prompt lookup: the tokens that followed the last occurrence of the history's final n-gram (longest
        first, down to `lookup_ngram_min`), in the reply so far or else in the prompt; at most
        `lookup_tokens`, none past `max_depth` or an end-of-generation token."""
        room = min(self.lookup_tokens, max_depth - node.depth)
        if room <= 0:
            return []
        llama_cpp = _import_llama_cpp()
        reply: list[int] = []
        walker: _Node | None = node
        while walker is not None and walker.token is not None:
            reply.append(walker.token)
            walker = walker.parent
        reply.reverse()
        prompt = self._lookup_prompt
        history = prompt + reply
        for n in range(min(self.lookup_ngram, len(history) - 1), self.lookup_ngram_min - 1, -1):
            gram = tuple(history[-n:])
            # The reply first (the most recent occurrence), then the prompt's index.
            start = None
            for i in range(len(reply) - n - 1, -1, -1):
                if tuple(reply[i : i + n]) == gram:
                    start = len(prompt) + i + n
                    break
            if start is None:
                start = self._lookup_index.get(gram)
            if start is None or start >= len(history) - 1:
                continue
            draft = []
            for token in history[start : start + room]:
                if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    break
                draft.append(token)
            if draft:
                return draft
        return []

    def _free_seq(self) -> int:
        for seq in range(1, self._n_seq):
            if seq not in self._tips:
                return seq
        raise LLMRequestFailed("no free KV sequence for a new sample branch")  # more branches than samples

    def _free_sequences(self, needed: set[int]) -> None:
        """Drop the sequences no running sample sits in (sequence 0, the kept prefix, stays)."""
        llama_cpp = _import_llama_cpp()
        for seq in [s for s in self._tips if s != 0 and s not in needed]:
            llama_cpp.llama_memory_seq_rm(self._memory, seq, -1, -1)
            del self._tips[seq]

    def _end_round(self, root: _Node) -> None:
        """Keep sequence 0 (prompt + one continuation) in the cache and the trie; drop the rest."""
        llama_cpp = _import_llama_cpp()
        llama_cpp.llama_memory_seq_keep(self._memory, 0)
        tip = self._tips[0]
        self._tips = {0: tip}
        path = []
        node: _Node | None = tip
        while node is not None and node is not root:
            path.append(node)
            node = node.parent
        path.reverse()
        # Later rounds may only walk the nodes whose cells still exist: those of sequence 0.
        node = root
        for child in path:
            node.children = {child.token: child}
            node = child
        node.children = {}
        n_prompt = self._prompt_len
        self._cached = self._cached[:n_prompt] + [child.token for child in path]
        self._cached_dists = {n_prompt + child.depth: child.dist for child in path}
        self._cached_dists[n_prompt] = root.dist

    def _cut_chain(self, root: _Node) -> None:
        """Drop the kept continuation (cells and nodes) to make room for the samples."""
        _import_llama_cpp().llama_memory_seq_rm(self._memory, 0, self._prompt_len, -1)
        root.children = {}
        self._tips = {0: root}
        del self._cached[self._prompt_len :]
        self._cached_dists = {self._prompt_len: root.dist}

    def _append(self, run: _Sample, token: int, stop: list[str], longest_stop: int) -> bool:
        """Add `token` to the sample's text; True when a stop string now ends it (the text is cut there)."""
        run.tokens.append(token)
        run.text_bytes += self._llama.detokenize([token])
        raw = bytes(run.text_bytes)
        if run.tokens[0] == self._bos and raw.startswith(b" "):
            raw = raw[1:]  # as Llama.detokenize does for a leading BOS
        # Decoding all bytes each step keeps multi-byte characters split across tokens intact.
        run.text = raw.decode("utf-8", errors="ignore")
        if not stop:
            return False
        # Only the new text (plus a stop's length back) can hold a stop string not seen before.
        start = max(0, run.checked - longest_stop)
        hit = _first_stop(run.text[start:], stop)
        if hit is not None:
            run.text = run.text[: start + hit]
            return True
        run.checked = len(run.text)
        return False

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

    def _forget(self) -> None:
        """Empty the KV cache and the record of what it holds."""
        self._cached = []
        self._cached_dists = {}
        self._tips = {}
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
        if getattr(self, "_lora", None) is not None:  # after the context that uses it, before the model
            llama_cpp.llama_adapter_lora_free(self._lora)
            self._lora = None
        llama = getattr(self, "_llama", None)
        if llama is not None:
            llama.close()
            self._llama = None


def _reduce(row: np.ndarray, scratch: np.ndarray) -> _Dist:
    """Reduce one logits row (a view into llama.cpp's buffer) to the candidates and normaliser sampling uses."""
    top = float(row.max())
    # log-sum-exp over the vocabulary, in place in a scratch buffer (no allocation per step).
    np.subtract(row, top, out=scratch)
    np.exp(scratch, out=scratch)
    log_z = math.log(float(scratch.sum(dtype=np.float64)))
    candidates = np.flatnonzero(row >= top - _CANDIDATE_WINDOW)
    if candidates.size > _TOP_K:
        candidates = candidates[np.argpartition(row[candidates], -_TOP_K)[-_TOP_K:]]
    logits = row[candidates].astype(np.float64) - top
    order = np.lexsort((candidates, -logits))  # best first; ties to the lower id, as argmax does
    return _Dist(candidates[order].astype(np.int64), logits[order], log_z)


def _draw(dist: _Dist, temperature: float, rng: np.random.Generator | None) -> tuple[int, float]:
    """A token from `dist` and its log-probability at temperature 1: the best one when greedy, else as
    llama.cpp's default chain does: top-k, then top-p and min-p on the model's distribution, then the
    temperature."""
    index = 0
    if rng is not None and temperature > 0:
        if not dist.keep:
            probs = np.exp(dist.logits)
            cumulative = np.cumsum(probs / probs.sum())
            # top-p keeps the shortest head whose mass reaches _TOP_P; min-p those with p >= _MIN_P × p(best).
            keep = min(int(np.searchsorted(cumulative, _TOP_P)) + 1,
                       int(np.count_nonzero(dist.logits >= _MIN_P_WINDOW)))
            dist.keep = max(1, min(keep, dist.ids.size))
        if dist.keep > 1:
            weights = np.cumsum(np.exp(dist.logits[: dist.keep] / temperature))
            index = min(int(np.searchsorted(weights, rng.random() * weights[-1], side="right")), dist.keep - 1)
    return int(dist.ids[index]), float(dist.logits[index]) - dist.log_z


def _first_stop(text: str, stop: list[str]) -> int | None:
    """The index where the earliest stop string starts in `text`, or None."""
    hits = [i for s in stop if s and (i := text.find(s)) >= 0]
    return min(hits) if hits else None
