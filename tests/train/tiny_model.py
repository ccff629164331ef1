"""A tiny random Qwen2 for the training tests: the same model as a Hugging Face directory and as a GGUF.

`build_tiny_qwen2(directory)` makes a 2-layer Qwen2 (hidden 64, 4 query heads / 2 KV heads) with a small
byte-level BPE vocabulary (trained here on a few SQL and chat lines, with Qwen2's pre-tokenizer regex and
special tokens) and the Qwen2.5 chat template, and writes it twice:

- ``hf/``: transformers' ``save_pretrained`` (model, tokenizer, chat template, generation config);
- ``tiny-qwen2-f32.gguf``: the same weights in F32 with llama.cpp's qwen2 metadata (gpt2 tokenizer model,
  qwen2 pre-tokenizer, tokens/types/merges, special token ids, chat template), written with the ``gguf``
  package's GGUFWriter as convert_hf_to_gguf.py writes a Qwen2 (no q/k permutation: Qwen2 uses NEOX rope).

Everything derives from a seed (the weights come from numpy's Generator, not torch's, so that they do not
change with the torch version): the GGUF and its sha256 are the same on every run. Like the real
Qwen2.5-Coder GGUFs sqlwright ships, the output matrix is not tied to the embeddings (``output.weight``).
The weights are scaled so that logits are spread out (nats between the best tokens, not hundredths): greedy
decoding is well-defined, and a wrongly mapped tensor shows as a large logit difference.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEED = 1234
HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
FFN = 128
CONTEXT = 32768
ROPE_THETA = 1_000_000.0
RMS_EPS = 1e-6
BPE_VOCAB = 400  # the byte alphabet (256) + learned merges; the special tokens come after
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # Qwen2's order, after the BPE vocabulary
GGUF_NAME = "tiny-qwen2-f32.gguf"

# Qwen2's pre-tokenizer regex (llama.cpp's pre-tokenizer "qwen2").
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Lines the BPE merges are learned from: SQL, schema renderings and chat-formatted text, so that the usual
# words of a text-to-SQL prompt become single tokens while other text stays split into bytes.
_CORPUS = [
    "SELECT name, country FROM singer WHERE age > 30 ORDER BY age DESC LIMIT 5;",
    "SELECT COUNT(*) FROM concert JOIN singer_in_concert ON concert.concert_id = singer_in_concert.concert_id",
    "SELECT AVG(age), MIN(age), MAX(age) FROM singer GROUP BY country HAVING COUNT(*) > 1",
    "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, age INTEGER)",
    "You are a helpful assistant that writes one SQLite query for the question.",
    "Question: How many singers are from France? Answer with a single ```sql block.",
    "```sql\nSELECT name FROM singer WHERE country = 'France';\n```",
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n",
    "<|im_start|>user\nWhich concerts were held in 2014?<|im_end|>\n<|im_start|>assistant\n",
    "The table lists the singers, their country and their age; each concert has a name and a year.",
]

# The chat template of Qwen2.5(-Coder)-Instruct, as its GGUF carries it (tokenizer.chat_template).
QWEN25_CHAT_TEMPLATE = r'''{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
'''


@dataclass(frozen=True)
class TinyModel:
    """Where the tiny model was written: the HF directory, the GGUF file and the GGUF's sha256."""

    hf_dir: Path
    gguf_path: Path
    sha256: str


def build_tokenizer() -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` as Qwen2's (NFC, Qwen2 regex split, byte level), trained on
    `_CORPUS` to `BPE_VOCAB` tokens, then the special tokens."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # The special tokens are not trained on: they are added after, as Qwen2's are.
    corpus = [line.replace("<|im_start|>", "").replace("<|im_end|>", "") for line in _CORPUS]
    tokenizer.train_from_iterator(corpus * 4, trainer)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return tokenizer


def _weights(vocab: int) -> dict[str, np.ndarray]:
    """The model's tensors by Hugging Face name (float32), drawn from numpy's Generator(SEED).

    Matrices ~ N(0, 1/fan_in) keep activations at unit scale; norms and biases are perturbed so that a
    tensor mapped to the wrong place changes the output; the output matrix is scaled up for peaked logits.
    """
    rng = np.random.default_rng(SEED)
    head_dim = HIDDEN // HEADS

    def matrix(rows: int, cols: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)).astype(np.float32)

    def vector(size: int, center: float, spread: float) -> np.ndarray:
        return (center + spread * rng.standard_normal(size)).astype(np.float32)

    tensors = {"model.embed_tokens.weight": rng.standard_normal((vocab, HIDDEN)).astype(np.float32)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        tensors |= {
            p + "input_layernorm.weight": vector(HIDDEN, 1.0, 0.1),
            p + "self_attn.q_proj.weight": matrix(HEADS * head_dim, HIDDEN),
            p + "self_attn.q_proj.bias": vector(HEADS * head_dim, 0.0, 0.1),
            p + "self_attn.k_proj.weight": matrix(KV_HEADS * head_dim, HIDDEN),
            p + "self_attn.k_proj.bias": vector(KV_HEADS * head_dim, 0.0, 0.1),
            p + "self_attn.v_proj.weight": matrix(KV_HEADS * head_dim, HIDDEN),
            p + "self_attn.v_proj.bias": vector(KV_HEADS * head_dim, 0.0, 0.1),
            p + "self_attn.o_proj.weight": matrix(HIDDEN, HEADS * head_dim),
            p + "post_attention_layernorm.weight": vector(HIDDEN, 1.0, 0.1),
            p + "mlp.gate_proj.weight": matrix(FFN, HIDDEN),
            p + "mlp.up_proj.weight": matrix(FFN, HIDDEN),
            p + "mlp.down_proj.weight": matrix(HIDDEN, FFN),
        }
    tensors["model.norm.weight"] = vector(HIDDEN, 1.0, 0.1)
    tensors["lm_head.weight"] = matrix(vocab, HIDDEN, scale=4.0)
    return tensors


def _save_hf(hf_dir: Path, tokenizer: Any, tensors: dict[str, np.ndarray]) -> None:
    import torch
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    vocab = tokenizer.get_vocab_size()
    eos, pad = tokenizer.token_to_id("<|im_end|>"), tokenizer.token_to_id("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=CONTEXT,
        rope_theta=ROPE_THETA, rms_norm_eps=RMS_EPS, tie_word_embeddings=False, use_sliding_window=False,
        bos_token_id=pad, eos_token_id=eos, pad_token_id=pad, torch_dtype="float32",
    )
    model = Qwen2ForCausalLM(config)
    state = {name: torch.from_numpy(array) for name, array in tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not [m for m in missing if "rotary" not in m], (missing, unexpected)
    model.generation_config = GenerationConfig(bos_token_id=pad, eos_token_id=[eos, pad], pad_token_id=pad)
    model.save_pretrained(hf_dir)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None,
        unk_token=None, chat_template=QWEN25_CHAT_TEMPLATE, model_max_length=CONTEXT,
        additional_special_tokens=list(SPECIAL_TOKENS), clean_up_tokenization_spaces=False,
    )
    fast.save_pretrained(hf_dir)


def _write_gguf(path: Path, tokenizer: Any, tensors: dict[str, np.ndarray]) -> None:
    import gguf

    state = json.loads(tokenizer.to_str())
    vocab = tokenizer.get_vocab_size()
    by_id = {i: t for t, i in tokenizer.get_vocab(with_added_tokens=True).items()}
    assert sorted(by_id) == list(range(vocab)), "token ids must be contiguous"
    special = {t["content"] for t in state["added_tokens"] if t["special"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    token_types = [gguf.TokenType.CONTROL if by_id[i] in special else gguf.TokenType.NORMAL for i in range(vocab)]

    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.QWEN2])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name("sqlwright tiny qwen2 (random, for tests)")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(ROPE_THETA)
    writer.add_layer_norm_rms_eps(RMS_EPS)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list([by_id[i] for i in range(vocab)])
    writer.add_token_types(token_types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tokenizer.token_to_id("<|im_end|>"))
    writer.add_pad_token_id(tokenizer.token_to_id("<|endoftext|>"))
    writer.add_bos_token_id(tokenizer.token_to_id("<|endoftext|>"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(QWEN25_CHAT_TEMPLATE)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, LAYERS)
    for hf_name, array in tensors.items():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert name is not None, hf_name
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def build_tiny_qwen2(directory: str | Path) -> TinyModel:
    """Write the tiny model under `directory` (``hf/`` and the GGUF) and return where it is."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tensors = _weights(tokenizer.get_vocab_size())
    hf_dir = directory / "hf"
    _save_hf(hf_dir, tokenizer, tensors)
    gguf_path = directory / GGUF_NAME
    _write_gguf(gguf_path, tokenizer, tensors)
    sha256 = hashlib.sha256(gguf_path.read_bytes()).hexdigest()
    return TinyModel(hf_dir=hf_dir, gguf_path=gguf_path, sha256=sha256)


ATTENTION_AND_MLP = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def make_random_lora(hf_dir: str | Path, out_dir: str | Path, *, targets: tuple[str, ...] = ATTENTION_AND_MLP,
                     rank: int = 4, alpha: float = 8.0, seed: int = 0, strength: float = 0.5,
                     **lora_options: Any) -> Path:
    """A PEFT LoRA adapter for the model at `hf_dir`, saved to `out_dir`, whose A and B are both random and
    non-zero (a freshly initialised LoRA has B = 0 and changes nothing), entries ~ N(0, strength² / fan_in):
    with the default strength the adapted model's logits differ from the base's by several nats, so an
    export that drops or misplaces a matrix cannot pass a check.
    `lora_options` go to peft.LoraConfig (use_rslora, rank_pattern, alpha_pattern, use_dora, ...)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0,
                        task_type="CAUSAL_LM", **lora_options)
    peft_model = get_peft_model(model, config)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name and param.ndim == 2:  # A and B (not DoRA's magnitude vector)
                fan_in = param.shape[1]
                param.copy_(torch.from_numpy(rng.standard_normal(tuple(param.shape)) * strength / np.sqrt(fan_in)))
    out_dir = Path(out_dir)
    peft_model.save_pretrained(out_dir)
    return out_dir
