"""A model folder as one GGUF file (llama.cpp's format), written with the `gguf` library.

    write_gguf(model_dir, out_file, dtype)   -> report (architecture, tensors, tokens, dtype)
    check_gguf(model_dir, gguf_file, dtype)  -> the file loaded back by transformers (`gguf_file=`)
                                                against the source: max logit difference on a chat
                                                prompt (within TOLERANCE[dtype] or an error) and
                                                the same tokens for a JA/EN text

Architectures: Llama-style decoders (`LlamaForCausalLM`: the project's presets, SmolLM2 and every
Llama / Mistral-shaped model it imports), as llama.cpp's `convert_hf_to_gguf.py` writes them:
the metadata under `llama.*`, tensor names from `gguf`'s own name map, the query and key
projections permuted to GGML's rotary layout (transformers undoes it when it reads the file), 1-D
tensors (norms) in float32, no `output.weight` when the embedding is tied. The tokenizer is the
byte-level BPE of a `tokenizer.json` (vocabulary, merges, special tokens as control tokens, the
BOS / EOS / PAD / UNK ids, whether BOS is added) and the chat template goes in as
`tokenizer.chat_template`. dtypes: f32, f16, bf16, q8_0 (a tensor whose rows do not split into
q8_0's blocks of 32 stays f16, as llama.cpp does; the report counts them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

DTYPES = ("f16", "bf16", "q8_0", "f32")
# Max |logit difference| of the GGUF loaded back, relative to the largest |logit| of the source
# (at least 1): f32 is exact up to summation order; f16 / bf16 round every weight (bf16 keeps 8 bits
# of mantissa); q8_0 keeps 8 bits per weight with a scale per 32 (the tied embedding, used as the
# output layer, included, as llama.cpp writes it). Measured on SmolLM2-135M-Instruct
# (benchmarks/export_gguf.py): f32 0, f16 1.0e-3, bf16 7.0e-3, q8_0 5.4e-2; the limits leave ~2-10x.
TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "bf16": 5e-2, "q8_0": 1e-1}
SUPPORTED = ("LlamaForCausalLM", "MistralForCausalLM")


class ExportError(ValueError):
    """The model cannot be exported as asked; the message names the folder and why."""


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF's rotary layout (halves) -> GGML's (interleaved pairs), per head (llama.cpp's `permute`)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensor(name: str, t: torch.Tensor, cfg, n_kv: int) -> np.ndarray:
    w = t.detach().to(torch.float32).cpu().numpy()
    if name.endswith("self_attn.q_proj.weight"):
        return _permute(w, cfg.num_attention_heads)
    if name.endswith("self_attn.k_proj.weight"):
        return _permute(w, n_kv)
    return w


def _quantized(w: np.ndarray, dtype: str):
    """(data, raw dtype or None, what it became) for one tensor at `dtype`."""
    import gguf

    if w.ndim == 1 or dtype == "f32":
        return w.astype(np.float32), None, "f32"
    if dtype == "f16" or (dtype == "q8_0" and w.shape[-1] % 32):
        return w.astype(np.float16), None, "f16"
    qtype = {"bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[dtype]
    return gguf.quants.quantize(w, qtype), qtype, dtype


def _tokenizer(writer, model_dir: Path, tok) -> int:
    """Byte-level BPE vocabulary, merges, special tokens and chat template into the writer."""
    import gguf

    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    model = spec.get("model", {})
    if model.get("type") != "BPE" or not any(p.get("type") == "ByteLevel" for p in _pre_tokenizers(spec)):
        raise ExportError(f"{model_dir}: GGUF export takes a byte-level BPE tokenizer (this one is "
                          f"{model.get('type')}); convert it with llama.cpp's convert_hf_to_gguf.py")
    vocab = tok.get_vocab()
    tokens = [""] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    if any(t == "" for t in tokens):
        raise ExportError(f"{model_dir}: the vocabulary has gaps (ids without a token)")
    special = {a["content"] for a in spec.get("added_tokens", []) if a.get("special")}
    added = {a["content"] for a in spec.get("added_tokens", [])}
    types = [gguf.TokenType.CONTROL if t in special else gguf.TokenType.USER_DEFINED if t in added
             else gguf.TokenType.NORMAL for t in tokens]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")  # GPT-2's split regex, as `pre_tokenizers.ByteLevel(use_regex=True)`
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for token, add in (("bos_token", writer.add_bos_token_id), ("eos_token", writer.add_eos_token_id),
                       ("unk_token", writer.add_unk_token_id), ("pad_token", writer.add_pad_token_id)):
        if getattr(tok, token, None) is not None:
            add(tok.convert_tokens_to_ids(getattr(tok, token)))
    bos = tok.bos_token_id
    writer.add_add_bos_token(bool(bos is not None and tok("a")["input_ids"][:1] == [bos]))
    template = getattr(tok, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    if template:
        writer.add_chat_template(template)
    return len(tokens)


def _pre_tokenizers(spec: dict) -> list[dict]:
    pre = spec.get("pre_tokenizer") or {}
    return pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]


def write_gguf(model_dir: str | os.PathLike, out_file: str | os.PathLike, dtype: str = "f16") -> dict:
    """Write `model_dir` (a plain HF causal LM folder) as a GGUF file; returns what was written."""
    import gguf

    from ..models.loading import load_causal_lm, load_tokenizer

    model_dir, out_file = Path(model_dir), Path(out_file)
    if dtype not in DTYPES:
        raise ExportError(f"--dtype {dtype}: choose one of {', '.join(DTYPES)}")
    model, tok = load_causal_lm(model_dir), load_tokenizer(model_dir)
    cfg = model.config
    arch = type(model).__name__
    if arch not in SUPPORTED:
        raise ExportError(f"{model_dir}: GGUF export writes {', '.join(SUPPORTED)}, not {arch}")
    n_kv = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name(model_dir.resolve().parent.name if model_dir.name == "model" else model_dir.name)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float((getattr(cfg, "rope_parameters", None) or {}).get("rope_theta")
                                    or getattr(cfg, "rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                          "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype])
    n_tokens = _tokenizer(writer, model_dir, tok)
    written: dict[str, int] = {}
    for name, t in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # llama.cpp reads the embedding as the output layer
        if "rotary_emb" in name:
            continue
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ExportError(f"{model_dir}: no GGUF name for tensor {name}")
        data, raw, became = _quantized(_tensor(name, t, cfg, n_kv), dtype)
        writer.add_tensor(new, data, raw_dtype=raw)
        written[became] = written.get(became, 0) + 1
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out_file)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return {"file": str(out_file), "bytes": out_file.stat().st_size, "architecture": arch, "dtype": dtype,
            "tensors": written, "tokens": n_tokens, "chat_template": bool(getattr(tok, "chat_template", None))}


PROBE = [{"role": "user", "content": "What is the capital of Japan? 日本の首都はどこですか？"}]
PROBE_TEXT = "東京は日本の首都です。 Tokyo is the capital of Japan, 2024."


@torch.no_grad()
def check_gguf(model_dir: str | os.PathLike, gguf_file: str | os.PathLike, dtype: str) -> dict:
    """The GGUF read back by transformers (as `llm-recipe import` reads one) against the source:
    logits on a chat prompt within TOLERANCE[dtype], the same tokens for a JA/EN text, the chat
    template carried. Raises ExportError when they disagree."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..models.loading import load_causal_lm, load_tokenizer

    gguf_file = Path(gguf_file)
    src, tok = load_causal_lm(model_dir).eval(), load_tokenizer(model_dir)
    back = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32).eval()
    back_tok = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    text = tok.apply_chat_template(PROBE, tokenize=False, add_generation_prompt=True) if tok.chat_template \
        else PROBE[0]["content"]
    ids = torch.tensor([tok(text, add_special_tokens=not tok.chat_template)["input_ids"]])
    want, got = src(input_ids=ids).logits, back(input_ids=ids).logits
    diff = float((want - got).abs().max())
    scale = max(1.0, float(want.abs().max()))
    same_tokens = tok(PROBE_TEXT, add_special_tokens=False)["input_ids"] == \
        back_tok(PROBE_TEXT, add_special_tokens=False)["input_ids"]
    same_template = (getattr(back_tok, "chat_template", None) or None) == (tok.chat_template or None)
    report = {"max_logit_difference": diff, "relative": diff / scale, "tolerance": TOLERANCE[dtype],
              "same_argmax": bool((want.argmax(-1) == got.argmax(-1)).float().mean() == 1.0),
              "same_tokens": same_tokens, "same_chat_template": same_template, "probe_tokens": int(ids.shape[1])}
    if not (diff / scale <= TOLERANCE[dtype] and same_tokens and same_template):
        raise ExportError(f"{gguf_file}: read back by transformers it does not match {model_dir} "
                          f"(max logit difference {diff:.3g}, tolerance {TOLERANCE[dtype]:g} x {scale:.3g}; "
                          f"same tokens: {same_tokens}; same chat template: {same_template})")
    return report
