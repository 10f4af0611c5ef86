"""Records from JSONL (gz), Parquet, CSV, Arrow, datasets folders and hub names, the same through
every stage that reads records, with bad records counted by where they are."""

import gzip
import json

import pytest
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.files import BadLine
from llm_recipe.record_sources import iter_source

RECORDS = [
    {"messages": [{"role": "user", "content": "東京はどこ？"}, {"role": "assistant", "content": "日本の首都です。"}]},
    {"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]},
    {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
]


def _write_all(tmp_path, records) -> dict:
    """The same records in every supported container."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = {}
    out["jsonl"] = tmp_path / "d.jsonl"
    out["jsonl"].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    out["jsonl.gz"] = tmp_path / "d.jsonl.gz"
    out["jsonl.gz"].write_bytes(gzip.compress(out["jsonl"].read_bytes()))
    out["parquet"] = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(records), out["parquet"])
    out["csv"] = tmp_path / "d.csv"  # nested fields as JSON cells, as spreadsheets export them
    out["csv"].write_text("messages\n" + "".join('"' + json.dumps(r["messages"], ensure_ascii=False).replace('"', '""')
                                                 + '"\n' for r in records), encoding="utf-8")
    ds = datasets.Dataset.from_list(records)
    out["datasets folder"] = tmp_path / "saved"
    ds.save_to_disk(str(out["datasets folder"]))
    out["datasets dict:train"] = tmp_path / "saved_dict"
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(out["datasets dict:train"]))
    out["folder of files"] = tmp_path / "shards"
    out["folder of files"].mkdir()
    pq.write_table(pa.Table.from_pylist(records[:1]), out["folder of files"] / "a.parquet")
    (out["folder of files"] / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[1:]), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return _write_all(tmp_path_factory.mktemp("sources"), RECORDS)


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "parquet", "csv", "datasets folder", "datasets dict:train",
                                  "folder of files"])
def test_every_container_yields_the_same_records(sources, kind):
    got = list(iter_source(sources[kind]))
    assert [r for _, r in got] == RECORDS
    assert all(str(sources[kind]) in where for where, _ in got)


def test_splits_and_row_positions(sources):
    test = list(iter_source(f"{sources['datasets dict:train']}:test"))
    assert [r for _, r in test] == RECORDS[:1] and test[0][0].endswith(":row 1")
    with pytest.raises(FileNotFoundError, match="no split 'dev'.*train, test"):
        list(iter_source(f"{sources['datasets dict:train']}:dev"))


def test_bad_records_are_named_by_file_and_line(tmp_path):
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("text\nfine\n\"x\",extra\n", encoding="utf-8")
    bad = [(w, r) for w, r in iter_source(csv_path) if isinstance(r, BadLine)]
    assert [(w, r.reason) for w, r in bad] == [(f"{csv_path}:3", "bad_csv_row")]
    jl = tmp_path / "bad.jsonl"
    jl.write_bytes(b'{"text": "a"}\nnot json\n\xff\xfe\n')
    assert [r.reason for _, r in iter_source(jl) if isinstance(r, BadLine)] == ["invalid_json", "not_utf8"]


def test_missing_paths_and_unreachable_hub_names_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        list(iter_source(tmp_path / "nope.jsonl"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="not a local file or folder, and loading it as a hub dataset failed"):
        list(iter_source("some-org/some-dataset-that-is-not-here"))


def test_stages_read_parquet_csv_and_datasets_folders(sources, tmp_path, tokenizer_dir):
    """SFT statistics, preference conversion and pretraining documents from the non-JSONL sources."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llm_recipe.train.pretrain import read_documents

    for kind in ("parquet", "csv", "datasets folder"):
        res = CliRunner().invoke(app, ["sft-stats", "-t", str(tokenizer_dir), "-d", str(sources[kind]),
                                       "--set", "sft.format=chatml"])
        assert res.exit_code == 0, res.output
        assert "records: 3  kept: 3" in res.output, res.output
    pairs = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(4)]
    pq.write_table(pa.Table.from_pylist(pairs), tmp_path / "pairs.parquet")
    datasets.Dataset.from_list(pairs).save_to_disk(str(tmp_path / "pairs_ds"))
    for src in (tmp_path / "pairs.parquet", tmp_path / "pairs_ds"):
        out = tmp_path / "pairs_out.jsonl"
        res = CliRunner().invoke(app, ["prefs", "convert", str(src), "--out", str(out)])
        assert res.exit_code == 0 and "pairs: 4" in res.output, res.output
        assert [json.loads(ln)["chosen"] for ln in out.read_text().splitlines()] == [p["chosen"] for p in pairs]
    docs_csv = tmp_path / "docs.csv"
    docs_csv.write_text("id,text\na,first document\nb,\nc,third document\n", encoding="utf-8")
    docs, stats = read_documents([docs_csv])
    assert [d for d, _ in docs] == ["a", "c"] and stats.skipped == {"empty_text": 1}


def test_a_conversion_that_keeps_nothing_fails_with_the_reasons(tmp_path):
    bad = tmp_path / "bad.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"prompt": "q", "answer": "no pair here"}] * 3), bad)
    res = CliRunner().invoke(app, ["prefs", "convert", str(bad), "--out", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 2 and "no usable preference pairs (kept 0, skipped 3" in res.output, res.output
    assert "Traceback" not in res.output


def test_curation_reads_csv_and_datasets_folders(tmp_path):
    """The curation readers take the same containers: a datasets folder is its Arrow shards."""
    import datasets

    from llm_recipe.data.readers import ShardReader, list_shards

    docs = [{"id": f"d{i}", "text": f"document number {i} " * 5, "source": "web"} for i in range(5)]
    datasets.Dataset.from_list(docs).save_to_disk(str(tmp_path / "corpus"))
    (tmp_path / "extra.csv").write_text("id,text\nx,a csv document\ny,\n", encoding="utf-8")
    shards = list_shards([tmp_path / "corpus", tmp_path / "extra.csv"])
    assert [s.suffix for s in shards] == [".arrow", ".csv"]
    read = [d for s in shards for d in ShardReader().read(s)]
    assert [d["id"] for d in read if not isinstance(d, BadLine)] == ["d0", "d1", "d2", "d3", "d4", "x"]
    assert [(b.line, b.reason) for b in read if isinstance(b, BadLine)] == [(2, "empty_text")]
