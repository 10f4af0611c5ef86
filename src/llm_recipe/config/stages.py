"""The per-stage sections of a recipe: model, training loop, sampling, SFT, preferences, reward
model, Best-of-N, PPO/GRPO, DPO. Pydantic only (importing this stays instant).

Shared shapes are composed, not copied: every training stage extends `TrainConfig` (the shared
loop's fields), and every stage that samples text holds a `sampling:` block (`SamplingConfig`:
temperature, top-k, top-p, repetition penalty, length, stop strings) with its own defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .rewards import RewardSourceConfig
from .section import Section

REWARDS_HELP = ("reward sources combined with weights (verifiers, Python functions, reward servers, reward "
                "models, rules; see config.rewards); None: the section's older reward settings")


class SampleCorpusConfig(Section):
    """The bundled, generated corpus (see `llm_recipe.demo.sample_corpus`)."""

    docs_per_source: int = Field(1000, ge=1, description="documents generated per source")
    seed: int = Field(0, description="seed of the generated corpus")


class TokenizerExtendConfig(Section):
    """Extend the tokenizer of `model.name_or_path` with tokens learned from the corpus (`tokenizer.extend`):
    continued pretraining in a language the model's tokenizer splits into bytes (Japanese)."""

    new_tokens: int = Field(8000, ge=1, description="tokens to add (fewer when the corpus has fewer merges)")
    min_frequency: int = Field(3, ge=1, description="a merge must occur this often in the corpus")
    max_chars: int = Field(5_000_000, ge=1000, description="characters of the corpus learned from")


class TokenizerConfig(Section):
    vocab_size: int = Field(4096, ge=300, description="byte-level BPE vocabulary size (special tokens included)")
    min_frequency: int = Field(2, ge=1, description="merges seen fewer times are not learned")
    # Train on at most this many characters: BPE training time grows with it, quality saturates.
    max_chars: int = Field(
        3_000_000, ge=1000, description="characters of the corpus the tokenizer is trained on (time grows with it, "
        "quality saturates)")
    extend: TokenizerExtendConfig | None = Field(
        None, description="with model.name_or_path: add tokens learned from the corpus to the model's tokenizer "
        "(new embedding rows = mean of the old pieces' rows)")


class ComputeConfig(Section):
    """Where and in what precision a stage computes. One block for every stage: `compute:` at the top
    of a recipe applies to all of them, a stage's own `compute:` overrides single fields."""

    device: Literal["auto", "cpu"] = Field(
        "auto", description="auto: the accelerator's device (CUDA / MPS, one per process) when there is one")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="weights as loaded")
    mixed_precision: Literal["no", "bf16", "fp16"] = Field("no", description="autocast (training and inference)")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward (training)")
    compile: bool = Field(False, description="torch.compile the model for training (the shared loop): fuses the "
                          "elementwise work between matmuls; the first steps pay the compilation")
    fsdp: bool = Field(
        False, description="several processes: shard parameters, gradients and optimizer state (torch FSDP2) "
        "instead of a full replica per process (DDP)")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch default)")


# keys a stage section had before `compute:` (now errors that name the new place)
_MOVED_TO_COMPUTE = {k: f"compute.{k}" for k in ("dtype", "mixed_precision", "num_threads")}


class ModelConfig(Section):
    """Either a preset built from a transformers config, or any causal LM (hub id / local dir)."""

    moved_keys = {"dtype": "/compute.dtype"}
    preset: Literal["micro", "tiny", "small"] | None = Field(
        "tiny", description="a Llama-style preset built from a transformers config and trained from scratch")
    name_or_path: str | None = Field(
        None, description="any causal LM: a local folder, a hub id, or a .gguf file (imported); replaces the "
        "preset")
    trust_remote_code: bool = Field(
        False, description="run the model's own code (hub models that need it); off unless asked")

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if self.name_or_path:
            object.__setattr__(self, "preset", None)
        if not self.preset and not self.name_or_path:
            raise ValueError("set either model.preset or model.name_or_path")
        return self


class TrackingConfig(Section):
    """Where a training run shows up in the `report_to` trackers (W&B, MLflow, trackio, TensorBoard)."""

    project: str = Field("llm-recipe", description="the tracker's project (W&B / trackio project, MLflow experiment)")
    run_name: str | None = Field(
        None, description="the run's name there; None: run folder + stage, e.g. `demo/sft`")


class OptimConfig(Section):
    """What every trainer shares (the shared loop and the RL loop): AdamW with no weight decay on
    norms and biases, warmup + cosine LR as a function of the step, clipping, checkpoints, compute."""

    moved_keys = _MOVED_TO_COMPUTE
    aliases = {"learning_rate": "lr", "lr_scheduler_type": "scheduler", "save_steps": "save_every"}
    lr: float = Field(3e-3, gt=0, description="peak learning rate (AdamW)")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="decay floor as a fraction of lr")
    scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="after warmup: cosine or linear decay to the floor, or constant")
    warmup_steps: int = Field(20, ge=0, description="steps of linear warmup from 0 to lr")
    warmup_ratio: float | None = Field(
        None, ge=0, lt=1, description="warmup as a share of the run's steps (TRL's warmup_ratio); replaces "
        "warmup_steps when set")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay (never on norms and biases)")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas")
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping by global norm (None: off)")
    save_every: int | None = Field(None, ge=1, description="checkpoint interval in steps (RL: iterations)")
    report_to: list[Literal["tensorboard", "wandb", "mlflow", "trackio"]] = Field(
        default_factory=list, description="experiment trackers that also get every logged record (accelerate's), "
        "under TRL's metric names (train/loss, eval/rewards/chosen, ...)")
    tracking: TrackingConfig = Field(TrackingConfig(), description="project and run name in the trackers "
                                     "(a recipe's top-level `tracking:` applies to every training stage)")
    compute: ComputeConfig = ComputeConfig()
    max_bad_records: float = Field(
        0.1, ge=0, le=1, description="fail when a larger share of the input records is unusable (skipped)")
    resume: Literal["auto", "fresh", "force"] = Field(
        "auto", description="a folder with a checkpoint or finished model of this stage: auto = reuse it only if "
        "the run's settings and inputs match (else an error naming them); fresh = delete it and start over "
        "(--fresh); force = reuse it despite the differences (recorded in run.json)")


class TrainConfig(OptimConfig):
    """Settings of the shared training loop, common to every algorithm."""

    aliases = {**OptimConfig.aliases, "per_device_train_batch_size": "batch_size",
               "gradient_accumulation_steps": "grad_accum", "num_train_epochs": "epochs",
               "logging_steps": "log_every", "eval_steps": "eval_every"}
    max_steps: int = Field(300, ge=1, description="optimizer steps (unless `epochs` is set)")
    epochs: float | None = Field(
        None, gt=0, description="passes over the training data; when set, max_steps follows from it")
    batch_size: int = Field(16, ge=1, description="micro-batch size per device")
    grad_accum: int = Field(
        1, ge=1, description="micro-batches per optimizer step (the effective batch: batch_size x grad_accum x "
        "processes)")
    eval_every: int = Field(100, ge=1, description="evaluate every this many steps (and at the start and the end)")
    eval_batches: int = Field(20, ge=1, description="validation batches per evaluation")
    log_every: int = Field(10, ge=1, description="write a metrics record every this many steps")


    @model_validator(mode="after")
    def _steps_or_epochs(self) -> TrainConfig:
        if self.epochs is not None and "max_steps" in self.model_fields_set:
            raise ValueError("set max_steps or epochs, not both")
        return self


class PretrainConfig(TrainConfig):
    block_size: int = Field(256, ge=8, description="tokens per packed training sequence")
    val_fraction: float = Field(0.05, gt=0, lt=0.5, description="share of documents held out for the validation loss")
    data: list[Path] | None = Field(
        None, description="JSONL/text files with a 'text' field; None: the bundled sample corpus"
    )
    token_data: Path | None = Field(
        None, description="a token shard folder (`curate.tokenize`'s `tokens/`): trained on by memory map "
        "instead of `data`")
    document_mask: bool = Field(
        False, description="no attention across documents inside a packed window (position ids restart per "
        "document; the first token of each document is not predicted from the previous one)")


class SamplingConfig(Section):
    """How text is sampled, wherever a stage samples (`generate`, candidates, Best-of-N, RL).
    The defaults are plain sampling from the model; each stage sets its own in its `sampling:`."""

    max_new_tokens: int = Field(64, ge=1, description="tokens generated at most per answer")
    temperature: float = Field(1.0, ge=0, description="0: greedy")
    top_k: int | None = Field(None, ge=1, description="sample among the k most likely tokens (None: all)")
    top_p: float | None = Field(
        None, gt=0, le=1, description="nucleus sampling: the smallest set of tokens with this probability (None: "
        "all)")
    repetition_penalty: float = Field(
        1.0, gt=0, description="divide the logits of tokens already generated by this (1: off)")
    stop: list[str] = Field(default_factory=list, description="stop strings (cut from the output)")


class JudgeEndpointConfig(Section):
    """Any OpenAI-compatible chat endpoint (vLLM, SGLang, llama.cpp server, `llm-recipe serve`, a hosted
    API) as a judge, critic or labeler. The API key is read from the environment variable named by
    `api_key_env` when the client starts: it is never part of a config, a run folder, a cache or a log."""

    base_url: str = Field(description="the API root, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(min_length=1, description="the model name the endpoint serves")
    api_key_env: str | None = Field(
        None,
        description="name of the environment variable holding the API key (never the key itself)")
    max_tokens: int = Field(512, ge=1, description="tokens per judgement (reasoning + verdict)")
    temperature: float = Field(0.0, ge=0, description="0: greedy (a judgement should be reproducible)")
    seed: int | None = Field(0, description="sent with every request (endpoints that support it sample reproducibly)")
    timeout: float = Field(120.0, gt=0, description="seconds per request before it is retried")
    max_retries: int = Field(4, ge=0, description="retries of a failed request (connection errors, 429, 5xx, timeouts)")
    backoff: float = Field(1.0, ge=0, description="seconds before the first retry, doubled each retry (with jitter)")
    concurrency: int = Field(8, ge=1, description="requests in flight at once")
    cache: Path | None = Field(
        None, description="JSONL cache of answered requests (None: the stage's own, e.g. eval/judge_cache.jsonl)")
    template: str | None = Field(
        None, description="pairwise prompt ({prompt}, {a}, {b}) replacing the stage's judge_template")
    system: str | None = Field(None, description="system message sent before every judge prompt")
    check_model: bool = Field(True, description="ask GET /models first: the model must be served there")

    @model_validator(mode="after")
    def _url(self) -> JudgeEndpointConfig:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https:// (got {self.base_url!r})")
        if self.api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            raise ValueError("api_key_env is the NAME of an environment variable (letters, digits, _), not the key")
        return self


_SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "stop")


def _moved_to_sampling(*keys: str) -> dict[str, str]:
    return {k: f"sampling.{k}" for k in keys}


class GenerateConfig(Section):
    """Stage `sample`: continuations of a few prompts from the pretrained model."""

    moved_keys = _moved_to_sampling(*_SAMPLING_KEYS)
    prompts: list[str] = Field(
        default_factory=lambda: ["東京は", "The capital of France"], description="prompts the pretrained model "
        "continues (stage `sample`)")
    sampling: SamplingConfig = SamplingConfig(max_new_tokens=48, temperature=0.8, top_k=50, top_p=0.95,
                                              repetition_penalty=1.1)
    compute: ComputeConfig = ComputeConfig()


class LoRAConfig(Section):
    """LoRA adapters via peft; saved merged into the weights (a plain model), as the adapter alone, or both."""

    aliases = {"lora_alpha": "alpha", "lora_dropout": "dropout"}

    r: int = Field(8, ge=1, description="rank of the adapters")
    alpha: float = Field(16.0, gt=0, description="scaling: the update is (alpha / r) B A (peft's lora_alpha)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapters' input (peft's lora_dropout)")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="linear layers that get adapters (all-linear: every one but the LM head)")
    save: Literal["both", "merged", "adapter"] = Field(
        "both", description="what is saved: both = the merged model in model/ and the adapter with its tokenizer "
        "in adapter/ (loadable by peft alone); merged = model/ only; adapter = adapter/ only, with model/ an adapter "
        "folder too (transformers + peft load it onto its base)")


class SFTConfig(TrainConfig):
    """Supervised fine-tuning (stage 3); the training-loop fields are inherited from TrainConfig."""

    aliases = {**TrainConfig.aliases, "max_seq_length": "max_length"}

    data: list[Path] | Literal["bundled", "hh"] = Field(
        "bundled", description="JSONL files (messages / instruction+output / prompt+completion), 'bundled', or "
        "'hh': the helpful-harmless set (`hh:`; harmful requests -> refusals, the rest -> the model's own answers)"
    )
    bundled_examples: int = Field(3000, ge=8, description="size of the generated bundled set")
    bundled_style_share: float = Field(
        0.0, ge=0, le=1, description="share of bundled single-turn answers that begin with 'Let me explain. ' "
        "(a rare style the later alignment stages amplify)")
    eval_fraction: float = Field(0.05, gt=0, lt=0.5, description="held-out share, split by prompt hash")
    format: Literal["alpaca", "alpaca_en", "alpaca_ja", "chatml", "llama2", "tokenizer"] = Field(
        "chatml", description="prompt format; 'alpaca' picks JA/EN headers per conversation")
    system_prompt: str | None = Field(None, description="added to conversations that have none")
    max_length: int = Field(256, ge=8, description="tokens per conversation (and per packed row)")
    overlong: Literal["skip", "truncate"] = Field(
        "skip", description="conversations longer than max_length: skipped (counted) or truncated")
    train_on: Literal["all", "last"] = Field("all", description="assistant turns that carry the loss")
    packing: bool = Field(
        True, description="pack several conversations into one row (block-diagonal attention, no padding)")
    group_by_length: bool = Field(True, description="length-grouped batches when not packing")
    skew_ratio: float = Field(3.0, gt=1, description="coverage report flags categories beyond this x median")
    init_from: str | None = Field(None, description="model to fine-tune; None: the recipe's pretrained model")
    lora: LoRAConfig | None = None
    demo_prompts: list[str] = Field(
        default_factory=lambda: ["フランスの首都はどこですか？", "What is the capital of Japan?",
                                 "猫は何を食べますか？", "List three countries in Europe."],
        description="sampled before and after SFT",
    )
    lr: float = Field(1e-3, gt=0)
    max_steps: int = Field(150, ge=1)
    batch_size: int = Field(8, ge=1)
    warmup_steps: int = Field(10, ge=0)
    eval_every: int = Field(50, ge=1)


class CandidateConfig(Section):
    """`prefs generate`: k sampled responses per prompt from a (SFT) model."""

    moved_keys = _moved_to_sampling("top_k", "top_p", "repetition_penalty", "max_new_tokens")
    k: int = Field(2, ge=2, description="responses per prompt")
    # Sample i uses temperatures[i % len]: e.g. [0.7, 1.2] = a 'chosen' candidate at 0.7 and a
    # 'rejected' one at 1.2 (higher temperature, typically worse).
    temperatures: list[float] = Field(default_factory=lambda: [0.7, 1.1], min_length=1,
                                      description="per-sample temperatures, cycled (replace sampling.temperature)")
    sampling: SamplingConfig = SamplingConfig(top_k=50, top_p=0.95)
    chat_format: str | None = Field(None, description="None: the format saved with the model")

    def sampling_of(self, j: int) -> SamplingConfig:
        """The sampling settings of sample j (its temperature from `temperatures`)."""
        return self.sampling.model_copy(update={"temperature": self.temperatures[j % len(self.temperatures)]})


class RuleConfig(Section):
    """One rule of the rule-based labeler; a response's score is the weighted sum of its rules."""

    kind: Literal["starts_with", "contains", "regex", "length", "bleu", "rouge1", "rouge2", "rougeL"] = Field(
        description="what the rule checks: text prefix / substring / regex, length bounds, or BLEU / ROUGE "
        "against the prompt's reference")
    value: str | None = Field(None, description="text (starts_with/contains) or pattern (regex)")
    min_chars: int | None = Field(None, ge=0, description="length rule: 1 inside [min_chars, max_chars]")
    max_chars: int | None = Field(None, ge=0, description="length rule: upper bound in characters")
    weight: float = Field(1.0, description="weight of this rule in the score")

    @model_validator(mode="after")
    def _needs_value(self) -> RuleConfig:
        if self.kind in ("starts_with", "contains", "regex") and not self.value:
            raise ValueError(f"rule '{self.kind}' needs a value")
        if self.kind == "length" and self.min_chars is None and self.max_chars is None:
            raise ValueError("rule 'length' needs min_chars and/or max_chars")
        return self


class RewardModelRef(Section):
    path: str = Field(description="reward model folder")
    weight: float = Field(1.0, description="weight of its (normalized) reward in the combined score")


# Pairs per prompt from a ranking or scores: every ordered pair, the best against the worst (TRL's
# / Tulu's binarization), or the best against each of the others
PairPolicy = Literal["all", "best_vs_worst", "best_vs_rest"]


class LabelConfig(Section):
    """`prefs label`: turn candidate responses into preference pairs."""

    labeler: Literal["rules", "rm", "judge", "rewards"] = Field(
        "rules", description="rules (incl. BLEU/ROUGE), a reward model, an LLM judge, or rewards: the `rewards:` "
        "sources (verifiers, functions, servers, RMs, rules)")
    rewards: list[RewardSourceConfig] | None = Field(None, description=REWARDS_HELP)
    rules: list[RuleConfig] = Field(default_factory=lambda: [RuleConfig(kind="starts_with", value="Let me explain.")])
    pairs: Literal["best_worst", "all"] = Field("best_worst", description="pairs per prompt from scores")
    min_gap: float = Field(0.0, ge=0, description="score differences <= this are ties (dropped, counted)")
    reward_models: list[RewardModelRef] = Field(default_factory=list, description="labeler 'rm': weighted RMs")
    judge_model: str | None = Field(None, description="labeler 'judge': any local causal LM")
    judge_template: str = Field(
        "Which response answers the request better?\n\nRequest: {prompt}\n\nResponse A: {a}\n\n"
        "Response B: {b}\n\nAnswer with A or B.",
        description="sent as the user turn (or as raw text if the judge has no chat format)",
    )
    judge_choices: tuple[str, str] = Field(
        ("A", "B"), description="the judge's two answer tokens, for response A and B")
    chat_format: str | None = Field(None, description="the judge's chat format (None: the one saved with it)")
    judge: JudgeEndpointConfig | None = Field(
        None, description="labeler 'judge': an OpenAI-compatible endpoint instead of a local judge_model")


class AgreementConfig(Section):
    """`prefs agreement`: inter-annotator agreement and the low-agreement filter."""

    min_agreement: float = Field(0.75, ge=0, le=1, description="keep items where this share agrees with the majority")
    min_annotators: int = Field(2, ge=1, description="items with fewer annotators are not scored")


class PrefsConfig(Section):
    """Stage 4: preference data (generate candidates, label them, check annotator agreement)."""

    prompts: list[Path] | None = Field(None, description="prompt files for `prefs generate` (JSONL 'prompt' or .txt)")
    candidates: CandidateConfig = CandidateConfig()
    label: LabelConfig = LabelConfig()
    agreement: AgreementConfig = AgreementConfig()
    compute: ComputeConfig = ComputeConfig()


class RMConfig(TrainConfig):
    """Stage 5a: reward model (Bradley-Terry) on the shared loop."""

    aliases = {**TrainConfig.aliases, "center_rewards_coefficient": "center_rewards"}

    data: list[Path] | None = Field(None, description="preference files (any shape); None: the style set")
    eval_data: list[Path] | None = Field(None, description="held-out pairs; None: split off by prompt")
    synthetic_pairs: int = Field(600, ge=8, description="size of the generated style set")
    fluency_pairs: int = Field(
        0, ge=0, description="extra generated pairs preferring an answer over a garbled copy (so a policy "
        "optimised against the RM cannot win by drifting into nonsense)")
    eval_fraction: float = Field(0.15, gt=0, lt=0.5, description="held-out share of the pairs, split by prompt")
    init_from: str | None = Field(None, description="base model; None: the recipe's SFT model")
    trust_remote_code: bool = Field(False, description="run the base model's own code; off unless asked")
    chat_format: str | None = Field(None, description="None: the base model's saved format")
    pooling: Literal["last", "mean"] = Field(
        "last", description="reward from the last non-pad token's hidden state, or the mean over the response")
    use_margin: bool = Field(True, description="subtract the pair's margin inside the sigmoid")
    center_rewards: float | None = Field(None, ge=0, description="coefficient of mean((r_w + r_l)^2)")
    share_prompt: bool = Field(True, description="encode the shared prompt once per pair (faster)")
    group_by_length: bool = Field(True, description="length-grouped batches (less padding)")
    max_length: int = Field(256, ge=8, description="longer pairs are skipped (counted)")
    norm_samples: int = Field(128, ge=1, description="pairs whose responses set the reward mean/std")
    # Defaults sized for the tiny recipe (~1 min on 2 CPU cores); raise max_steps for real data.
    lr: float = Field(5e-4, gt=0)
    max_steps: int = Field(50, ge=1)
    batch_size: int = Field(16, ge=1)
    warmup_steps: int = Field(5, ge=0)
    eval_every: int = Field(25, ge=1)
    eval_batches: int = Field(8, ge=1)


class BoNConfig(Section):
    """Stage 5b: Best-of-N sampling against reward models."""

    moved_keys = _moved_to_sampling("temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens")
    n: int = Field(4, ge=1, description="samples per prompt (N)")
    prompts: list[str] | None = Field(None, description="None: held-out prompts of the style set")
    n_prompts: int = Field(12, ge=1, description="how many held-out prompts when `prompts` is None")
    sampling: SamplingConfig = SamplingConfig(max_new_tokens=32)
    chat_format: str | None = Field(None, description="the policy's chat format (None: the one saved with it)")
    reward_models: list[RewardModelRef] | None = Field(None, description="None: the recipe's reward model")
    rewards: list[RewardSourceConfig] | None = Field(None, description=REWARDS_HELP)
    task: str | None = Field(None, description="a verifiable task (see RLConfig.task): the first n_prompts problems "
                             "of its test split, their columns passed to the reward sources")
    compute: ComputeConfig = ComputeConfig()


class RLConfig(OptimConfig):
    """Settings shared by PPO and GRPO (stage 5c): rollouts, rewards, KL to the reference. One
    iteration = rollout -> score -> `epochs` passes of minibatch updates; the LR schedule runs over
    those updates."""

    moved_keys = {**_moved_to_sampling("max_new_tokens", "temperature", "top_k", "top_p"), **_MOVED_TO_COMPUTE}
    aliases = {**OptimConfig.aliases, "max_completion_length": "sampling.max_new_tokens",
               "temperature": "sampling.temperature"}
    init_from: str | None = Field(None, description="policy to start from; None: the recipe's SFT model")
    reward_models: list[RewardModelRef] | None = Field(
        None, description="None: the recipe's reward model if there is one, else `rules`")
    rules: list[RuleConfig] = Field(
        default_factory=lambda: [RuleConfig(kind="starts_with", value="Let me explain.")],
        description="rule-based reward when no reward model is given")
    prompts: list[Path] | None = Field(None, description="JSONL 'prompt' / .txt files; None: the style set's prompts")
    rewards: list[RewardSourceConfig] | None = Field(None, description=REWARDS_HELP)
    task: str | None = Field(
        None, description="a verifiable task: a bundled one ('arith-v1') or a folder with train.jsonl and test.jsonl; "
        "prompts from its train split, the before/after evaluation on its test split, its columns (e.g. "
        "'answer') passed to the reward sources")
    mask_truncated: bool = Field(
        False, description="completions cut by max_new_tokens get no loss (DAPO's overlong filtering), counted")
    n_prompts: int = Field(256, ge=1, description="training prompts drawn from the style set")
    eval_prompts: int = Field(32, ge=1, description="held-out prompts for the before/after evaluation")
    chat_format: str | None = Field(None, description="None: the format saved with the policy")
    iterations: int = Field(20, ge=1, description="rollout -> update cycles")
    rollout_batch_size: int = Field(32, ge=1, description="responses sampled per iteration (all processes)")
    minibatch_size: int = Field(16, ge=1, description="responses per update (all processes)")
    epochs: int = Field(2, ge=1, description="passes over each rollout")
    lr: float = Field(1e-4, gt=0)
    min_lr_ratio: float = Field(1.0, ge=0, le=1, description="cosine floor over the updates; 1 = constant")
    warmup_steps: int = Field(0, ge=0, description="updates of linear warmup")
    weight_decay: float = Field(0.0, ge=0)
    sampling: SamplingConfig = Field(
        SamplingConfig(max_new_tokens=24), description="rollouts (temperature > 0: log-probs at that temperature)")
    missing_eos_penalty: float | None = Field(None, ge=0, description="subtracted when a response never stops")
    length_penalty: float = Field(0.0, ge=0, description="subtracted per response token")
    on_bad_reward: Literal["stop", "skip"] = Field(
        "stop", description="NaN/inf rewards or an all-empty batch: stop with a message, or skip and count")
    success_prefix: str | None = Field("Let me explain.", description="style target counted as success")
    eval_temperature: float | None = Field(
        None, ge=0, description="held-out answers for score/success (0: greedy; None: `sampling.temperature`); "
        "the KL to the reference is always measured on samples at `sampling.temperature`")
    ent_coef: float = Field(0.0, ge=0, description="entropy bonus")
    lora: LoRAConfig | None = Field(
        None, description="train LoRA adapters only; the reference is then the policy with adapters disabled "
        "(one model copy in memory instead of two)")

    @model_validator(mode="after")
    def _policy_distribution(self) -> RLConfig:
        # Rollout log-probs are the policy's own (logits / temperature): a repetition penalty or
        # a stop string would sample from another distribution than the one being trained.
        sp = self.sampling
        if sp.temperature == 0:
            raise ValueError("sampling.temperature must be > 0 for RL rollouts (0 is greedy)")
        if sp.repetition_penalty != 1.0 or sp.stop:
            raise ValueError("RL rollouts sample from the policy itself: sampling.repetition_penalty must be 1 "
                             "and sampling.stop empty")
        return self


class PPOConfig(RLConfig):
    # `beta` is DPO's and GRPO's loss coefficient; PPO's KL reward coefficient is TRL's `kl_coef`
    moved_keys = {**RLConfig.moved_keys, "beta": "kl_coef"}
    aliases = {**RLConfig.aliases, "num_ppo_epochs": "epochs", "cliprange": "clip_eps", "cliprange_value": "vf_clip",
               "response_length": "sampling.max_new_tokens"}
    kl_coef: float = Field(0.05, ge=0, description="KL penalty in the reward (initial one when kl_target is set)")
    kl_estimator: Literal["k1", "k2", "k3"] = Field(
        "k1", description="per-token KL estimator in the reward: k1 (log ratio), k2, k3")
    kl_target: float | None = Field(None, gt=0, description="adaptive KL controller target (None: fixed kl_coef)")
    kl_horizon: int = Field(10000, ge=1, description="adaptive KL controller's horizon (steps)")
    gamma: float = Field(1.0, ge=0, le=1, description="GAE discount")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda")
    whiten_advantages: bool = Field(True, description="normalize advantages per rollout")
    objective: Literal["clip", "kl_penalty"] = Field(
        "clip", description="clipped surrogate, or the KL-penalty variant")
    clip_eps: float = Field(0.2, gt=0, description="ratio clip range epsilon (TRL's cliprange)")
    penalty_beta: float = Field(0.1, ge=0, description="objective 'kl_penalty': weight of KL(old || new)")
    vf_coef: float = Field(0.1, ge=0, description="weight of the value loss")
    vf_clip: float = Field(0.2, gt=0, description="value clip range (TRL's cliprange_value)")
    value_model: Literal["head", "reward_model"] = Field(
        "head", description="value head on the policy, or a separate critic initialised from the reward model")


class GroupRLConfig(RLConfig):
    """Critic-free algorithms that sample a group of completions per prompt (GRPO, RLOO, REINFORCE++)."""

    aliases = {**RLConfig.aliases, "num_generations": "group_size", "num_iterations": "epochs"}
    group_size: int = Field(8, ge=2, description="samples per prompt (G)")
    dynamic_sampling: Literal["off", "drop", "resample"] = Field(
        "off", description="DAPO's dynamic sampling: groups whose rewards are all equal (no signal) are dropped "
        "from the update, or replaced by groups of fresh prompts (up to max_resample_rounds); counted")
    max_resample_rounds: int = Field(3, ge=1, description="dynamic_sampling=resample: extra sampling rounds at most")


class GRPOConfig(GroupRLConfig):
    aliases = {**GroupRLConfig.aliases, "epsilon": "eps_low", "epsilon_high": "eps_high"}
    group_size: int = Field(8, ge=2, description="samples per prompt (G)")
    beta: float = Field(0.04, ge=0, description="weight of the k3 KL to the reference in the loss")
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = Field(
        "grpo", description="how token losses are averaged: grpo (per sequence), bnpo (per batch token), dr_grpo "
        "(fixed length), dapo (per token over the accumulated batch)")
    eps_low: float = Field(0.2, gt=0, description="lower ratio clip (TRL's epsilon)")
    eps_high: float = Field(0.2, gt=0, description="upper ratio clip (TRL's epsilon_high; DAPO's clip-higher)")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="divide advantages by the reward std of the group, of the batch, or not (Dr. GRPO)")
    importance_sampling: Literal["token", "sequence"] = Field(
        "token", description="sequence: GSPO's sequence-level ratio exp(mean_t log pi/pi_old), one per completion")


class RLOOConfig(GroupRLConfig):
    """RLOO (Ahmadian et al. 2024) as TRL's RLOOTrainer: leave-one-out baseline, the KL to the reference
    (k1, summed over the sequence) subtracted from the reward, clipped sequence-level ratio."""

    aliases = {**GroupRLConfig.aliases, "epsilon": "eps_low", "epsilon_high": "eps_high"}
    group_size: int = Field(4, ge=2, description="samples per prompt (k)")
    beta: float = Field(0.05, ge=0, description="KL penalty in the reward")
    eps_low: float = Field(0.2, gt=0, description="lower ratio clip (TRL's epsilon)")
    eps_high: float = Field(0.2, gt=0, description="upper ratio clip (TRL's epsilon_high)")
    normalize_advantages: bool = Field(False, description="whiten the advantages over the batch")


class ReinforcePPConfig(GroupRLConfig):
    """REINFORCE++ (Hu 2025): no critic; per-token rewards -kl_coef * KL with the score at the last token,
    returns, advantages whitened over the whole batch, PPO's clipped token-level loss. `baseline: group`
    is REINFORCE++-baseline: the group's mean score subtracted first (for several samples per prompt)."""

    group_size: int = Field(4, ge=1, description="samples per prompt (1: plain REINFORCE++)")
    baseline: Literal["none", "group"] = Field(
        "none", description="group: REINFORCE++-baseline (the group's mean score subtracted before whitening)")
    kl_coef: float = Field(0.01, ge=0, description="weight of the per-token KL penalty in the reward")
    kl_estimator: Literal["k1", "k2", "k3"] = Field("k2", description="estimator of the per-token KL")
    gamma: float = Field(1.0, ge=0, le=1, description="discount of the returns")
    clip_eps: float = Field(0.2, gt=0, description="ratio clip of the token-level loss")


class DPOObjectiveConfig(TrainConfig):
    """DPO and its variants on the shared loop (see `llm_recipe.train.dpo`): the objective and the
    loop, whatever the pairs come from (`dpo:` files or style set, `online_dpo:` rounds)."""

    aliases = {**TrainConfig.aliases, "rpo_alpha": "sft_alpha", "desirable_weight": "kto_desirable_weight",
               "undesirable_weight": "kto_undesirable_weight"}

    eval_fraction: float = Field(0.15, gt=0, lt=0.5, description="held-out share of the pairs, split by prompt")
    trust_remote_code: bool = Field(False, description="run the model's own code; off unless asked")
    chat_format: str | None = Field(None, description="None: the format saved with the model")
    loss_type: str = Field(
        "sigmoid", json_schema_extra={"choices_from": "llm_recipe.train.dpo:LOSSES"},
        description="the DPO-family loss: a name registered in `train.dpo.LOSSES` (reference-based, "
        "reference-free or on unpaired thumbs-up/down data); `llm-recipe config schema dpo.loss_type` lists them")
    beta: float = Field(
        0.1, gt=0, description="DPO's beta; SimPO's beta; ORPO's lambda (weight of the odds-ratio term)")
    simpo_gamma: float = Field(0.5, ge=0, description="SimPO's target reward margin gamma")
    kto_desirable_weight: float = Field(1.0, gt=0, description="KTO: weight of desirable examples' losses")
    kto_undesirable_weight: float = Field(1.0, gt=0, description="KTO: weight of undesirable examples' losses")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="cdpo / robust: assumed label-flip rate")
    sft_alpha: float = Field(0.0, ge=0, description="weight of an NLL term on the chosen responses")
    reference: Literal["precompute", "per_step"] = Field(
        "precompute", description="reference log-probs cached once before training, or computed every step")
    share_prompt: bool = Field(True, description="one row per pair: prompt encoded once (needs sdpa/eager)")
    group_by_length: bool = Field(True, description="length-grouped batches (less padding)")
    max_length: int = Field(256, ge=8, description="prompt + response tokens; responses are truncated first")
    lora: LoRAConfig | None = None
    lr: float = Field(5e-4, gt=0)
    max_steps: int = Field(60, ge=1)
    batch_size: int = Field(16, ge=1)
    warmup_steps: int = Field(5, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    eval_every: int = Field(20, ge=1)
    eval_batches: int = Field(8, ge=1)
    log_every: int = Field(5, ge=1)


class DPOConfig(DPOObjectiveConfig):
    """Stage 6: DPO on a fixed (offline) preference set."""

    data: list[Path] | Literal["style", "hh"] = Field(
        "style", description="preference files (any shape), 'style': the 'Let me explain.' set from the SFT data, "
        "or 'hh': the helpful-harmless pairs (`hh:`; refusal over the model's own answer to a harmful request, own "
        "answer over a refusal for a benign or ordinary one)")
    eval_data: list[Path] | None = Field(None, description="held-out pairs; None: split off by prompt")
    style_pairs: int = Field(400, ge=8, description="size of the generated style set")
    style_prefix: str = Field("Let me explain. ", description="the style set's chosen answers begin with this")
    style_answers: Literal["data", "model"] = Field(
        "data", description="style set answers: the SFT data's, or the policy's own greedy answers to the same "
        "prompts (on-policy: DPO then changes the style, not the content)")
    init_from: str | None = Field(None, description="policy and reference; None: the recipe's SFT model")
    eval_prompts: int = Field(40, ge=1, description="held-out prompts for the style success rate")
    max_new_tokens: int = Field(48, ge=1, description="greedy answer length for the style check")
    preset: Literal["small-data"] | None = Field(
        None, description="small-data: values for a released model and a few hundred pairs or fewer, for the "
        "fields not set (`train.defaults.PRESETS`: the SmolLM2 recipe's LoRA, higher lr, NLL term; "
        "benchmarks/small_data_defaults.py compares them on held-out prompts)")


class OnlineDPOConfig(DPOObjectiveConfig):
    """Online (iterative, on-policy) DPO: `rounds` times, sample `candidates.k` answers per prompt
    from the current policy, label them (`label:`, as `prefs label`), train DPO `max_steps` steps on
    the round's pairs. `rounds: 1` with rounds x prompts_per_round prompts is offline DPO on the
    initial policy's samples: the same number of labelled pairs, for a like-for-like comparison."""

    rounds: int = Field(3, ge=1, description="sample -> label -> DPO rounds")
    prompts: list[Path] | Literal["sft"] = Field(
        "sft", description="prompt files (JSONL 'prompt' or .txt), or 'sft': the single-turn prompts of the SFT "
        "training split (never the held-out prompts the eval stage uses)")
    prompts_per_round: int = Field(64, ge=2, description="fresh prompts each round (cycled when the pool runs out)")
    reference_model: Literal["initial", "previous"] = Field(
        "initial", description="each round's DPO reference: the initial (SFT) model, or the previous round's policy")
    candidates: CandidateConfig = Field(default_factory=lambda: CandidateConfig(k=4, temperatures=[1.0]))
    label: LabelConfig = Field(
        default_factory=lambda: LabelConfig(labeler="rm"),
        description="labeler 'rm' with no reward_models: the recipe's reward model")
    init_from: str | None = Field(None, description="the initial policy; None: the recipe's SFT model")
    seed: int | None = Field(None, description="prompt order, sampling and DPO; None: the recipe's seed (the SFT "
                             "split the prompts come from always uses the recipe's)")
    max_steps: int = Field(20, ge=1, description="DPO steps per round")


class ConstitutionalConfig(Section):
    """Constitutional AI (critique -> revision) on a red-team prompt set: SFT records, preference
    pairs (revision over the initial answer) and judge-labelled pairs under the constitution."""

    constitution: Path | None = Field(None, description="constitution YAML; None: the bundled constitution-v1")
    prompts: list[Path] | None = Field(None, description="red-team prompts; None: the bundled red-team-v1 set")
    rounds: int = Field(1, ge=1, description="critique -> revision rounds per prompt")
    critic: str | JudgeEndpointConfig | None = Field(
        None, description="writes critiques and revisions: a local model, or an endpoint {base_url, model, "
        "api_key_env}; None: the policy itself")
    judge: str | JudgeEndpointConfig | None = Field(
        None, description="labels (initial, revision) under a principle: a local model or an endpoint; None: the critic")
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_k=50, top_p=0.95, max_new_tokens=64)
    chat_format: str | None = Field(None, description="None: the format saved with each model")
    compute: ComputeConfig = ComputeConfig()


class HHConfig(Section):
    """The helpful-harmless set (`preference.hh`) that `sft.data: hh` and `dpo.data: hh` train on: hand-written
    harmful requests (answered with a helpful refusal), benign look-alikes and ordinary prompts (answered with
    the starting model's own answers, made once per run into RUN/hh/answers.jsonl)."""

    set: Path | None = Field(None, description="an HH set (id, lang, kind, category, prompt, refusal); None: hh-v1")
    answers_from: str | None = Field(
        None, description="the model whose own answers are used; None: the model the recipe starts from")
    sampling: SamplingConfig = Field(
        SamplingConfig(temperature=0.0, max_new_tokens=96, repetition_penalty=1.1),
        description="how the own answers are made (an answer the limit cut ends at its last full sentence)")
    dpo_kinds: list[Literal["harmful", "benign", "ordinary"]] = Field(
        default_factory=lambda: ["harmful", "benign", "ordinary"], description="the item kinds that become DPO pairs")
    refusal_detector: Literal["rules", "classifier", "combined"] = Field(
        "classifier", description="decides whether an own answer already refuses (such records are skipped, counted)")
    compute: ComputeConfig = ComputeConfig()


class LMHarnessConfig(Section):
    """Optional: lm-evaluation-harness tasks (`pip install llm-recipe[lm-eval]`) on each model of the run."""

    tasks: list[str] = Field(default_factory=list, description="task names (or names defined in include_path)")
    include_path: Path | None = Field(None, description="a folder of the user's own task YAMLs")
    limit: int | None = Field(None, ge=1, description="examples per task (None: all)")
    num_fewshot: int | None = Field(None, ge=0, description="few-shot examples (None: the task's default)")
    batch_size: int = Field(8, ge=1, description="lm-eval batch size")


class MTBenchConfig(Section):
    """The two-turn question set of the eval stage (`eval.mt_bench: true` takes these defaults): every
    model answers both turns (the second with its own first answer in the context), the judge grades
    each answer 1-10 (single mode, with the reference answer where a question has one right answer)
    and compares each model with its reference (both orders)."""

    questions: Path | None = Field(None, description="None: the bundled resources/eval/mt-bench-v1.jsonl")
    per_category: int | None = Field(
        None, ge=1, description="the first n questions of each (category, language); None: all")
    languages: list[Literal["en", "ja"]] = Field(
        default_factory=lambda: ["en", "ja"], description="the languages of the set to run (en, ja)")
    max_new_tokens: int = Field(256, ge=1, description="answer length per turn (greedy)")
    judge_max_new_tokens: int = Field(
        256, ge=1, description="a local judge's judgement length (an endpoint judge: eval.judge.max_tokens)")
    pairwise: bool = Field(True, description="also each model vs its reference, both orders")
    regrade: int = Field(32, ge=0, description="answers graded a second time: the judge's own consistency")


class EvalConfig(Section):
    """Stage 7: every model of the run against its reference on held-out prompts (`llm_recipe.eval`)."""

    prompts: list[Path] | None = Field(
        None, description="held-out prompt files (JSONL 'prompt' or 'messages') or bundled prompt sets by name "
        "(helpful-v1: ordinary JA/EN requests); None: the SFT held-out split")
    n_prompts: int = Field(40, ge=1, description="held-out prompts used (the first n)")
    safety_set: Path | None = Field(
        None, description="a file, or a bundled set's name (safety-v1, safety-v2); None: the bundled safety-v2")
    sycophancy_set: Path | None = Field(
        None, description="a file, or a bundled set's name (sycophancy-v1, sycophancy-v2); None: sycophancy-v2")
    refusal_detector: Literal["rules", "classifier", "combined"] = Field(
        "classifier", description="how refusals are found (`eval.refusal`): phrase rules, the n-gram classifier "
        "(chosen by grouped cross-validation, benchmarks/refusal_classifier.py), or the rules as a first pass "
        "with the classifier; the rules' rates are always reported beside")
    sampling: SamplingConfig = Field(
        SamplingConfig(temperature=0.0, max_new_tokens=64, repetition_penalty=1.1),
        description="how answers are produced (a measurement: greedy by default)")
    kl_max_new_tokens: int = Field(48, ge=1, description="length of the temperature-1 samples of the KL estimate")
    judge_model: str | None = Field(
        "sft", description="the LLM judge: a model dir or hub id, 'sft' (the run's SFT model: a stand-in, and one "
        "that knows the reference's answers), 'base' (the model the run starts from), or None (no judge)")
    models: list[str] | None = Field(
        None, description="the run's models to evaluate, by name (base, sft, best_of_N, dpo, online_dpo, ppo, grpo); "
        "None: all. A model's reference is evaluated with it")
    compare_to: Literal["previous", "base"] = Field(
        "previous", description="each model's reference: the model before it (SFT vs base, DPO/PPO/... vs SFT), "
        "or 'base' (every model vs the model the run starts from)")
    judge_template: str = Field(LabelConfig().judge_template, description="the judge's prompt ({prompt}, {a}, {b})")
    judge_choices: tuple[str, str] = Field(
        ("A", "B"), description="the judge's two answer tokens, for response A and B")
    judge: JudgeEndpointConfig | None = Field(
        None, description="an OpenAI-compatible endpoint as the judge (win rates, MT-Bench); replaces judge_model")
    mt_bench: MTBenchConfig | None = Field(
        None, description="true: every model answers the bundled two-turn question set, graded 1-10 by the judge")
    perplexity_data: list[Path] | None = Field(
        None, description="held-out text files; None: the validation split of the run's pretraining corpus")
    perplexity_blocks: int = Field(32, ge=1, description="blocks of held-out text scored per model")
    bootstrap: int = Field(1000, ge=100, description="bootstrap resamples of the win-rate intervals")
    task: str | None = Field(
        None, description="a verifiable task whose test split every model answers (verifier accuracy); None: the "
        "task of the run's RL stage, if any")
    task_problems: int = Field(200, ge=1, description="test problems of the task answered (greedy), the first n")
    task_samples: int = Field(0, ge=0, description="k > 0: also k samples per problem: pass@1, pass@k")
    task_temperature: float = Field(1.0, gt=0, description="temperature of the pass@k samples")
    task_max_new_tokens: int | None = Field(None, ge=1, description="answer length; None: the RL stage's")
    lm_harness: LMHarnessConfig | None = None
    compute: ComputeConfig = ComputeConfig()

    @field_validator("mt_bench", mode="before")
    @classmethod
    def _mt_bench_switch(cls, v):
        """`mt_bench: true` = the defaults, `false` = off."""
        return ({} if v else None) if isinstance(v, bool) else v


class ServeConfig(Section):
    """`llm-recipe serve MODEL_DIR`: an OpenAI-compatible server. `sampling:` holds the defaults a
    request's own fields (temperature, top_p, max_tokens, stop, seed) override."""

    sampling: SamplingConfig = SamplingConfig(max_new_tokens=256, temperature=1.0)
    chat_format: str | None = Field(None, description="None: the format saved with the model")
    max_batch_size: int = Field(8, ge=1, description="sequences generated together (n choices count each)")
    batch_wait_ms: float = Field(10.0, ge=0, description="after a request arrives, wait this long for others "
                                 "to batch with it")
    max_body_kb: int = Field(1024, ge=1, description="larger request bodies are refused (413)")
    max_tokens_limit: int = Field(2048, ge=1, description="the most tokens one request may ask for")
    max_n: int = Field(8, ge=1, description="the most choices one request may ask for")
    compute: ComputeConfig = ComputeConfig()

# The RL algorithms: recipe section -> its settings (`stages.rl.ALGORITHMS` has a row for each, under
# the same names: stages/rl.py checks at import that both tables name the same algorithms).
RL_SECTIONS: dict[str, type[RLConfig]] = {"ppo": PPOConfig, "grpo": GRPOConfig, "rloo": RLOOConfig,
                                          "reinforce_pp": ReinforcePPConfig}
