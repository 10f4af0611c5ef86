"""Deduplication at three levels: exact (content hash), fuzzy (MinHash-LSH), semantic (embeddings).

Modules: `shingles` (normalization + vectorized n-gram hashing), `minhash` (signatures, S-curve
band/row choice), `lsh` (per-band spilled buckets), `components` (clusters, kept = first),
`fuzzy` / `exact` / `semantic` (the three levels as library APIs over texts), `steps` (the same
as pipeline steps). Their settings: `config.curate.DedupConfig` (`curate.dedup`); corpora with
known duplicates for tests and benchmarks: `demo.dedup_corpus`.
"""
