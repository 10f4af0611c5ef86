"""SimPO and ORPO: TRL 1.16's own loss functions give the same values, the objective's shared-prompt
batches give the average log-probs a plain forward pass gives, and DPO trains with them without
any reference pass."""

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from llm_recipe.config import DPOConfig
from llm_recipe.train.dpo_data import DPOExample, collate_shared, collate_split
from llm_recipe.train.reference_free import ReferenceFreeObjective, orpo_log_odds, simpo_losses

trl_cpo = pytest.importorskip("trl.experimental.cpo")
trl_orpo = pytest.importorskip("trl.experimental.orpo")


def test_losses_equal_trls_cpo_simpo_and_orpo_odds_ratio():
    g = torch.Generator().manual_seed(0)
    avg_c, avg_r = -3 * torch.rand(32, generator=g) - 1e-3, -3 * torch.rand(32, generator=g) - 1e-3
    cpu = SimpleNamespace(device="cpu")
    cpo = SimpleNamespace(loss_type="simpo", beta=2.0, simpo_gamma=0.5, label_smoothing=0.1, alpha=0.0, accelerator=cpu)
    theirs = trl_cpo.CPOTrainer.cpo_loss(cpo, avg_c, avg_r)[0]
    assert simpo_losses(avg_c, avg_r, beta=2.0, gamma=0.5, label_smoothing=0.1) == pytest.approx(theirs, abs=1e-6)
    orpo = SimpleNamespace(beta=0.1, accelerator=cpu)
    theirs = trl_orpo.ORPOTrainer.odds_ratio_loss(orpo, avg_c, avg_r)[0]  # beta * logsigmoid(log odds ratio)
    assert 0.1 * F.logsigmoid(orpo_log_odds(avg_c, avg_r)) == pytest.approx(theirs, abs=1e-6)


@pytest.fixture(scope="module")
def micro(tokenizer):
    from llm_recipe.models.presets import build_preset_model

    return build_preset_model("micro", tokenizer, seed=3).eval()


EXAMPLES = [DPOExample([5, 6, 7, 8], [20, 21, 22], [30, 31]), DPOExample([9, 10], [40, 41, 42, 43], [50]),
            DPOExample([11, 12, 13], [60], [70, 71, 72])]


def _plain_avg_logps(model, prompt, response):
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    toks = [logp[len(prompt) - 1 + j, t] for j, t in enumerate(response)]
    return torch.stack(toks).mean(), -torch.stack(toks).mean()


@pytest.mark.parametrize("loss_type", ["simpo", "orpo"])
@pytest.mark.parametrize("share_prompt", [True, False])
def test_objective_equals_the_formula_on_plain_forward_passes(micro, loss_type, share_prompt):
    cfg = DPOConfig(loss_type=loss_type, beta=2.0 if loss_type == "simpo" else 0.1, simpo_gamma=0.5,
                    share_prompt=share_prompt)
    batch = (collate_shared if share_prompt else collate_split)(EXAMPLES, 0)
    with torch.no_grad():
        loss, metrics = ReferenceFreeObjective(0, cfg).loss(micro, batch)
    c = [_plain_avg_logps(micro, e.prompt_ids, e.chosen_ids) for e in EXAMPLES]
    r = [_plain_avg_logps(micro, e.prompt_ids, e.rejected_ids) for e in EXAMPLES]
    avg_c, avg_r = torch.stack([x[0] for x in c]), torch.stack([x[0] for x in r])
    if loss_type == "simpo":
        want = simpo_losses(avg_c, avg_r, 2.0, 0.5).mean()
    else:  # TRL's ORPO: NLL over all chosen tokens, minus lambda * mean logsigmoid(log odds ratio)
        n = torch.tensor([len(e.chosen_ids) for e in EXAMPLES], dtype=torch.float)
        nll = (torch.stack([x[1] for x in c]) * n).sum() / n.sum()
        want = nll - 0.1 * F.logsigmoid(orpo_log_odds(avg_c, avg_r)).mean()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert metrics["reward_accuracy"] == (avg_c > avg_r).float().mean().item()


def test_dpo_stage_trains_simpo_without_a_reference(tmp_path, tokenizer):
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.preference.records import PreferencePair
    from llm_recipe.tokenizer.chat_formats import FORMATS, apply_chat_format
    from llm_recipe.train.dpo import run_dpo

    tok = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    apply_chat_format(tok, FORMATS["chatml"])
    base = tmp_path / "base"
    build_preset_model("micro", tok, seed=0).save_pretrained(base)
    tok.save_pretrained(base)
    pairs = [PreferencePair(f"Question {i}?", f"Let me explain. Answer {i}.", f"Answer {i}.") for i in range(24)]
    cfg = DPOConfig(loss_type="simpo", beta=2.0, max_steps=3, batch_size=8, eval_every=3, eval_batches=1,
                    warmup_steps=0, lr=1e-3)
    res = run_dpo(init=str(base), train_pairs=pairs[:20], eval_pairs=pairs[20:], cfg=cfg, output_dir=tmp_path / "dpo")
    assert (res.model_dir / "model.safetensors").exists() and not (tmp_path / "dpo" / "reference").exists()
    report = json.loads((tmp_path / "dpo" / "data_report.json").read_text())
    assert report["reference"] == {"mode": "none (reference-free loss)"}
    assert "eval_simpo_loss" in res.final_eval and res.steps == 3
