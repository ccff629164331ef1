"""Sampling speed of the embedded backend: greedy n=1 vs n samples, and the pipeline's greedy + samples.

On a realistic text-to-SQL prompt (a Spider dev schema rendered as the pipeline renders it, plus a question,
about 600 tokens), with max_tokens 128, it measures wall seconds of:

- prefill: the prompt alone (a fresh cache, one token generated);
- greedy: ``complete(n=1, temperature=0)`` on a fresh cache (prefill included);
- samples: ``complete(n=4, temperature=0.7)`` on a fresh cache (prefill included);
- pipeline: the pipeline's pattern, greedy then ``complete(n=3, temperature=0.7)`` on the same prompt.

Decode seconds are the wall seconds minus the prefill. Each figure is the best of --repeats runs (other work
shares the two cores). Target: samples decode <= 1.6 x greedy decode; pipeline <= 2 x greedy. Also printed:
prefill and greedy decode tokens/s, the llama.cpp build (its CPU features), and with prompt lookup on
(``--option lookup_tokens=3``) the share of draft tokens taken.

Builds compare with ``--llama-path DIR``: llama_cpp is imported from DIR, e.g. the portable wheel unpacked with
``pip install --no-deps --target /tmp/llama-portable ~/.cache/sqlwright/wheels/portable-*/*.whl``.

    .venv/bin/python bench/sampling_speed.py [--models 0.5b,1.5b] [--repeats 3] [--label after]
        [--impl path/to/llamacpp.py] [--option min_batch=2]

``--impl`` loads ``EmbeddedLLM`` from another copy of the module (e.g. the code before a change:
``git show <rev>:src/sqlwright/llm/llamacpp.py > /tmp/old.py``) to compare; ``--label`` names the figures in
bench/results/sampling_speed.json, which keeps the other labels' figures.
Data: ../shared/data/spider (relative to the repo root; SQLWRIGHT_DATA overrides ../shared/data).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from sqlwright.db import open_database, render_schema
from sqlwright.llm import model_path
from sqlwright.pipeline.prompt import build_messages

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "sampling_speed.json"
DB_ID = "pets_1"  # about 600 prompt tokens with the pipeline's rendering (sample values included)
QUESTION = "For each major, what is the average age of the students who own a dog? Order by the average age."


def data_dir() -> Path:
    return Path(os.environ.get("SQLWRIGHT_DATA") or ROOT.parent / "shared" / "data") / "spider"


def load_impl(path: str | None) -> Any:
    """EmbeddedLLM from the package, or from the module file at `path`."""
    if path is None:
        from sqlwright.llm.llamacpp import EmbeddedLLM

        return EmbeddedLLM
    spec = importlib.util.spec_from_file_location("llamacpp_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EmbeddedLLM


def messages() -> list[dict[str, str]]:
    db = open_database(data_dir() / "database" / DB_ID / f"{DB_ID}.sqlite")
    try:
        schema_text = render_schema(db.schema())
    finally:
        db.close()
    return build_messages(schema_text, QUESTION, dialect="sqlite")


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - started, out


def measure(llm: Any, msgs: list[dict[str, str]], repeats: int, max_tokens: int, n: int,
            temperature: float) -> dict[str, Any]:
    """Best-of-`repeats` figures for one loaded model."""
    llm.complete([{"role": "user", "content": "hi"}], max_tokens=1)  # page the weights in
    best: dict[str, float] = {}
    tokens: dict[str, Any] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(seconds, best.get(name, float("inf")))

    drafts = [0, 0]
    for r in range(repeats):
        llm.reset_cache()
        seconds, _ = timed(llm.complete, msgs, n=1, temperature=0.0, max_tokens=1)
        keep("prefill", seconds)
        keep("prefill_only", llm.last_prefill_seconds)
        llm.reset_cache()
        seconds, greedy = timed(llm.complete, msgs, n=1, temperature=0.0, max_tokens=max_tokens)
        keep("greedy", seconds)
        keep("greedy_decode", llm.last_decode_seconds)
        drafts = [llm.last_draft_accepted, llm.last_draft_tokens]
        llm.reset_cache()
        seconds, samples = timed(llm.complete, msgs, n=n, temperature=temperature,
                                   max_tokens=max_tokens, seed=r)
        keep("samples", seconds)
        # The pipeline's pattern: one greedy call, then n-1 samples on the same prompt.
        llm.reset_cache()
        seconds_g, _ = timed(llm.complete, msgs, n=1, temperature=0.0, max_tokens=max_tokens)
        seconds_s, rest = timed(llm.complete, msgs, n=n - 1, temperature=temperature,
                                  max_tokens=max_tokens, seed=r)
        keep("pipeline", seconds_g + seconds_s)
        tokens[f"run{r}"] = {
            "greedy": greedy[0].completion_tokens,
            "samples": [c.completion_tokens for c in samples],
            "pipeline_samples": [c.completion_tokens for c in rest],
            "distinct_samples": len({c.text for c in samples}),
        }
        print(f"  run {r}: greedy {greedy[0].completion_tokens} tokens, samples "
              f"{[c.completion_tokens for c in samples]} tokens", flush=True)
    prefill = best["prefill"]
    out: dict[str, Any] = {
        "prompt_tokens": greedy[0].prompt_tokens,
        "wall_seconds": {k: round(v, 3) for k, v in best.items()},
        "decode_seconds": {k: round(best[k] - prefill, 3) for k in ("greedy", "samples")},
        "completion_tokens": tokens,
    }
    out["prefill_tokens_per_s"] = round(greedy[0].prompt_tokens / best["prefill_only"], 1)
    out["decode_tokens_per_s"] = round(greedy[0].completion_tokens / best["greedy_decode"], 1)
    out["drafts_taken"] = drafts
    out["samples_over_greedy_decode"] = round((best["samples"] - prefill) / max(best["greedy"] - prefill, 1e-9), 2)
    out["samples_over_greedy_wall"] = round(best["samples"] / best["greedy"], 2)
    out["pipeline_over_greedy_wall"] = round(best["pipeline"] / best["greedy"], 2)
    return out


def parse_option(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    lowered = value.strip().lower()
    parsed: Any = {"true": True, "false": False}.get(lowered, value)
    if isinstance(parsed, str) and parsed.isdigit():
        parsed = int(parsed)
    return key.strip(), parsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="0.5b,1.5b")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--impl", default=None, help="module file to load EmbeddedLLM from (default: the package)")
    parser.add_argument("--option", action="append", default=[], help="extra EmbeddedLLM keyword, key=value")
    parser.add_argument("--label", default="after")
    parser.add_argument("--llama-path", default=None, help="directory to import llama_cpp from (another build)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    if not (data_dir() / "database" / DB_ID).is_dir():
        print(f"Spider data not found under {data_dir()}", file=sys.stderr)
        return 2
    if args.llama_path:
        sys.path.insert(0, args.llama_path)
    import llama_cpp

    build = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    print(f"llama_cpp from {Path(llama_cpp.__file__).parent}: {build}", flush=True)
    embedded = load_impl(args.impl)
    options = dict(parse_option(o) for o in args.option)
    msgs = messages()
    cache = Path(os.environ.get("SQLWRIGHT_CACHE_DIR") or Path.home() / ".cache" / "sqlwright")
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for short in args.models.split(","):
        name = f"qwen2.5-coder-{short.strip()}"
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        print(f"{name} [{args.label}] load average {' '.join(load)}", flush=True)
        llm = embedded(model_path(name, cache), n_ctx=4096, n_threads=args.threads, seed=0, **options)
        try:
            figures = measure(llm, msgs, args.repeats, args.max_tokens, args.n, args.temperature)
        finally:
            llm.close()
        figures["load_average_before"] = [float(x) for x in load]
        figures["options"] = options
        figures["build"] = build
        wall = figures["wall_seconds"]
        print(f"  prompt {figures['prompt_tokens']} tokens; best of {args.repeats}: prefill {wall['prefill']:.2f}s, "
              f"greedy {wall['greedy']:.2f}s, n={args.n} samples {wall['samples']:.2f}s, "
              f"greedy + {args.n - 1} samples {wall['pipeline']:.2f}s")
        print(f"  prefill {figures['prefill_tokens_per_s']} tokens/s, greedy decode {figures['decode_tokens_per_s']} "
              f"tokens/s, drafts taken {figures['drafts_taken'][0]} of {figures['drafts_taken'][1]}")
        print(f"  samples/greedy after the prefill {figures['samples_over_greedy_decode']}x "
              f"(target <= 1.6); pipeline/greedy {figures['pipeline_over_greedy_wall']}x (target <= 2)", flush=True)
        results.setdefault(name, {})[args.label] = figures
    if not args.no_save:
        results["_setup"] = {
            "prompt": f"Spider dev {DB_ID} schema (render_schema) + question, pipeline build_messages (sqlite)",
            "max_tokens": args.max_tokens, "n": args.n, "temperature": args.temperature,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"saved {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
