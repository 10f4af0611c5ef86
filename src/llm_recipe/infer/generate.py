"""Batched text generation with KV cache (transformers' `generate`) and reproducible sampling."""

from __future__ import annotations

import torch

from ..config import GenerateConfig


@torch.no_grad()
def generate_texts(model, tokenizer, prompts: list[str], cfg: GenerateConfig, seed: int = 0) -> list[str]:
    """Continue each prompt; returns only the generated continuation (special tokens removed)."""
    model.eval()
    device = next(model.parameters()).device
    # Left padding so every prompt's last token sits at the same position for batched decoding.
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left").to(device)
    do_sample = cfg.temperature > 0
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        out = model.generate(
            **enc,
            max_new_tokens=cfg.max_new_tokens,
            do_sample=do_sample,
            temperature=cfg.temperature if do_sample else None,
            top_k=cfg.top_k if do_sample else None,
            top_p=cfg.top_p if do_sample else None,
            repetition_penalty=cfg.repetition_penalty,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            use_cache=True,
        )
    new_tokens = out[:, enc["input_ids"].shape[1] :]
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
