"""The preference objectives besides DPO, each against TRL 1.16: SimPO and ORPO (reference-free:
TRL's own loss functions give the same values, shared-prompt batches equal plain forward passes,
no reference pass) and KTO (thumbs up/down records: TRL's KTOTrainer loss on its own tokens)."""

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


def _chat_base(tmp_path, tokenizer):
    """A micro model folder whose tokenizer carries ChatML: what DPO starts from."""
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.tokenizer.chat_formats import FORMATS, apply_chat_format

    tok = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    apply_chat_format(tok, FORMATS["chatml"])
    base = tmp_path / "base"
    build_preset_model("micro", tok, seed=0).save_pretrained(base)
    tok.save_pretrained(base)
    return base


def test_dpo_stage_trains_simpo_without_a_reference(tmp_path, tokenizer):
    from llm_recipe.preference.records import PreferencePair
    from llm_recipe.train.dpo import run_dpo

    base = _chat_base(tmp_path, tokenizer)
    pairs = [PreferencePair(f"Question {i}?", f"Let me explain. Answer {i}.", f"Answer {i}.") for i in range(24)]
    cfg = DPOConfig(loss_type="simpo", beta=2.0, max_steps=3, batch_size=8, eval_every=3, eval_batches=1,
                    warmup_steps=0, lr=1e-3)
    res = run_dpo(init=str(base), train_pairs=pairs[:20], eval_pairs=pairs[20:], cfg=cfg, output_dir=tmp_path / "dpo")
    assert (res.model_dir / "model.safetensors").exists() and not (tmp_path / "dpo" / "reference").exists()
    report = json.loads((tmp_path / "dpo" / "data_report.json").read_text())
    assert report["reference"] == {"mode": "none (reference-free loss)"}
    assert "eval_simpo_loss" in res.final_eval and res.steps == 3


# ---- KTO: unpaired thumbs-up / down data -----------------------------------------------------
def test_kto_loss_equals_trls_kto_trainer_on_its_own_tokens(tokenizer, tmp_path):
    """TRL's KTOTrainer builds prompt, completion and mismatched-completion (KL) tokens; our objective
    on exactly those tokens gives TRL's loss."""
    import copy

    import datasets
    import trl

    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.tokenizer.chat_formats import FORMATS, apply_chat_format
    from llm_recipe.train.dpo_data import KTOExample
    from llm_recipe.train.kto import KTOObjective
    from llm_recipe.train.response_logps import sequence_logps

    tok = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    apply_chat_format(tok, FORMATS["chatml"])
    policy, ref = build_preset_model("micro", tok, seed=0).eval(), build_preset_model("micro", tok, seed=1).eval()
    rows = [{"prompt": [{"role": "user", "content": f"Question {i}: where is Tokyo?"}],
             "completion": [{"role": "assistant", "content": f"Tokyo is in Japan ({i})." if i % 2 else "No idea."}],
             "label": i % 3 != 0} for i in range(8)]
    args = trl.KTOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, use_cpu=True, bf16=False,
                         report_to=[], max_length=96, beta=0.1, desirable_weight=1.0, undesirable_weight=1.5)
    trainer = trl.KTOTrainer(model=copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=args,
                             train_dataset=datasets.Dataset.from_list(rows), processing_class=tok)
    trainer.model.eval()
    ds = trainer.train_dataset
    cfg = DPOConfig(loss_type="kto", beta=0.1, kto_desirable_weight=1.0, kto_undesirable_weight=1.5)
    objective = KTOObjective(tok.pad_token_id, cfg)
    for idx in ([0, 1, 2, 3], [4, 5, 6, 7]):
        with torch.no_grad():
            theirs = trainer.compute_loss(trainer.model, trainer.data_collator([ds[i] for i in idx])).item()
        ex = [KTOExample(list(ds[i]["prompt_ids"]), list(ds[i]["completion_ids"]), list(ds[i]["KL_completion_ids"]),
                         label=ds[i]["label"]) for i in idx]
        batch = objective.collate(ex)
        with torch.no_grad():
            batch["ref_chosen"], batch["ref_rejected"] = sequence_logps(ref, batch)
            ours, metrics = objective.loss(policy, batch)
        assert ours.item() == pytest.approx(theirs, rel=1e-5), idx
        assert metrics["kl"] >= 0


def test_dpo_stage_trains_kto_from_thumbs_up_down_records(tmp_path, tokenizer):
    from llm_recipe.preference.converters import read_unpaired_files
    from llm_recipe.train.dpo import run_dpo
    from llm_recipe.train.kto import with_mismatched_completions

    base = _chat_base(tmp_path, tokenizer)
    data = tmp_path / "thumbs.jsonl"
    recs = [{"prompt": f"Q{i}?", "completion": f"Let me explain. A{i}." if i % 2 else f"A{i}.", "label": bool(i % 2)}
            for i in range(24)] + [{"prompt": "Q?", "completion": "x", "label": "yes"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    records, log = read_unpaired_files([data])
    assert len(records) == 24 and log.skipped == {"bad_label": 1}
    pairs = with_mismatched_completions(records)
    cfg = DPOConfig(loss_type="kto", max_steps=3, batch_size=8, eval_every=3, eval_batches=1, warmup_steps=0, lr=1e-3)
    res = run_dpo(init=str(base), train_pairs=pairs[:20], eval_pairs=pairs[20:], cfg=cfg, output_dir=tmp_path / "dpo")
    assert (res.model_dir / "model.safetensors").exists() and "eval_kto_loss" in res.final_eval
    # the reference log-probs were computed once and cached, as for DPO
    assert (tmp_path / "dpo" / "reference" / "ref_logps.safetensors").exists()
    # the same from the command line: the records read as they are, the bad one counted
    from typer.testing import CliRunner

    from llm_recipe.cli import app

    cli = CliRunner().invoke(app, ["dpo", "-m", str(base), "-d", str(data), "-o", str(tmp_path / "cli"),
                                   "--set", "dpo.loss_type=kto", "--max-steps", "2", "--batch-size", "8",
                                   "--set", "dpo.eval_every=2", "--set", "dpo.eval_batches=1"])
    assert cli.exit_code == 0, cli.output
    report = json.loads((tmp_path / "cli" / "dpo" / "data_report.json").read_text())
    assert report["read"]["kept"] == 24 and report["read"]["skipped"] == {"bad_label": 1}
