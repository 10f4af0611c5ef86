"""Readers, writers, bad input accounting and the `llm-recipe curate` command."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import zstandard
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.config import CurateConfig
from llm_recipe.data.curate import curate
from llm_recipe.data.readers import ShardReader, list_shards
from llm_recipe.data.writers import ShardWriter

DOC = {"id": "x1", "text": "東京は日本の首都です。", "source": "wiki", "url": "https://w.example/1",
       "meta": {"lang": "ja"}}


def _lines(*recs) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode()) + b"\n"
                    for r in recs)


def test_reader_jsonl_gz_zst_parquet_and_text(tmp_path):
    raw = _lines(DOC, {"text": "no id here", "extra": 5})
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    with ShardWriter(tmp_path, "c", "parquet") as w:
        w.write([DOC, {**DOC, "id": "x2", "url": None, "meta": {"k": [1, 2]}}])
    (tmp_path / "notes.txt").write_text("first para\nline two\n\n\nsecond para\n", encoding="utf-8")
    r = ShardReader()
    for name in ("a.jsonl.gz", "b.jsonl.zst"):
        docs = list(r.read(tmp_path / name))
        assert docs[0] == DOC
        assert docs[1]["id"] == f"{name.split('.')[0]}:2" and docs[1]["source"] == name.split(".")[0]
        assert docs[1]["meta"] == {"extra": 5} and docs[1]["url"] is None
    pq = list(r.read(tmp_path / "c-00000.parquet"))
    assert pq[0] == DOC and pq[1]["meta"] == {"k": [1, 2]} and pq[1]["url"] is None
    paras = list(r.read(tmp_path / "notes.txt"))
    assert [(d["id"], d["text"]) for d in paras] == [("notes:1", "first para\nline two"), ("notes:5", "second para")]
    whole = list(ShardReader(text_unit="file", default_source="notes_src").read(tmp_path / "notes.txt"))
    assert len(whole) == 1 and whole[0]["source"] == "notes_src" and "second para" in whole[0]["text"]
    assert [p.name for p in list_shards([tmp_path])] == [
        "a.jsonl.gz", "b.jsonl.zst", "c-00000.parquet", "notes.txt"]


def test_writer_rolls_files_atomically(tmp_path):
    docs = [{**DOC, "id": f"d{i}"} for i in range(25)]
    for fmt in ("jsonl", "jsonl.gz", "jsonl.zst", "parquet"):
        with ShardWriter(tmp_path / fmt, "part", fmt, max_docs=10) as w:
            w.write(docs[:7])
            w.write(docs[7:])
        files = sorted((tmp_path / fmt).iterdir())
        assert [f.name for f in files] == [f"part-0000{i}.{fmt}" for i in range(3)]  # no temp files left
        back = [d for f in files for d in ShardReader().read(f)]
        assert back == docs
    w = ShardWriter(tmp_path / "aborted", "part")
    w.write(docs[:3])
    w.abort()
    assert list((tmp_path / "aborted").iterdir()) == []


def test_bad_input_is_counted_with_file_and_line(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "web.jsonl").write_bytes(_lines(
        DOC,
        b'{"id": "broken", "text": ',  # line 2: malformed JSON
        b'{"id": "latin1", "text": "caf\xe9"}',  # line 3: not UTF-8
        {"id": "notext", "body": "the text is under another key"},  # line 4
        {"id": "blank", "text": "   "},  # line 5
        [1, 2],  # line 6: not an object
        {**DOC, "id": "x2"},
    ))
    (src / "empty.jsonl").write_bytes(b"")
    cfg = CurateConfig.model_validate({
        "executor": {"workers": 1, "progress": False},
        "output": {"keep_dropped": True},
        "language": {"enabled": False}, "gopher_quality": {"enabled": False},
        "gopher_repetition": {"enabled": False},  # its top-2-gram rule drops one-sentence docs
    })
    res = curate(cfg, tmp_path / "out", inputs=[src])
    read = res.stats["steps"]["read"]
    assert read["dropped"] == {"invalid_json": 1, "not_utf8": 1, "missing_text": 1, "empty_text": 1,
                               "not_object": 1, "empty_file": 1}
    assert read["docs_in"] == 8 and read["docs_out"] == 2 and res.stats["docs_out"] == 2
    where = {b["where"]: b["reason"] for b in res.stats["bad_input"]}
    web = str(src / "web.jsonl")
    assert where == {f"{web}:2": "invalid_json", f"{web}:3": "not_utf8", f"{web}:4": "missing_text",
                     f"{web}:5": "empty_text", f"{web}:6": "not_object",
                     f"{src / 'empty.jsonl'}:0": "empty_file"}
    audit = [json.loads(line) for f in (tmp_path / "out" / "dropped").iterdir() for line in f.read_text(encoding="utf-8").splitlines()]
    assert {a["where"] for a in audit} == set(where)
    stats_file = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats_file["records_in"] == stats_file["docs_out"] + stats_file["dropped_total"]


def test_missing_input_and_bad_config_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        curate(CurateConfig(), tmp_path / "out", inputs=[tmp_path / "nope"])
    runner = CliRunner()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"curate:\n  input:\n    paths: [{tmp_path / 'nope'}]\n", encoding="utf-8")
    r = runner.invoke(app, ["curate", "--config", str(cfg), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "input path does not exist" in r.output and "Traceback" not in r.output
    cfg.write_text("curate:\n  gopher_quality:\n    min_doc_wrds: 3\n", encoding="utf-8")
    r = runner.invoke(app, ["curate", "--config", str(cfg)])
    assert r.exit_code == 2 and "unknown key 'curate.gopher_quality.min_doc_wrds'" in r.output
    cfg.write_bytes(b"curate: [unclosed\n")
    r = runner.invoke(app, ["curate", "--config", str(cfg)])
    assert r.exit_code == 2 and "invalid YAML" in r.output
    r = runner.invoke(app, ["curate", "--config", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2 and "config file not found" in r.output


def test_cli_curate_runs_and_writes_stats(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    docs = [{"id": f"e{i}", "text": f"The weather in city number {i} was sunny and warm today, so many of "
             f"the people went to the park with their friends and families.", "source": "web"}
            for i in range(6)]
    docs.append({"id": "spam", "text": "!!!!!買って!!!! 5000円→500円!!!!", "source": "web"})
    (src / "web.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs),
                                   encoding="utf-8")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"curate:\n  input:\n    paths: [{src}]\n  executor:\n    workers: 1\n    progress: false\n"
        "  gopher_quality:\n    min_doc_words: 10\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["curate", "--config", str(cfg), "-o", str(tmp_path / "run"), "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert "records in: 7  docs out: 6  dropped: 1" in r.output
    stats = json.loads((tmp_path / "run" / "curated" / "stats.json").read_text())
    assert stats["seed"] == 3 and stats["dropped_by_step"]["char_ratios"] == 1
    assert Path(stats["outputs"][0]).exists()


def test_asking_more_noise_than_the_corpus_has_is_one_line(tmp_path):
    r = CliRunner().invoke(app, ["curate", "-c", "curate", "-o", str(tmp_path), "--set", "corpus.docs_per_source=20",
                                 "--set", "curate.input.sample_noise_per_type=1000"])
    assert r.exit_code == 2 and "lower curate.input.sample_noise_per_type" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) <= 3
