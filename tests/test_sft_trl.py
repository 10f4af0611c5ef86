"""Our SFT objective against TRL's SFTTrainer: same tokens, same mask, same loss (to 1e-5).

TRL is a test-only dependency. Its trainer is really constructed on the same model and
tokenizer (whose chat_template is our ChatML format, `{% generation %}` tags included), with
`assistant_only_loss=True`, so TRL computes its own tokens and mask from the conversations.
"""

import pytest
import torch
from transformers import AutoTokenizer

from llm_recipe.models.presets import build_preset_model
from llm_recipe.tokenizer.chat_formats import FORMATS, apply_chat_format
from llm_recipe.train.sft import SFTObjective
from llm_recipe.train.sft_data import (
    Conversation,
    collate_rows,
    pack_examples,
    single_rows,
    tokenize_examples,
)

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

CONVS = [
    [{"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "The capital of France is Paris."},
     {"role": "user", "content": "And which continent is it in?"},
     {"role": "assistant", "content": "France is in Europe."}],
    [{"role": "user", "content": "猫は何を食べますか？"}, {"role": "assistant", "content": "猫は主に魚や肉を食べます。"}],
    [{"role": "user", "content": "Write a Python function that adds two numbers."},
     {"role": "assistant", "content": "```python\ndef add(a, b):\n    return a + b\n```"}],
    [{"role": "user", "content": "次の文を英語に訳してください。\n東京は日本の首都です。"},
     {"role": "assistant", "content": "Tokyo is the capital of Japan."}],
]


@pytest.fixture(scope="module")
def setup(tokenizer, tmp_path_factory):
    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    apply_chat_format(tok, FORMATS["chatml"])
    torch.manual_seed(0)
    model = build_preset_model("micro", tok, seed=1)
    args = trl.SFTConfig(
        output_dir=str(tmp_path_factory.mktemp("trl")), assistant_only_loss=True, max_length=256,
        per_device_train_batch_size=4, bf16=False, use_cpu=True, report_to=[],
    )
    trainer = trl.SFTTrainer(model=model, args=args, processing_class=tok,
                             train_dataset=datasets.Dataset.from_list([{"messages": c} for c in CONVS]))
    ours = tokenize_examples([Conversation(c) for c in CONVS], tok, FORMATS["chatml"], max_length=256)
    return tok, trainer, ours


def test_trl_tokenizes_and_masks_the_conversations_exactly_as_we_do(setup):
    _, trainer, ours = setup
    ds = trainer.train_dataset
    assert len(ds) == len(ours) == 4
    for row, ex in zip(ds, ours, strict=True):
        assert row["input_ids"] == ex.input_ids.tolist()
        assert row["labels"] == ex.labels.tolist()


def test_sft_loss_on_a_fixed_batch_equals_trl(setup):
    tok, trainer, ours = setup
    trl_batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    trainer.model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, dict(trl_batch)).item()
        objective = SFTObjective(tok.pad_token_id)
        padded = objective.loss(trainer.model, collate_rows(single_rows(ours), tok.pad_token_id))[0].item()
        packed_rows = pack_examples(ours, 256)
        assert len(packed_rows) < 4  # really packed: several conversations share a row
        packed = objective.loss(trainer.model, collate_rows(packed_rows, tok.pad_token_id))[0].item()
    assert trl_loss > 1.0  # an untrained model: a real, non-trivial loss
    assert abs(padded - trl_loss) < 1e-5
    assert abs(packed - trl_loss) < 1e-5  # packing (block-diagonal attention) changes nothing
