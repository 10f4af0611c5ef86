"""Every TRL dataset format through every command that reads it, from every container `datasets`
writes: Parquet, CSV, JSONL.gz and a `save_to_disk` folder.

Two layers, to keep the matrix inside the suite's budget:
  * every cell (format x container x reader) is read by the function the command uses and must give
    exactly what the same records give from a plain JSONL file (for SFT: the same tokens and loss
    mask; for preferences: the same prompt / chosen / rejected; for prompts: the same prompts), so a
    CSV cell left as Python text, or a folder that is not read, fails its cell;
  * one representative cell per command (rotating the containers; the two cells that crashed in
    issue #31; tool calls with LoRA kept as an adapter) runs the command itself end to end on a
    micro model: exit 0, a saved model, every record used. PPO and online DPO read prompts with the
    same functions GRPO does (`read_prompts`, checked for every cell above) and are trained end to
    end by their own tests; they are left out here to keep the suite's budget.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.preference.candidates import read_prompts
from llm_recipe.preference.converters import read_preference_files, read_unpaired_files
from llm_recipe.tokenizer.chat_formats import FORMATS, apply_chat_format
from llm_recipe.train.sft_data import DataStats, read_sft_records, tokenize_examples

datasets = pytest.importorskip("datasets")

N = 48
CITIES = ["Tokyo", "Paris", "Rome", "Cairo", "Lima", "Oslo"]


def _q(i: int) -> str:
    return f"What is the capital of country {i}? 国{i}の首都は？"


def _a(i: int) -> str:
    return f"It is {CITIES[i % len(CITIES)]}, city {i}."


TOOLS = json.dumps([{"type": "function", "function": {"name": "get_weather", "description": "weather of a city",
                                                      "parameters": {"type": "object", "properties": {
                                                          "city": {"type": "string"}}}}}])

FORMATS_SFT = {
    "text": lambda i: {"text": f"{_q(i)} {_a(i)}"},
    "prompt_completion": lambda i: {"prompt": _q(i), "completion": " " + _a(i)},
    "prompt_completion_conv": lambda i: {"prompt": [{"role": "user", "content": _q(i)}],
                                         "completion": [{"role": "assistant", "content": _a(i)}]},
    "messages": lambda i: {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": _q(i)},
                                        {"role": "assistant", "content": _a(i)}]},
    "messages_tools": lambda i: {"messages": [
        {"role": "user", "content": f"Weather in {CITIES[i % 6]}? ({i})"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
            "name": "get_weather", "arguments": json.dumps({"city": CITIES[i % 6]})}}]},
        {"role": "tool", "content": f"sunny, {20 + i % 9} C"},
        {"role": "assistant", "content": f"Sunny in {CITIES[i % 6]}."}], "tools": TOOLS},
}
FORMATS_PREF = {
    "pref_explicit": lambda i: {"prompt": _q(i), "chosen": " " + _a(i), "rejected": " I do not know."},
    "pref_explicit_conv": lambda i: {"prompt": [{"role": "user", "content": _q(i)}],
                                     "chosen": [{"role": "assistant", "content": _a(i)}],
                                     "rejected": [{"role": "assistant", "content": "No idea."}]},
    "pref_implicit": lambda i: {"chosen": f"{_q(i)} {_a(i)}", "rejected": f"{_q(i)} No idea."},
    "pref_implicit_conv": lambda i: {
        "chosen": [{"role": "user", "content": _q(i)}, {"role": "assistant", "content": _a(i)}],
        "rejected": [{"role": "user", "content": _q(i)}, {"role": "assistant", "content": "No idea."}]},
}
FORMATS_KTO = {"unpaired": lambda i: {"prompt": _q(i // 2), "completion": _a(i // 2) if i % 2 == 0 else "No idea.",
                                      "label": i % 2 == 0}}
FORMATS_PROMPT = {
    "prompt_only": lambda i: {"prompt": _q(i)},
    "prompt_only_conv": lambda i: {"prompt": [{"role": "user", "content": _q(i)}]},
}
ALL = {**FORMATS_SFT, **FORMATS_PREF, **FORMATS_KTO, **FORMATS_PROMPT}
CONTAINERS = ("parquet", "csv", "jsonl.gz", "disk")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{format: {container: path}} written by `datasets`, plus "reference": a plain JSONL file."""
    root = tmp_path_factory.mktemp("formats")
    out: dict[str, dict[str, str]] = {}
    for name, make in ALL.items():
        recs = [make(i) for i in range(N)]
        ref = root / f"{name}.jsonl"
        ref.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
        ds = datasets.Dataset.from_list(recs)
        ds.to_parquet(root / f"{name}.parquet")
        ds.to_csv(root / f"{name}.csv", index=False)
        ds.to_json(root / f"{name}.jsonl.gz", compression="gzip", force_ascii=False)
        ds.save_to_disk(str(root / f"{name}_disk"))
        out[name] = {"reference": str(ref), "parquet": str(root / f"{name}.parquet"), "csv": str(root / f"{name}.csv"),
                     "jsonl.gz": str(root / f"{name}.jsonl.gz"), "disk": str(root / f"{name}_disk")}
    return out


@pytest.fixture(scope="module")
def chat_tok(tokenizer):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    apply_chat_format(tok, FORMATS["chatml"])
    return tok


def _sft_tokens(path: str, tok) -> list[tuple[list[int], list[int]]]:
    stats = DataStats()
    exs = tokenize_examples(read_sft_records([path], stats), tok, FORMATS["chatml"], max_length=512, stats=stats)
    assert stats.skipped == {}, (path, stats.examples[:3])
    return [(e.input_ids.tolist(), e.labels.tolist()) for e in exs]


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("fmt", list(FORMATS_SFT))
def test_sft_reads_every_format_from_every_container(fmt, container, files, chat_tok):
    want = _sft_tokens(files[fmt]["reference"], chat_tok)
    assert len(want) == N and all(any(x != -100 for x in labels) for _, labels in want)
    assert _sft_tokens(files[fmt][container], chat_tok) == want


def _pairs(path: str):
    pairs, log = read_preference_files([path])
    assert log.total_skipped == 0, log.where
    return [(p.prompt, p.chosen, p.rejected) for p in pairs]


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("fmt", [*FORMATS_PREF, *FORMATS_KTO])
def test_dpo_and_rm_read_every_preference_format_from_every_container(fmt, container, files):
    """`dpo` and `rm train` read pairs with `read_preference_files` (unpaired KTO records paired per
    prompt); `dpo.loss_type=kto` reads them unpaired (`read_unpaired_files`)."""
    want = _pairs(files[fmt]["reference"])
    assert len(want) == (N // 2 if fmt == "unpaired" else N)
    assert all(isinstance(c, str) and "role" not in c for _, c, _ in want)  # no message repr as a response
    assert _pairs(files[fmt][container]) == want
    unpaired, log = read_unpaired_files([files[fmt][container]])
    assert log.total_skipped == 0 and len(unpaired) == 2 * len(want)
    assert sorted(label for _, _, label, _ in unpaired) == [False] * len(want) + [True] * len(want)


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("fmt", list(FORMATS_PROMPT))
def test_rl_and_online_dpo_read_every_prompt_format_from_every_container(fmt, container, files):
    want = [p["prompt"] for p in read_prompts([files[fmt]["reference"]])]
    assert len(want) == N
    assert [p["prompt"] for p in read_prompts([files[fmt][container]])] == want


def test_csv_list_cells_are_parsed_and_said(files, capsys):
    """`datasets` writes list columns to CSV as NumPy text (no commas, `array(...)` inside): parsed
    back, counted per column in one line; the KTO label column (True/False words) stays text."""
    rows = list(__import__("llm_recipe.record_sources", fromlist=["iter_source"]).iter_source(files["messages_tools"]["csv"]))
    rec = rows[0][1]
    assert rec["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert rec["messages"][0]["tool_calls"] is None
    out = capsys.readouterr().out
    assert f"{files['messages_tools']['csv']}: CSV cells holding lists/dicts (numpy text parsed: messages {N}" in out
    kto = list(__import__("llm_recipe.record_sources", fromlist=["iter_source"]).iter_source(files["unpaired"]["csv"]))
    assert kto[0][1]["label"] == "True" and kto[1][1]["label"] == "False"


def test_a_csv_cell_is_never_evaluated(tmp_path):
    from llm_recipe.cell_literals import parse_cell

    marker = tmp_path / "pwned"
    for cell in (f"[__import__('os').system('touch {marker}')]", "[(lambda: 1)()]", "{'a': open('/etc/passwd')}"):
        assert parse_cell(cell) == (cell, "unparsed")
    assert not marker.exists()
    assert parse_cell("['a' 'b']") == (["a", "b"], "numpy")  # not Python's implicit concatenation 'ab'
    assert parse_cell("[ True False]") == ([True, False], "numpy")
    assert parse_cell("[1.5 2.  nan]")[0][:2] == [1.5, 2.0]
    assert parse_cell("[1 2 ... 9]") == ("[1 2 ... 9]", "unparsed")  # a summarised array cannot be restored
    assert parse_cell("[INST] hello") == ("[INST] hello", "unparsed") and parse_cell("plain") == ("plain", None)


# ---- the commands themselves, one representative cell each -----------------------------------

@pytest.fixture(scope="module")
def chat_model(tmp_path_factory, chat_tok):
    """A micro model whose tokenizer carries ChatML (what an SFT model is for the later stages)."""
    from llm_recipe.models.presets import build_preset_model

    out = tmp_path_factory.mktemp("chat_model")
    model = build_preset_model("micro", chat_tok, seed=0)
    model.save_pretrained(out)
    chat_tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def base_model(tmp_path_factory, tokenizer):
    from llm_recipe.models.presets import build_preset_model

    out = tmp_path_factory.mktemp("base_model")
    build_preset_model("micro", tokenizer, seed=0).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


TRAIN = ["--max-steps", "2", "--batch-size", "4"]
SFT_FAST = [*TRAIN, "--set", "sft.packing=false", "--set", "sft.eval_batches=1", "--set", "sft.max_length=192",
            "--set", "sft.warmup_steps=0", "--set", "sft.demo_prompts=[hi]", "--set", "generate.sampling.max_new_tokens=4"]
PREF_FAST = ["--set", "{s}.eval_batches=1", "--set", "{s}.warmup_steps=0"]
RL_FAST = ["--set", "{s}.iterations=1", "--set", "{s}.rollout_batch_size=4", "--set", "{s}.minibatch_size=4",
           "--set", "{s}.n_prompts=8", "--set", "{s}.eval_prompts=2", "--set", "{s}.sampling.max_new_tokens=4",
           "--set", "{s}.epochs=1", "--set", "grpo.group_size=2"]


def _fast(opts: list[str], section: str) -> list[str]:
    return [o.format(s=section) for o in opts]


CELLS = [  # (command, format, container): the two crashes of #31 first
    ("sft", "text", "csv"), ("sft", "prompt_completion", "jsonl.gz"), ("sft-lora-adapter", "messages_tools", "parquet"),
    ("dpo", "pref_implicit_conv", "csv"), ("kto", "unpaired", "csv"), ("rm", "pref_explicit_conv", "disk"),
    ("grpo", "prompt_only_conv", "disk"),
]


def _command(cmd: str, path: str, model: str, out: str) -> list[str]:
    if cmd == "sft":
        return ["sft", "-m", model, "-d", path, "-o", out, *SFT_FAST]
    if cmd == "sft-lora-adapter":  # LoRA kept as an adapter (lora.save: adapter): the stage's own checks load it
        return ["sft", "-m", model, "-d", path, "-o", out, *SFT_FAST, "--set", "sft.lora.r=4",
                "--set", "sft.lora.save=adapter", "--set", "sft.max_length=512"]
    if cmd in ("dpo", "kto"):
        kto = ["--set", "dpo.loss_type=kto"] if cmd == "kto" else []
        return ["dpo", "-m", model, "-d", path, "-o", out, *TRAIN, *kto, "--set", "dpo.eval_prompts=2",
                "--set", "dpo.max_new_tokens=4", *_fast(PREF_FAST, "dpo")]
    if cmd == "rm":
        return ["rm", "train", "-m", model, "-d", path, "-o", out, *TRAIN, "--set", "rm.norm_samples=4",
                *_fast(PREF_FAST, "rm")]
    return [cmd, "-m", model, "-o", out, "--set", f"{cmd}.prompts=[{path}]", *_fast(RL_FAST, cmd)]


@pytest.mark.parametrize("cmd,fmt,container", CELLS, ids=[f"{c}-{f}-{k}" for c, f, k in CELLS])
def test_the_command_trains_end_to_end(cmd, fmt, container, files, base_model, chat_model, tmp_path):
    model = base_model if cmd.startswith("sft") else chat_model
    res = CliRunner().invoke(app, _command(cmd, files[fmt][container], model, str(tmp_path / "run")))
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    folder = tmp_path / "run" / {"dpo": "dpo", "kto": "dpo", "rm": "reward_model", "grpo": "grpo"}.get(cmd, "sft")
    assert (folder / "model" / "complete.json").is_file(), res.output
    if cmd.startswith("sft"):
        report = json.loads((folder / "data_report.json").read_text())
        assert report["data"]["skipped"] == {} and report["data"]["kept"] == N  # every record trained on
        assert (folder / "samples.jsonl").is_file() and (folder / "format_following.json").is_file()
    if fmt in ("text", "prompt_completion", "messages_tools"):  # no single-turn chat prompt to measure it on
        assert "not_run" in json.loads((folder / "format_following.json").read_text())
    if cmd == "sft-lora-adapter":
        assert (folder / "model" / "adapter_config.json").is_file() and not (folder / "model" / "config.json").is_file()
        assert (folder / "adapter" / "tokenizer.json").is_file()
    if cmd == "kto":
        assert "kto_loss" in (folder / "metrics.jsonl").read_text()


def test_sft_names_the_columns_it_found_and_those_it_reads(tmp_path):
    data = tmp_path / "qa.csv"
    datasets.Dataset.from_list([{"question": "q?", "answer": "a."}] * 3).to_csv(data, index=False)
    stats = DataStats()
    assert read_sft_records([data], stats) == []
    assert stats.examples[0] == (f"{data}:2: missing_fields (columns question, answer; SFT reads messages | "
                                 "conversations | instruction+output | prompt+completion | text)")
