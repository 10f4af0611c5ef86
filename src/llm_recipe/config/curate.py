"""The `curate:` section of a recipe: inputs, outputs, executor and one block per step.

Every step's defaults live here and only here (the step classes in `llm_recipe.data` take their
block): filter thresholds with the published defaults (Gopher, FineWeb, Swallow), dedup levels
and model-based filters (off unless asked: they remove real documents or need a model). A recipe
tunes them for its data. Every step block has `enabled`, `sources` (only these sources; None =
all) and `skip_sources` (e.g. keep web-prose rules off `code`). Step order is fixed, cheapest
first (see `data.curate.build_steps`). Pydantic only: importing this stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .section import Section
from .stages import JudgeEndpointConfig


class StepConfig(Section):
    enabled: bool = Field(True, description="run this step")
    sources: list[str] | None = Field(
        None, description="run it only on documents of these sources (None: every source)")
    skip_sources: list[str] = Field(
        default_factory=list, description="sources this step leaves alone (e.g. keep web-prose rules off `code`)")


class CurateInput(Section):
    paths: list[Path] = Field(
        default_factory=list,
        description="files or folders of .jsonl/.parquet/.txt (optionally .gz/.zst); "
        "empty: the bundled sample corpus (see sample_noise)",
    )
    text_key: str = Field("text", description="the field holding a record's text")
    id_key: str = Field("id", description="the field holding a record's id (missing: file:line)")
    default_source: str | None = Field(None, description="source for records without one (else file stem)")
    text_unit: Literal["file", "paragraph"] = Field(
        "paragraph", description="plain-text files: one document per file, or per blank-line separated paragraph")
    sample_noise_per_type: int = Field(
        0, ge=0, description="bundled corpus only: docs per noise type injected (0: clean corpus)"
    )
    sample_web: bool = Field(False, description="bundled corpus only: add the synthetic WARC crawl "
                             "(labelled JA/EN pages and pages each web filter acts on)")


class CurateOutput(Section):
    format: Literal["jsonl", "jsonl.gz", "jsonl.zst", "parquet"] = Field(
        "jsonl", description="format of the curated shards")
    max_docs_per_file: int = Field(100_000, ge=1, description="documents per output shard")
    keep_dropped: bool = Field(False, description="write dropped docs + reasons to dropped/")


class ExecutorConfig(Section):
    backend: Literal["local", "ray"] = Field("local", description="ray: Ray Data (extra 'ray')")
    ray_address: str | None = Field(None, description="backend ray: cluster address; None: start a local Ray")
    workers: int = Field(2, ge=1, description="processes over input shards (ray: CPUs of a local Ray)")
    batch_size: int = Field(1000, ge=1, description="documents per batch through the steps")
    resume: bool = Field(True, description="skip shards a previous run of the same config finished")
    progress: bool = Field(True, description="show a progress bar")


class NormalizeConfig(StepConfig):
    html: Literal["auto", "always", "never"] = Field(
        "auto", description="extract text from HTML (ruby kept as its base text): auto = when a document looks "
        "like HTML")
    mojibake: bool = Field(
        True, description="repair mojibake (ftfy) and map vertical / platform-dependent characters")
    nfkc: bool = Field(True, description="Unicode NFKC (full / half width unified)")
    replacement_runs: bool = Field(True, description="remove runs of replacement characters (�, □□, 〓〓)")
    whitespace: bool = Field(True, description="collapse runs of spaces and blank lines")


class MojibakeConfig(StepConfig):
    action: Literal["repair", "drop", "flag"] = Field(
        "repair", description="repair: put back lossless ones, drop the rest; drop: drop all; flag: keep")
    min_score: float = Field(0.6, gt=0, le=1, description="share of the round trip's characters recovered")
    min_chars: int = Field(3, ge=1, description="characters recovered before a document is judged")


class BlocklistConfig(StepConfig):
    domains: list[str] = Field(default_factory=list, description="domains (or URLs) whose documents are dropped")
    file: Path | None = Field(None, description="one domain or URL per line, # comments")
    allow: list[str] = Field(default_factory=list, description="allow list: when set (here or in allow_file), "
                             "a document with a URL outside these domains is dropped (not_allowlisted)")
    allow_file: Path | None = Field(None, description="allow list file: one domain or URL per line, # comments")


class LanguageConfig(StepConfig):
    languages: dict[str, float] = Field(default_factory=lambda: {"ja": 0.8, "en": 0.8},
                                        description="language -> minimum probability; {}: annotate only")
    max_chars: int = Field(
        2000, ge=50, description="characters of a document the language is identified from (its start)")
    backend: Literal["py3langid", "fasttext"] = Field(
        "py3langid", description="language identifier: py3langid (bundled) or a fastText model")
    model_path: Path | None = Field(None, description="fastText model file (backend: fasttext)")

    @model_validator(mode="after")
    def _fasttext_needs_a_model(self) -> LanguageConfig:
        if self.backend == "fasttext" and not self.model_path:
            raise ValueError("language backend 'fasttext' needs model_path (e.g. lid.176.bin)")
        return self


class MinLengthConfig(StepConfig):
    min_tokens: int = Field(
        0, ge=0, description="drop documents with fewer tokens (tokenizer's, else CJK characters + words)")
    min_chars: int = Field(0, ge=0, description="drop documents with fewer characters")
    tokenizer: str | None = Field(None, description="local HF tokenizer dir; None: CJK-char + word count")


class ShortLinesConfig(StepConfig):
    min_line_chars: int = Field(30, ge=1, description="a line shorter than this is short")
    max_short_line_share: float = Field(
        0.67, ge=0, le=1, description="drop documents with a larger share of short lines (navigation menus)")
    min_lines: int = Field(3, ge=1, description="documents with fewer lines are not judged")


class CharRatiosConfig(StepConfig):
    max_symbol_ratio: float | None = Field(
        0.25, ge=0, le=1, description="drop documents with a larger share of symbol characters (None: off)")
    max_digit_ratio: float | None = Field(
        0.25, ge=0, le=1, description="drop documents with a larger share of digits (None: off)")


class GopherQualityConfig(StepConfig):
    min_doc_words: int | None = Field(50, description="Gopher: drop documents with fewer words (None: off)")
    max_doc_words: int | None = Field(100_000, description="Gopher: drop documents with more words (None: off)")
    min_avg_word_length: float | None = Field(
        3, description="Gopher: minimum mean word length in characters (None: off)")
    max_avg_word_length: float | None = Field(
        10, description="Gopher: maximum mean word length in characters (None: off)")
    max_symbol_word_ratio: float | None = Field(
        0.1, description="Gopher: maximum ratio of '#' and '...' to words (None: off)")
    max_bullet_lines_ratio: float | None = Field(
        0.9, description="Gopher: maximum share of lines starting with a bullet (None: off)")
    max_ellipsis_lines_ratio: float | None = Field(
        0.3, description="Gopher: maximum share of lines ending with an ellipsis (None: off)")
    min_alpha_words_ratio: float | None = Field(
        0.8, description="Gopher: minimum share of words with an alphabetic character (None: off)")
    min_stop_words: int | None = Field(
        2, description="Gopher: minimum number of stop words (the, of, ... / の, は, ...) (None: off)")


class GopherRepetitionConfig(StepConfig):
    dup_line_frac: float | None = Field(0.3, description="Gopher: maximum share of duplicated lines (None: off)")
    dup_para_frac: float | None = Field(0.3, description="Gopher: maximum share of duplicated paragraphs (None: off)")
    dup_line_char_frac: float | None = Field(
        0.2, description="Gopher: maximum share of characters in duplicated lines (None: off)")
    dup_para_char_frac: float | None = Field(
        0.2, description="Gopher: maximum share of characters in duplicated paragraphs (None: off)")
    top_n_grams: list[tuple[int, float]] = Field(
        default_factory=lambda: [(2, 0.2), (3, 0.18), (4, 0.16)], description="(n, max share) pairs: characters "
        "covered by the most frequent n-gram")
    dup_n_grams: list[tuple[int, float]] = Field(
        default_factory=lambda: [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
        description="(n, max share) pairs: characters covered by duplicated n-grams")
    cjk_chars_per_word: float = Field(
        2.0, gt=0, description="CJK text: characters that count as one word in an n-gram")


class HiraganaConfig(StepConfig):
    min_share: float = Field(
        0.2, ge=0, le=1, description="Japanese documents: drop those with a smaller share of hiragana (machine "
        "text, lists)")


# ---- web pages (`curate.web`): WARC / HTML records, see `data.web` ---------------------------
class ExtractConfig(StepConfig):
    """Main-content extraction from HTML; on by default, it only touches records read from WARC /
    HTML files (`meta.format: html`) unless `apply_to: html`."""

    backend: Literal["trafilatura", "resiliparse"] = Field(
        "trafilatura", description="trafilatura: P/R 0.97/0.97 on the labelled pages; resiliparse: ~3x "
        "faster, P 0.67 (benchmarks/web_extraction.py)")
    favor: Literal["precision", "balanced", "recall"] = Field("precision", description="trafilatura's trade-off")
    fallback: bool = Field(True, description="trafilatura compares its result with readability / jusText on "
                           "each page; false: its `fast` mode, ~40% less CPU (P/R 0.95/0.98 with favor: balanced)")
    include_tables: bool = Field(True, description="keep tables' text (cells joined by spaces)")
    include_comments: bool = Field(False, description="keep a page's comment section")
    apply_to: Literal["web", "html"] = Field("web", description="web: records from the WARC/HTML readers; "
                                             "html: also text fields that look like HTML")
    timeout_s: float | None = Field(10.0, gt=0, description="per page; a page over it is dropped "
                                    "(extract_timeout); None: no limit")


class BBSCommentsConfig(StepConfig):
    """Drop Japanese bulletin-board comment threads (2ch-style posts)."""

    enabled: bool = False
    max_line_share: float = Field(0.2, ge=0, le=1, description="drop when more lines than this carry a "
                                  "BBS marker (>>123, 名無しさん, ID:xxxx, post headers, 書き込み)")
    min_matches: int = Field(3, ge=1, description="... and at least this many lines do")


class AdsConfig(StepConfig):
    """Drop ad / affiliate pages (Japanese and English ad phrases per line)."""

    enabled: bool = False
    max_line_share: float = Field(0.3, ge=0, le=1, description="drop when more lines than this hold ad / "
                                  "affiliate phrases (【PR】, 楽天市場で見る, Sponsored, ...)")
    min_matches: int = Field(3, ge=1, description="... and at least this many lines do")
    max_hits: int = Field(10, ge=1, description="or when the document holds this many ad phrases")
    extra_phrases: list[str] = Field(default_factory=list, description="more phrases (plain text)")


class NGWordsConfig(StepConfig):
    """Drop documents holding words from an NG-word list (adult, spam)."""

    enabled: bool = False
    bundled: bool = Field(True, description="the shipped JA/EN list (resources/web/ng_words.txt)")
    files: list[Path] = Field(default_factory=list, description="word lists: one word per line, # comments")
    words: list[str] = Field(default_factory=list, description="more NG words, given inline")
    max_hits: int = Field(0, ge=0, description="drop a document with more NG-word hits than this")


class SiteBoilerplateConfig(StepConfig):
    """Remove a site's repeated header / footer lines (a global step over every page of a host)."""

    enabled: bool = False
    min_pages: int = Field(3, ge=2, description="a site (host) needs this many pages before lines are judged")
    min_share: float = Field(0.5, gt=0, le=1, description="a line on at least this share of a site's pages "
                             "is its header/footer and is removed")


class WebConfig(Section):
    """Steps for web pages: extraction, then Japanese web boilerplate filters (after normalize)."""

    extract: ExtractConfig = ExtractConfig()
    bbs_comments: BBSCommentsConfig = BBSCommentsConfig()
    ads: AdsConfig = AdsConfig()
    ng_words: NGWordsConfig = NGWordsConfig()
    site_boilerplate: SiteBoilerplateConfig = SiteBoilerplateConfig()


class DecontaminateConfig(StepConfig):
    """Benchmark contamination: a document sharing a long n-gram with an evaluation item."""

    action: Literal["drop", "report"] = Field("drop", description="report: keep, mark meta.contamination")
    eval_sets: bool = Field(True, description="the bundled evaluation sets (resources/eval/*.jsonl)")
    files: list[Path] = Field(default_factory=list, description="benchmark files (JSONL/Parquet/CSV, any "
                              "record source); every text field named in text_keys is an item")
    text_keys: list[str] = Field(default_factory=lambda: ["prompt", "question", "belief_prompt", "text", "input",
                                                          "instruction", "problem", "context", "messages"],
                                 description="the fields of a benchmark record that are items (messages: the user turns)")
    word_ngram: int = Field(13, ge=3, description="words per n-gram (space-separated text)")
    char_ngram: int = Field(50, ge=5, description="characters per n-gram (Japanese / CJK text)")
    min_words: int = Field(8, ge=1, description="shorter items are matched whole; below this they are ignored")
    min_chars: int = Field(20, ge=1, description="the same for CJK items, in characters")


PII_TYPES = ("EMAIL", "PHONE", "POSTAL_CODE", "CREDIT_CARD", "IP_ADDRESS", "MY_NUMBER")


class RedactorConfig(StepConfig):
    redact_dropped: bool = Field(True, description="also redact the documents other steps dropped, "
                                 "as written to dropped/ (false: dropped/ keeps their raw PII)")


class PIIConfig(RedactorConfig):
    types: list[str] = Field(default_factory=lambda: list(PII_TYPES), description=f"any of {', '.join(PII_TYPES)}")

    @field_validator("types")
    @classmethod
    def _known(cls, types: list[str]) -> list[str]:
        unknown = set(types) - set(PII_TYPES)
        if unknown:
            raise ValueError(f"unknown PII types {sorted(unknown)}; known: {sorted(PII_TYPES)}")
        return types


class NERConfig(RedactorConfig):
    enabled: bool = Field(
        False, description="redact person / place names found by a spaCy NER model (needs spaCy and the model; "
        "skipped and reported when absent)")
    model: str = Field("ja_ginza", description="the spaCy model (ja_ginza: GiNZA, Japanese)")
    labels: dict[str, str] | None = Field(
        None, description="NER label -> placeholder text (None: person and place labels of the model)")


class MixingConfig(Section):
    weights: dict[str, float] = Field(description="source -> weight (normalized to sum 1)")
    token_budget: int = Field(ge=1, description="exact number of tokens in the mixed corpus")
    max_epochs: float = Field(4.0, ge=1, description="upsampling cap per source")
    tokenizer: str | None = Field(None, description="local HF tokenizer dir; None: fallback count")
    truncate_last: bool = Field(True, description="cut the last doc per source to hit the budget exactly")


class TokenizeConfig(Section):
    """Documents -> binary token shards (`data.token_shards`): the last step of curation, on the same
    executor (local or Ray) and resumable by shard. With `mixing:` the weights and epochs are applied
    when pretraining samples windows from the shards (no copy of the tokens)."""

    tokenizer: str | None = Field(
        None, description="local HF tokenizer dir; None: the recipe's tokenizer (trained, extended or the "
        "model's), which tokenizes the curated corpus when pretraining starts")
    val_fraction: float = Field(0.05, ge=0, lt=0.5, description="documents held out for validation "
                                "(by a hash of the id, as every split)")
    batch_size: int = Field(1000, ge=1, description="documents per tokenizer batch")


# ---- dedup (`curate.dedup`) -----------------------------------------------------------------
class DedupStepConfig(StepConfig):
    # Off by default: dedup removes real documents (e.g. ~40% of the templated sample corpus
    # at Jaccard 0.8), so a recipe turns each level on deliberately.
    enabled: bool = Field(False, description="run this dedup level (off by default: it removes real documents)")


class SpillingDedupConfig(DedupStepConfig):
    spill: bool = Field(False, description="ids, digests and the drop list on disk (workdir): fit memory "
                        "does not grow with the corpus (docs/dedup.md)")
    workdir: Path | None = Field(None, description="spill directory (None: a temp dir)")


class ExactDedupConfig(SpillingDedupConfig):
    hash: Literal["xxh128", "sha1", "md5"] = Field("xxh128", description="content hash")
    normalize: Literal["none", "whitespace", "text"] = Field(
        "whitespace", description="none: raw bytes; whitespace: ignore spacing; text: + NFKC, lowercase")


class FuzzyDedupConfig(SpillingDedupConfig):
    threshold: float = Field(0.8, gt=0, lt=1, description="Jaccard similarity of shingle sets")
    num_perm: int = Field(128, ge=8, le=1024, description="MinHash permutations (signature length)")
    bands: int | None = Field(None, ge=1, description="None (with rows None): chosen from the S-curve")
    rows: int | None = Field(
        None, ge=1, description="LSH rows per band (None with bands None: chosen from the S-curve)")
    fp_weight: float = Field(0.1, ge=0, description="S-curve false-positive area weight")
    fn_weight: float = Field(0.9, ge=0, description="S-curve false-negative area weight")
    shingle: Literal["char", "word"] = Field(
        "char", description="shingles of characters (works for Japanese without spaces) or of words")
    ngram: int = Field(5, ge=1, description="shingle size in characters (char) or words (word)")
    verify: Literal["jaccard", "signature", "none"] = Field(
        "jaccard", description="check candidate pairs by exact Jaccard of shingles, by signature agreement, or not "
        "at all")
    max_bucket: int = Field(64, ge=2, description="larger LSH buckets give star edges, not all pairs")


class SemanticDedupConfig(DedupStepConfig):
    model: str = Field("auto", description="auto: packaged MiniLM if installed, else tfidf; "
                       "tfidf; packaged; or a local sentence-transformers directory")
    threshold: float | None = Field(None, gt=0, le=1, description="cosine; None: the embedder's default")


class DedupConfig(Section):
    """Runs after the heuristic filters (fewer docs to hash), before PII redaction."""

    exact: ExactDedupConfig = Field(ExactDedupConfig(), description="exact duplicates by content hash")
    fuzzy: FuzzyDedupConfig = Field(
        FuzzyDedupConfig(), description="near duplicates: MinHash signatures + LSH banding, connected components")
    semantic: SemanticDedupConfig = Field(
        SemanticDedupConfig(), description="semantic duplicates: sentence embeddings + cosine threshold")


# ---- model-based filters (`curate.quality`) ------------------------------------------------
class ModelFilterConfig(StepConfig):
    enabled: bool = Field(
        False, description="run this model-based filter (off by default: it needs a model or reference data)")


class QualityClassifierConfig(ModelFilterConfig):
    model: Path | None = Field(None, description="a saved n-gram classifier directory")
    reference: list[Path] = Field(default_factory=list, description="high-quality texts (label 1)")
    negatives: list[Path] = Field(default_factory=list, description="random web texts (label 0)")
    min_score: float = Field(0.5, ge=0, le=1, description="drop below this P(reference-like)")


class PerplexityConfig(ModelFilterConfig):
    model: Path | None = Field(None, description="causal LM directory, or a saved char n-gram LM")
    reference: list[Path] = Field(default_factory=list, description="no model: train a char n-gram LM on these")
    order: int = Field(5, ge=1, le=10, description="char n-gram LM order")
    max_perplexity: float = Field(1000.0, gt=0, description="drop documents whose perplexity is higher")
    max_length: int = Field(512, ge=8, description="tokens scored per document (causal LM)")
    batch_size: int = Field(8, ge=1, description="documents per batch (causal LM)")


class HarmfulConfig(ModelFilterConfig):
    model: Path | None = Field(None, description="HF text-classification dir or saved n-gram "
                               "classifier; None: train on the shipped seed set")
    seed_set: Path | None = Field(None, description="labelled JSONL {text, label}; None: the shipped one")
    lexicon: bool = Field(True, description="also drop texts the shipped JA/EN category lexicon "
                          "finds harmful (a harm term and an intent cue in one sentence)")
    positive_label: str = Field("harmful", description="the classifier's label (name or index) that means harmful")
    threshold: float = Field(0.5, ge=0, le=1, description="drop documents whose harmful probability is at least this")
    batch_size: int = Field(16, ge=1, description="documents per classifier batch")


class LearnedQualityConfig(ModelFilterConfig):
    """FineWeb-Edu style: a regressor fitted to a judge's 0-5 scores (`llm-recipe curate annotate-quality`)."""

    model: Path | None = Field(None, description="the directory annotate-quality wrote (regressor/)")
    threshold: float = Field(3.0, ge=0, le=5, description="drop documents predicted below this score")


class AnnotateQualityConfig(Section):
    """`llm-recipe curate annotate-quality`: judge a sample 0-5, fit a regressor, measure agreement."""

    inputs: list[Path] = Field(default_factory=list, description="documents to sample (empty: the curated "
                               "output, else the curation inputs)")
    sample: int = Field(500, ge=10, description="documents the judge scores")
    held_out: float = Field(0.2, gt=0, lt=1, description="share of the judged sample kept for agreement")
    judge: str | JudgeEndpointConfig = Field(
        "local", description="local: a causal LM (judge_model); or an OpenAI-compatible endpoint ({base_url, model, "
                             "api_key_env, ...}: vLLM, `llm-recipe serve`, a hosted API)")
    judge_model: Path | None = Field(None, description="local judge: a causal LM directory")
    rubric: Literal["auto", "en", "ja"] = Field("auto", description="auto: by each document's language")
    max_doc_chars: int = Field(2000, ge=100, description="characters of a document shown to the judge")
    batch_size: int = Field(8, ge=1, description="documents per judge batch")
    embedder: str = Field("auto", description="auto: the packaged MiniLM if installed, else hashed n-grams; "
                          "hashed; packaged; or a sentence-transformers directory")
    alpha: float = Field(1.0, gt=0, description="ridge regularisation")
    threshold: float = Field(3.0, ge=0, le=5, description="the score agreement F1 is measured at")


class QualityConfig(Section):
    learned: LearnedQualityConfig = Field(
        LearnedQualityConfig(), description="the learned quality filter: a regressor of a judge's 0-5 scores")
    annotate: AnnotateQualityConfig = Field(
        AnnotateQualityConfig(), description="`curate annotate-quality`: the judge, its rubric and the sample")
    classifier: QualityClassifierConfig = Field(
        QualityClassifierConfig(), description="a quality classifier trained on a reference set vs web text")
    perplexity: PerplexityConfig = Field(
        PerplexityConfig(), description="perplexity under a small LM of the reference set (KenLM-style)")
    harmful: HarmfulConfig = Field(HarmfulConfig(), description="harmful-content classifier and lexicon")


class CurateConfig(Section):
    input: CurateInput = Field(CurateInput(), description="what is read: files, keys, the bundled corpus")
    output: CurateOutput = Field(CurateOutput(), description="how the curated shards are written")
    executor: ExecutorConfig = Field(ExecutorConfig(), description="local processes or Ray Data, batches, resume")
    web: WebConfig = Field(WebConfig(), description="web pages: main-content extraction and the Japanese web filters")
    cp932_mojibake: MojibakeConfig = Field(
        MojibakeConfig(), description="documents decoded with the wrong codec (cp932 / Shift_JIS as Latin-1 / "
        "UTF-8)")
    normalize: NormalizeConfig = Field(NormalizeConfig(), description="Unicode and text normalization")
    blocklist: BlocklistConfig = Field(BlocklistConfig(), description="URL / domain blocklist")
    language: LanguageConfig = Field(
        LanguageConfig(), description="language identification with a probability threshold")
    min_length: MinLengthConfig = Field(MinLengthConfig(), description="minimum length in tokens or characters")
    short_lines: ShortLinesConfig = Field(
        ShortLinesConfig(), description="share of very short lines (navigation menus)")
    char_ratios: CharRatiosConfig = Field(CharRatiosConfig(), description="symbol and digit ratios")
    gopher_quality: GopherQualityConfig = Field(
        GopherQualityConfig(), description="Gopher's quality rules (words, word length, bullets, stop words)")
    gopher_repetition: GopherRepetitionConfig = Field(
        GopherRepetitionConfig(), description="Gopher's repetition rules (duplicated lines, paragraphs, n-grams)")
    hiragana: HiraganaConfig = Field(HiraganaConfig(), description="share of hiragana in Japanese documents")
    pii: PIIConfig = Field(
        PIIConfig(), description="PII redaction by pattern (email, phones, postal codes, cards, IPs, My Number)")
    ner: NERConfig = Field(NERConfig(), description="PII redaction of names by NER")
    decontaminate: DecontaminateConfig = Field(
        DecontaminateConfig(), description="drop or report documents sharing long n-grams with benchmark items")
    dedup: DedupConfig = Field(DedupConfig(), description="exact, fuzzy (MinHash-LSH) and semantic deduplication")
    quality: QualityConfig = Field(
        QualityConfig(), description="model-based filters: quality classifier, perplexity, harmful content")
    mixing: MixingConfig | None = Field(
        None, description="weighted sampling of the sources to a token budget (None: no mixing)")
    tokenize: TokenizeConfig | None = Field(
        None, description="token shards of the curated corpus (None: pretraining tokenizes its documents)")
