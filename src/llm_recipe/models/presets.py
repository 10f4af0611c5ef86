"""Model presets: Llama-style decoders (RoPE, RMSNorm, SwiGLU) built from `transformers` configs.

Using the stock `LlamaConfig` means every saved model is a plain Hugging Face directory that
`AutoModelForCausalLM.from_pretrained` loads anywhere, with no code of ours required.
"""

from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

# name -> (hidden, layers, heads, kv_heads, intermediate)
PRESETS: dict[str, tuple[int, int, int, int, int]] = {
    "micro": (64, 2, 4, 4, 176),  # ~0.3M params: unit tests and smoke runs
    "tiny": (192, 6, 6, 6, 512),  # ~3.4M params with a 4k vocab: minutes on 2 CPU cores
    "small": (512, 8, 8, 8, 1408),  # ~27M params: a GPU box, or patience
}


def preset_config(
    preset: str, tokenizer: PreTrainedTokenizerBase, max_position_embeddings: int = 2048
) -> LlamaConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset '{preset}' (choose from {', '.join(PRESETS)})")
    hidden, layers, heads, kv_heads, inter = PRESETS[preset]
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=inter,
        max_position_embeddings=max_position_embeddings,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,  # saves vocab*hidden params, which dominate tiny models
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attention_dropout=0.0,
    )


def build_preset_model(preset: str, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> LlamaForCausalLM:
    """A freshly initialised model; `seed` fixes the initial weights."""
    import torch

    config = preset_config(preset, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
