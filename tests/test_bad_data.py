"""Bad input data is one line that says what was skipped and why (#20): no tokenizer trained on
nothing, no traceback for empty or malformed data, a skip summary for every stage that reads
records and an error above `max_bad_records`; a huge record is skipped unread."""

import json
import time

from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.files import BadLine, iter_jsonl, set_max_record_bytes

TINY = ["--set", "model.preset=micro", "--set", "tokenizer.vocab_size=400", "--set", "pretrain.block_size=16",
        "--set", "pretrain.batch_size=2",
        "--max-steps", "1"]


def pretrain(out, data, *extra):
    return CliRunner().invoke(app, ["pretrain", "-o", str(out), "--set", f"pretrain.data=[{data}]", *TINY, *extra])


def lines(path, recs):
    path.write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def error_line(res) -> str:
    return next(x for x in res.output.splitlines() if x.startswith("error:"))


def test_data_without_text_trains_no_tokenizer_and_good_data_then_does(tmp_path):
    bad = lines(tmp_path / "bad.jsonl", [{"content": f"doc {i}"} for i in range(20)])
    res = pretrain(tmp_path / "run", bad)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert error_line(res) == (f"error: pretraining data: no usable records (20 read; skipped: missing_text 20; "
                               f"first: {bad}:1: missing_text)")
    assert not (tmp_path / "run" / "tokenizer").exists()  # nothing trained on nothing
    for empty in ("", "\n\n   \n"):  # an empty or blank file: the same line, not a traceback
        res = pretrain(tmp_path / "run", lines(tmp_path / "empty.jsonl", [empty]))
        assert res.exit_code == 2 and "no usable records (0 read; skipped: no records at all)" in res.output
    good = lines(tmp_path / "good.jsonl", [{"text": f"document number {i} says hello world " * 8} for i in range(40)])
    res = pretrain(tmp_path / "run", good)
    assert res.exit_code == 0, res.output
    marker = json.loads((tmp_path / "run" / "stages" / "tokenizer.json").read_text())  # the stage's completion marker
    assert list(marker["key"]["inputs"]) == [str(good)]


def test_mostly_malformed_data_fails_with_the_share_and_a_few_bad_records_are_said(tmp_path):
    good = [{"text": f"document number {i} says hello world " * 8} for i in range(20)]
    mostly_bad = lines(tmp_path / "mostly_bad.jsonl", good[:1] + ["{not json\n"] * 19)
    res = pretrain(tmp_path / "a", mostly_bad)
    assert res.exit_code == 2, res.output
    assert error_line(res).startswith("error: pretraining data: 19 of 20 records are unusable (95%: invalid_json 19; "
                                      f"first: {mostly_bad}:2: invalid_json)")
    assert "more than pretrain.max_bad_records=0.1" in res.output
    one_bad = lines(tmp_path / "one_bad.jsonl", good + ["{not json\n"])
    res = pretrain(tmp_path / "b", one_bad)
    assert res.exit_code == 0, res.output
    assert f"pretraining data: kept 20 of 21 records; skipped 1 (invalid_json 1; first: {one_bad}:21" in res.output
    report = json.loads((tmp_path / "b" / "pretrain" / "data_report.json").read_text())
    assert report["read"]["skipped"] == {"invalid_json": 1}
    assert pretrain(tmp_path / "a", mostly_bad, "--set", "pretrain.max_bad_records=1").exit_code == 0


def test_dpo_with_no_usable_pairs_says_why_once(tmp_path, tokenizer):
    """It printed 'skipped 300' and then failed with 'kept 0, skipped 0'."""
    from llm_recipe.models.presets import build_preset_model

    model = tmp_path / "sft"
    build_preset_model("micro", tokenizer, seed=0).save_pretrained(model)
    tokenizer.save_pretrained(model)
    data = lines(tmp_path / "prefs.jsonl", [{"prompt": f"q{i}", "chosen": "same", "rejected": "same"} for i in range(30)]
                 + [{"prompt": "q", "chosen": "a"}] * 270)
    res = CliRunner().invoke(app, ["dpo", "--model", str(model), "--data", str(data), "-o", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    assert error_line(res).startswith("error: dpo: preference data: no usable records (300 read; skipped: "
                                      "missing_field 270, chosen_equals_rejected 30; first: ")


def test_a_huge_record_is_skipped_unread_and_counted(tmp_path):
    path = lines(tmp_path / "big.jsonl", [{"text": "small"}, {"text": "x" * (3 << 20)}, {"text": "after"}])
    set_max_record_bytes(1 << 20)
    try:
        t0 = time.perf_counter()
        recs = [r for _, r in iter_jsonl(path)]
        assert time.perf_counter() - t0 < 5
    finally:
        set_max_record_bytes(8 << 20)
    assert recs[0] == {"text": "small"} and recs[2] == {"text": "after"}
    assert isinstance(recs[1], BadLine) and (recs[1].line, recs[1].reason) == (2, "too_large")
    assert "max_record_mb=1" in recs[1].detail


def test_jsonl_records_read_as_the_json_module_reads_them(tmp_path):
    """The reader's fast path (orjson) leaves to `json` what orjson reads otherwise or rejects: an
    integer beyond 64 bits stays an integer (orjson makes it a float), NaN and lone surrogates are
    read, and a bad line keeps its reason."""
    import json

    raw = [b'{"id": 123456789012345678901234567890, "text": "big id"}', b'{"text": "nan", "score": NaN}',
           b'{"text": "\\ud800 lone"}', b'{"text": "\xe3\x81\x82 ok", "n": 18446744073709551615}',
           b'{"text": "broken', b'{"text": "\xff\xfe"}', b'[1, 2]']
    path = tmp_path / "edge.jsonl"
    path.write_bytes(b"\n".join(raw) + b"\n")
    recs = [r for _, r in iter_jsonl(path)]
    for got, line in zip(recs[:4], raw, strict=False):
        assert repr(got) == repr(json.loads(line.decode("utf-8")))
    assert recs[0]["id"] == 123456789012345678901234567890 and isinstance(recs[0]["id"], int)
    assert [(r.line, r.reason) for r in recs[4:]] == [(5, "invalid_json"), (6, "not_utf8"), (7, "not_object")]


def test_a_folder_that_is_no_model_and_a_malicious_pickle_are_one_line(tmp_path, tokenizer):
    import os

    import torch

    from llm_recipe.models.presets import build_preset_model

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("hi")
    res = CliRunner().invoke(app, ["generate", "-m", str(folder), "-p", "hi"])  # was: ValueError traceback
    assert res.exit_code == 2 and error_line(res) == f"error: {folder}: not a model folder (no config.json)"
    # weights without a tokenizer: dpo printed "Couldn't instantiate the backend tokenizer from one of: "
    build_preset_model("micro", tokenizer, seed=0).config.save_pretrained(folder)
    res = CliRunner().invoke(app, ["dpo", "-m", str(folder), "-o", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    assert error_line(res).startswith(f"error: {folder}: not a tokenizer folder (no tokenizer.json / ")

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    tokenizer.save_pretrained(folder)
    torch.save({"model.embed_tokens.weight": Evil()}, folder / "pytorch_model.bin")
    res = CliRunner().invoke(app, ["generate", "-m", str(folder), "-p", "hi"])  # was: an UnpicklingError traceback
    assert res.exit_code == 2 and "refused to load model" in error_line(res) and "Traceback" not in res.output
    assert not (tmp_path / "pwned").exists()


def test_curation_names_a_missing_tokenizer_before_it_runs(tmp_path):
    res = CliRunner().invoke(app, ["curate", "--config", "tiny", "-o", str(tmp_path),
                                   "--set", "curate.mixing.tokenizer=/no/such/tok"])
    assert res.exit_code == 2 and error_line(res).startswith("error: /no/such/tok: no such tokenizer folder"), res.output
