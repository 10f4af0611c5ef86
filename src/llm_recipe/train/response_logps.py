"""Log-probs of the response tokens of a preference batch (DPO's policy and reference passes).

The LM head runs only where a response token is predicted (`logits_to_keep` as a boolean mask,
transformers >= 5), inside the model's own forward so DDP/FSDP/peft wrappers see a normal call:
prompt and padding positions cost no vocabulary projection. Batches come from either collate of
`train.dpo_data` (shared-prompt rows or TRL's split rows); both describe targets the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .shared_prompt import attention_mask_for


def supports_mask_logits_to_keep() -> bool:
    """transformers >= 5 slices hidden states by a boolean (batch, seq) mask before the LM head."""
    try:
        from transformers.modeling_utils import slice_logits_to_keep  # noqa: F401
    except ImportError:
        return False
    return True


MASK_LOGITS_TO_KEEP = supports_mask_logits_to_keep()


def token_logps(model, batch: dict) -> torch.Tensor:
    """Log-prob of every response token of the batch (flat, in `batch['seq']` order).

    The LM head runs only where a response token is predicted (`logits_to_keep` as a boolean mask,
    inside the model's own forward so DDP/FSDP/peft wrappers see a normal call)."""
    kw: dict = {"input_ids": batch["input_ids"], "use_cache": False}
    if "allowed" in batch:
        kw["attention_mask"] = attention_mask_for(model, batch["allowed"], "dpo.share_prompt")
        kw["position_ids"] = batch["position_ids"]
    else:
        kw["attention_mask"] = batch["attention_mask"]
    if MASK_LOGITS_TO_KEEP:
        logits = model(**kw, logits_to_keep=batch["keep"]).logits
    else:
        logits = model(**kw).logits[batch["keep"]]
    logits = logits[batch["src"]].float()
    tgt = batch["tgt"]
    return logits.gather(-1, tgt[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def sequence_logps(model, batch: dict, per_token: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs: (chosen [B], rejected [B])."""
    tok = token_logps(model, batch) if per_token is None else per_token
    n = len(batch["n_chosen"])
    sums = torch.zeros(2 * n, dtype=tok.dtype, device=tok.device).index_add(0, batch["seq"], tok)
    return sums[:n], sums[n:]


# A reference called per step: (policy as the loop holds it, batch) -> (chosen, rejected) log-probs.
ReferenceFn = Callable[[torch.nn.Module, dict], tuple[torch.Tensor, torch.Tensor]]
