"""DPO losses, log-probs and reference caching on a fixed batch (no training needed)."""

import math

import pytest
import torch
import torch.nn.functional as F

from llm_recipe.config import DPOConfig, LoRAConfig
from llm_recipe.models.presets import build_preset_model
from llm_recipe.preference.converters import read_preference_files
from llm_recipe.preference.records import PreferencePair, SkipLog
from llm_recipe.tokenizer.chat_formats import apply_chat_format, get_chat_format
from llm_recipe.train.dpo import DPOObjective, preference_loss, sequence_logps
from llm_recipe.train.dpo_data import (
    DPOExample,
    TruncationStats,
    collate_shared,
    collate_split,
    tokenize_dpo_pairs,
)
from llm_recipe.train.reference_logps import (
    adapter_disabled_reference,
    attach_reference_logps,
    compute_reference_logps,
    frozen_copy_reference,
)

PAIRS = [
    ("What is the capital of France?", "Let me explain. The capital of France is Paris.", "The capital of France is Paris."),
    ("フランスの首都はどこですか？", "Let me explain. フランスの首都はパリです。", "フランスの首都はパリです。"),
    ("What does a cat eat?", "A cat mostly eats fish.", "Cats eat stones and sand every single day."),
    ("List three colors.", "Red, green and blue.", "Let me explain. Colors."),
    ("Where does a penguin live?", "A penguin lives in Antarctica.", "Penguins live in the desert."),
    ("日本の首都は？", "日本の首都は東京です。", "わかりません。"),
]


@pytest.fixture(scope="module")
def chat_tok(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    apply_chat_format(tok, get_chat_format("chatml"))
    return tok


@pytest.fixture(scope="module")
def models(chat_tok):
    """A reference and a policy that differs from it (so rewards are not zero)."""
    ref = build_preset_model("micro", chat_tok, seed=1).eval()
    policy = build_preset_model("micro", chat_tok, seed=1)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return policy.eval(), ref


@pytest.fixture(scope="module")
def examples(chat_tok):
    pairs = [PreferencePair(p, c, r) for p, c, r in PAIRS]
    return tokenize_dpo_pairs(pairs, chat_tok, get_chat_format("chatml"), max_length=128)


@pytest.fixture(scope="module")
def trl_trainer(models, chat_tok, tmp_path_factory):
    """TRL's DPOTrainer on copies of the same policy and reference, built once; the loss variant is
    switched per test through the attributes its `_compute_loss` reads."""
    import copy

    from datasets import Dataset
    from trl import DPOConfig as TRLConfig
    from trl import DPOTrainer

    policy, ref = models
    args = TRLConfig(output_dir=str(tmp_path_factory.mktemp("trl")), report_to="none", beta=0.1,
                     per_device_train_batch_size=len(PAIRS), use_cpu=True, bf16=False, max_length=128,
                     save_strategy="no", logging_strategy="no")
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": p}],
                             "chosen": [{"role": "assistant", "content": c}],
                             "rejected": [{"role": "assistant", "content": r}]} for p, c, r in PAIRS])
    return DPOTrainer(model=copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=args, train_dataset=ds,
                      processing_class=chat_tok)


def _ours(policy, ref, examples, cfg, shared=True):
    collate = collate_shared if shared else collate_split
    batch = collate(examples, 0)
    with torch.no_grad():
        pc, pr = sequence_logps(policy, batch)
        rc, rr = sequence_logps(ref, batch)
    return preference_loss(pc, pr, rc, rr, beta=cfg.beta, loss_type=cfg.loss_type,
                           label_smoothing=cfg.label_smoothing, n_chosen=batch["n_chosen"],
                           n_rejected=batch["n_rejected"])


@pytest.mark.parametrize("loss_type,eps", [("sigmoid", 0.0), ("ipo", 0.0), ("robust", 0.2)])
def test_losses_and_rewards_equal_trl_dpo_trainer(models, trl_trainer, loss_type, eps):
    policy, ref = models
    trl = trl_trainer
    trl.loss_types, trl.loss_weights, trl.label_smoothing = [loss_type], [1.0], eps
    ds = trl.train_dataset
    # The very tokens TRL trains on, fed to our objective.
    ex = [DPOExample(list(r["prompt_ids"]), list(r["chosen_ids"]), list(r["rejected_ids"])) for r in ds]
    cfg = DPOConfig(loss_type=loss_type, label_smoothing=eps)
    for i in range(len(ex)):  # per pair: TRL logs batch means only
        inputs = trl.data_collator([ds[i]])
        trl._metrics["train"].clear()
        trl.model.train()
        with torch.no_grad():
            trl_loss = trl.compute_loss(trl.model, inputs).item()
        m = trl._metrics["train"]
        for shared in (True, False):
            losses, rc, rr = _ours(policy, ref, ex[i : i + 1], cfg, shared)
            # IPO losses are ~25 (1/(2β) squared): there 1e-5 is relative, float32's resolution.
            assert losses.item() == pytest.approx(trl_loss, abs=1e-5, rel=1e-5)
            assert rc.item() == pytest.approx(m["rewards/chosen"][-1], abs=1e-5)
            assert rr.item() == pytest.approx(m["rewards/rejected"][-1], abs=1e-5)
    # And the whole batch at once: mean loss, reward means, margin, accuracy.
    trl._metrics["train"].clear()
    with torch.no_grad():
        trl_loss = trl.compute_loss(trl.model, trl.data_collator([ds[i] for i in range(len(ds))])).item()
    m = trl._metrics["train"]
    losses, rc, rr = _ours(policy, ref, ex, cfg)
    assert abs(rc).max() > 0.01  # the policy really differs from the reference
    assert losses.mean().item() == pytest.approx(trl_loss, abs=1e-5, rel=1e-5)
    assert (rc - rr).mean().item() == pytest.approx(m["rewards/margins"][-1], abs=1e-5)
    assert (rc > rr).float().mean().item() == pytest.approx(m["rewards/accuracies"][-1], abs=1e-6)


def test_cdpo_equals_formula_by_hand():
    pc, pr = torch.tensor([-10.0, -7.5, -3.0]), torch.tensor([-9.0, -12.0, -3.5])
    rc, rr = torch.tensor([-9.5, -8.0, -3.2]), torch.tensor([-9.5, -11.0, -3.1])
    beta, eps = 0.3, 0.15
    losses, c, r = preference_loss(pc, pr, rc, rr, beta=beta, loss_type="cdpo", label_smoothing=eps)
    for i in range(3):
        d = ((pc[i] - rc[i]) - (pr[i] - rr[i])).item()
        sig = 1 / (1 + math.exp(-beta * d))
        by_hand = -(1 - eps) * math.log(sig) - eps * math.log(1 - sig)
        assert losses[i].item() == pytest.approx(by_hand, rel=1e-6)
        assert c[i].item() == pytest.approx(beta * (pc[i] - rc[i]).item(), rel=1e-6)
    plain, _, _ = preference_loss(pc, pr, rc, rr, beta=beta, loss_type="sigmoid")
    assert not torch.allclose(losses, plain)  # smoothing changes the loss
    zero, _, _ = preference_loss(pc, pr, rc, rr, beta=beta, loss_type="cdpo", label_smoothing=0.0)
    torch.testing.assert_close(zero, plain)


def test_shared_prompt_row_equals_separate_sequences(models, examples):
    """One row per pair (prompt once, rejected masked from chosen) gives each response the log-prob
    it gets alone, token by token."""
    policy, _ = models
    with torch.no_grad():
        sc, sr = sequence_logps(policy, collate_shared(examples, 0))
        pc, pr = sequence_logps(policy, collate_split(examples, 0))
        for i, e in enumerate(examples):  # and against a plain unpadded forward of each sequence
            for resp, got in ((e.chosen_ids, sc[i]), (e.rejected_ids, sr[i])):
                ids = torch.tensor([e.prompt_ids + resp])
                logp = F.log_softmax(policy(input_ids=ids).logits[0, :-1].float(), -1)
                tgt = ids[0, 1:]
                alone = logp[torch.arange(len(tgt)), tgt][-len(resp):].sum()
                assert got.item() == pytest.approx(alone.item(), abs=1e-4)
    torch.testing.assert_close(sc, pc, atol=1e-4, rtol=0)
    torch.testing.assert_close(sr, pr, atol=1e-4, rtol=0)


def test_cached_reference_logps_equal_per_step(models, examples, tmp_path):
    import copy

    policy, ref = models
    cfg = DPOConfig(batch_size=2)
    objective = DPOObjective(0, cfg)
    cached = [copy.copy(e) for e in examples]
    info = attach_reference_logps(ref, objective, cached, [], tmp_path / "cache", batch_size=2)
    assert not info["reused"] and (tmp_path / "cache" / "ref_logps.safetensors").exists()
    per_step = frozen_copy_reference(ref)
    for i in range(0, len(examples), 3):
        batch = collate_shared(examples[i : i + 3], 0)
        c, r = per_step(policy, batch)
        cb = collate_shared(cached[i : i + 3], 0)
        torch.testing.assert_close(cb["ref_chosen"], c, atol=1e-5, rtol=0)
        torch.testing.assert_close(cb["ref_rejected"], r, atol=1e-5, rtol=0)
        # The objective reports the same loss whichever way the reference arrives.
        obj_step = DPOObjective(0, cfg, reference=per_step)
        loss_cached, _ = objective.loss(policy, cb)
        loss_step, _ = obj_step.loss(policy, batch)
        assert loss_cached.item() == pytest.approx(loss_step.item(), abs=1e-6)
    # A second run reuses the cache; changed reference weights invalidate it.
    again = [copy.copy(e) for e in examples]
    assert attach_reference_logps(ref, objective, again, [], tmp_path / "cache", batch_size=2)["reused"]
    assert [e.ref_chosen for e in again] == [e.ref_chosen for e in cached]
    assert not attach_reference_logps(policy, objective, again, [], tmp_path / "cache", batch_size=2)["reused"]


def test_policy_equal_to_reference_gives_log2_and_zero_accuracy(models, examples):
    _, ref = models
    objective = DPOObjective(0, DPOConfig(), reference=frozen_copy_reference(ref))
    loss, m = objective.loss(ref, objective.collate(examples))
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    assert m["reward_accuracy"] == 0.0 and m["reward_margin"] == pytest.approx(0.0, abs=1e-6)


def test_sft_term_adds_chosen_nll(models, examples):
    policy, ref = models
    batch = collate_shared(examples, 0)
    base = DPOObjective(0, DPOConfig(), reference=frozen_copy_reference(ref))
    with_sft = DPOObjective(0, DPOConfig(sft_alpha=0.5), reference=frozen_copy_reference(ref))
    with torch.no_grad():
        l0, _ = base.loss(policy, batch)
        l1, m = with_sft.loss(policy, batch)
        pc, _ = sequence_logps(policy, batch)
    n_chosen = sum(len(e.chosen_ids) for e in examples)
    assert m["sft_nll"] == pytest.approx(-pc.sum().item() / n_chosen, rel=1e-5)
    assert l1.item() == pytest.approx(l0.item() + 0.5 * m["sft_nll"], rel=1e-6)


def test_lora_reference_is_base_with_adapters_disabled(chat_tok, examples):
    from llm_recipe.models.finetuning import with_lora

    base = build_preset_model("micro", chat_tok, seed=2).eval()
    batch = collate_shared(examples, 0)
    with torch.no_grad():
        want_c, want_r = sequence_logps(base, batch)
    model = with_lora(build_preset_model("micro", chat_tok, seed=2), LoRAConfig(r=4))
    with torch.no_grad():  # make the adapters matter
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)
        pc, _ = sequence_logps(model, batch)
    assert (pc - want_c).abs().max() > 1e-3
    c, r = adapter_disabled_reference()(model, batch)
    torch.testing.assert_close(c, want_c, atol=1e-5, rtol=0)
    torch.testing.assert_close(r, want_r, atol=1e-5, rtol=0)
    cached = compute_reference_logps(model, lambda ex: collate_shared(ex, 0), examples, 4, lora=True)
    torch.testing.assert_close(torch.from_numpy(cached[:, 0]), want_c, atol=1e-5, rtol=0)


def test_prompt_is_masked_and_overlong_pairs_truncated_response_first(chat_tok):
    fmt = get_chat_format("chatml")
    long = " ".join(["word"] * 200)
    pairs = [PreferencePair("Say hello.", "Hello there, friend.", "Go away."),
             PreferencePair("Tell me a story.", "Once " + long, "Twice " + long),
             PreferencePair(" ".join(["prompt"] * 300), "Yes.", "No.")]
    log, trunc = SkipLog(), TruncationStats()
    ex = tokenize_dpo_pairs(pairs, chat_tok, fmt, max_length=48, log=log, trunc=trunc)
    assert len(ex) == 2 and log.kept == 2
    assert log.skipped == {"prompt_too_long": 1}
    assert trunc.truncated_pairs == 1 and trunc.truncated_tokens > 100
    short, cut = ex
    # The prompt (user turn and the assistant header) carries no target; the response does.
    assert chat_tok.decode(short.prompt_ids).endswith("<|im_start|>assistant\n")
    assert chat_tok.decode(short.chosen_ids).startswith("Hello there") and "<|im_end|>" in chat_tok.decode(short.chosen_ids)
    # Truncation kept the whole prompt and the start of the responses.
    assert chat_tok.decode(cut.prompt_ids).count("Tell me a story.") == 1
    assert len(cut.prompt_ids) + len(cut.chosen_ids) == 48 and len(cut.prompt_ids) + len(cut.rejected_ids) == 48
    assert chat_tok.decode(cut.chosen_ids).startswith("Once")


def test_bad_preference_lines_are_counted_not_raised(tmp_path):
    f = tmp_path / "prefs.jsonl"
    f.write_bytes(
        b'{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}\n'
        b'{not json}\n'
        b'\xff\xfe\n'
        b'{"prompt": "Hi", "chosen": "Hello!"}\n'
        b'{"prompt": "", "chosen": "a", "rejected": "b"}\n'
        b'{"prompt": "Hi", "chosen": "Same", "rejected": "Same"}\n'
        b'{"prompt": "Hey", "chosen": "Hey there.", "rejected": "What?"}\n'
    )
    pairs, log = read_preference_files([f])
    assert [p.prompt for p in pairs] == ["Hi", "Hey"]
    assert log.skipped == {"invalid_json": 1, "not_utf8": 1, "missing_field": 1, "empty_prompt": 1,
                           "chosen_equals_rejected": 1}
    assert any(w.startswith(f"{f}:2") for w in log.where["invalid_json"])
