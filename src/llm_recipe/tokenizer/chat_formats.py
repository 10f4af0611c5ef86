"""Prompt formats for chat / instruction models, as one small registry of Jinja chat templates.

Every format is a Hugging Face `chat_template` (Jinja) in which the text the model must learn to
produce is wrapped in `{% generation %}` ... `{% endgeneration %}`. One template therefore gives:
  * the rendered training string, and the character spans of every assistant turn (the loss mask
    is computed from these spans and the tokenizer's offsets, never by re-tokenizing pieces);
  * the inference prompt (`add_generation_prompt=True`);
  * what gets saved into the model directory (`tokenizer.chat_template`), so inference and later
    stages render exactly what training rendered, with any tool that reads HF tokenizers.

Formats: `alpaca_en`, `alpaca_ja` (`### 指示:` / `### 入力:` / `### 応答:`), `chatml`, `llama2`, and
`tokenizer` (the tokenizer's own `chat_template`; templates without generation tags get their
assistant spans from rendering growing prefixes of the conversation).

Messages are `{"role": "system"|"user"|"assistant", "content": str}`; a user message may carry an
optional `"input"` (Alpaca's input field), which non-Alpaca formats append to the content.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from jinja2.exceptions import TemplateError as _JinjaTemplateError
from transformers.utils.chat_template_utils import render_jinja_template

_JINJA_ERRORS = (_JinjaTemplateError,)

# The templates are written as one line each (pieces joined below) so no stray newline from the
# template source ends up in the rendered text; every newline is an explicit '\n' literal.
_BOS = "{{- bos_token if bos_token else '' -}}"
_USER_INPUT = "{%- if message['input'] is defined and message['input'] -%}{{- '\\n\\n' + message['input'] -}}{%- endif -%}"

# Tool use as Hermes / Qwen2.5 write it in ChatML: the function schemas in the system turn, each call
# `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>` inside the (trained) assistant turn,
# results in `tool` turns. A conversation without tools renders exactly as ChatML did before.
_TOOLS_SYSTEM = "".join([
    "{%- if tools -%}",
    "{{- '<|im_start|>system\\n' -}}",
    "{%- if messages[0]['role'] == 'system' -%}{{- messages[0]['content'] + '\\n\\n' -}}{%- endif -%}",
    "{{- '# Tools\\n\\nYou may call one or more functions. Their signatures, within <tools></tools>:\\n<tools>' -}}",
    "{%- for tool in tools -%}{{- '\\n' + (tool | tojson) -}}{%- endfor -%}",
    "{{- '\\n</tools>\\n\\nFor each call, return {\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>} "
    "within <tool_call></tool_call> tags.<|im_end|>\\n' -}}",
    "{%- endif -%}",
])
_TOOL_CALLS = "".join([
    "{%- if message['tool_calls'] is defined and message['tool_calls'] -%}",
    "{%- for call in message['tool_calls'] -%}",
    "{%- set f = call['function'] if call['function'] is defined else call -%}",
    "{%- if message['content'] or not loop.first -%}{{- '\\n' -}}{%- endif -%}",
    "{{- '<tool_call>\\n{\\\"name\\\": ' + (f['name'] | tojson) + ', \\\"arguments\\\": ' -}}",
    "{%- if f['arguments'] is string -%}{{- f['arguments'] -}}{%- else -%}{{- f['arguments'] | tojson -}}{%- endif -%}",
    "{{- '}\\n</tool_call>' -}}",
    "{%- endfor -%}",
    "{%- endif -%}",
])


def _chatml(tools: bool) -> str:
    """ChatML; `tools`: with tool calls and schemas (the current `chatml`), else as it was before."""
    return "".join([
        _BOS,
        _TOOLS_SYSTEM if tools else "",
        "{%- for message in messages -%}",
        "{%- if tools and loop.first and message['role'] == 'system' -%}{%- elif message['role'] == 'assistant' -%}"
        if tools else "{%- if message['role'] == 'assistant' -%}",
        "{{- '<|im_start|>assistant\\n' -}}",
        "{%- generation -%}{{- message['content'] -}}" + _TOOL_CALLS + "{{- '<|im_end|>' -}}{%- endgeneration -%}"
        if tools else "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}",
        "{{- '\\n' -}}",
        "{%- else -%}",
        "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] -}}",
        _USER_INPUT,
        "{{- '<|im_end|>\\n' -}}",
        "{%- endif -%}",
        "{%- endfor -%}",
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}",
    ])


_CHATML = _chatml(tools=True)
_CHATML_V1 = _chatml(tools=False)  # saved with models trained before tool calls were rendered: still 'chatml'


_ALPACA_HEADERS = {"en": ("Instruction", "Input", "Response"), "ja": ("指示", "入力", "応答")}
# Japanese if the first user message holds any kana or CJK ideograph (the rule of
# `llm_recipe.train.sft_data.has_japanese`), written in Jinja so the saved template applies it too.
_DETECT_JA = "".join([
    "{%- set lang = namespace(ja=false, done=false) -%}",
    "{%- for message in messages -%}{%- if message['role'] == 'user' and not lang.done -%}",
    "{%- set lang.done = true -%}",
    "{%- for ch in message['content'] -%}",
    "{%- if ('\u3040' <= ch <= '\u30ff') or ('\u4e00' <= ch <= '\u9fff') -%}{%- set lang.ja = true -%}{%- break -%}{%- endif -%}",
    "{%- endfor -%}{%- endif -%}{%- endfor -%}",
])


def _alpaca(lang: str) -> str:
    """Alpaca with English or Japanese headers; lang='auto' picks them per conversation.

    Same layout as the pretraining corpus' `qa` source ("### Instruction:\n...\n\n### Response:\n...").
    """
    def header(i: int) -> str:
        if lang != "auto":
            return f"'### {_ALPACA_HEADERS[lang][i]}:\\n'"
        ja, en = _ALPACA_HEADERS["ja"][i], _ALPACA_HEADERS["en"][i]
        return f"('### {ja}:\\n' if lang.ja else '### {en}:\\n')"

    return "".join([
        _BOS,
        _DETECT_JA if lang == "auto" else "",
        "{%- if messages[0]['role'] == 'system' -%}{{- messages[0]['content'] + '\\n\\n' -}}{%- endif -%}",
        "{%- for message in messages -%}",
        "{%- if message['role'] == 'user' -%}",
        f"{{{{- {header(0)} + message['content'] + '\\n\\n' -}}}}",
        "{%- if message['input'] is defined and message['input'] -%}",
        f"{{{{- {header(1)} + message['input'] + '\\n\\n' -}}}}",
        "{%- endif -%}",
        "{%- elif message['role'] == 'assistant' -%}",
        f"{{{{- {header(2)} -}}}}",
        "{%- generation -%}{{- message['content'] + eos_token -}}{%- endgeneration -%}",
        "{%- if not loop.last -%}{{- '\\n\\n' -}}{%- endif -%}",
        "{%- endif -%}",
        "{%- endfor -%}",
        f"{{%- if add_generation_prompt -%}}{{{{- {header(2)} -}}}}{{%- endif -%}}",
    ])


_LLAMA2 = "".join([
    # The system prompt goes inside the first [INST] block, as Llama-2-chat was trained.
    "{%- if messages[0]['role'] == 'system' -%}",
    "{%- set ns = namespace(sys='<<SYS>>\\n' + messages[0]['content'] + '\\n<</SYS>>\\n\\n') -%}",
    "{%- else -%}{%- set ns = namespace(sys='') -%}{%- endif -%}",
    "{%- for message in messages -%}",
    "{%- if message['role'] == 'user' -%}",
    "{{- (bos_token if bos_token else '') + '[INST] ' + ns.sys + message['content'] -}}",
    _USER_INPUT,
    "{{- ' [/INST]' -}}",
    "{%- set ns.sys = '' -%}",
    "{%- elif message['role'] == 'assistant' -%}",
    "{%- generation -%}{{- ' ' + message['content'] + ' ' + eos_token -}}{%- endgeneration -%}",
    "{%- endif -%}",
    "{%- endfor -%}",
])


@dataclass(frozen=True)
class ChatFormat:
    name: str
    template: str
    # Tokens that end an assistant turn besides the tokenizer's eos (generation stops on them).
    end_of_turn: tuple[str, ...] = ()

    @property
    def has_generation_tags(self) -> bool:
        return bool(re.search(r"\{%-?\s*generation\s*-?%\}", self.template))


FORMATS: dict[str, ChatFormat] = {
    "alpaca": ChatFormat("alpaca", _alpaca("auto")),
    "alpaca_en": ChatFormat("alpaca_en", _alpaca("en")),
    "alpaca_ja": ChatFormat("alpaca_ja", _alpaca("ja")),
    "chatml": ChatFormat("chatml", _CHATML, end_of_turn=("<|im_end|>",)),
    "llama2": ChatFormat("llama2", _LLAMA2),
}
FORMAT_NAMES = (*FORMATS, "tokenizer")
# Earlier versions of a registry format (saved with models trained then) -> the format's name; they
# render every conversation they could render the same as the current version.
LEGACY_TEMPLATES = {_CHATML_V1: "chatml"}


class ChatFormatMismatchWarning(UserWarning):
    """The requested prompt format differs from the one saved with the model."""


class TemplateError(ValueError):
    """A conversation the template cannot render consistently (counted as a skip by callers)."""


@dataclass
class Rendered:
    text: str
    spans: list[tuple[int, int]]  # character spans of assistant text to train on, in order


def saved_template(tokenizer) -> str | None:
    tpl = getattr(tokenizer, "chat_template", None)
    if isinstance(tpl, dict):  # several named templates: the default one is the chat format
        tpl = tpl.get("default")
    return tpl or None


def format_name_of(template: str | None) -> str | None:
    """Registry name of a saved template, 'tokenizer' for any other template, None for none."""
    if not template:
        return None
    if template in LEGACY_TEMPLATES:
        return LEGACY_TEMPLATES[template]
    return next((f.name for f in FORMATS.values() if f.template == template), "tokenizer")


def get_chat_format(name: str, tokenizer=None) -> ChatFormat:
    if name == "tokenizer":
        tpl = saved_template(tokenizer) if tokenizer is not None else None
        if not tpl:
            raise ValueError("chat format 'tokenizer': this tokenizer has no chat_template")
        return ChatFormat("tokenizer", tpl)
    if name not in FORMATS:
        raise ValueError(f"unknown chat format '{name}' (choose from {', '.join(FORMAT_NAMES)})")
    return FORMATS[name]


def resolve_chat_format(tokenizer, requested: str | None = None) -> ChatFormat:
    """The format to use with this tokenizer/model.

    `requested=None` means "the one saved with the model". Asking for a different registry format
    than the saved one still works but warns: the model was trained on the other layout.
    """
    saved = saved_template(tokenizer)
    if requested is None:
        if not saved:
            raise ValueError(
                "this model has no saved chat format (no chat_template); name one of: " + ", ".join(FORMAT_NAMES)
            )
        name = format_name_of(saved)
        return FORMATS[name] if name in FORMATS else ChatFormat("tokenizer", saved)
    fmt = get_chat_format(requested, tokenizer)
    if saved and fmt.template != saved:
        warnings.warn(
            f"the model was trained with chat format '{format_name_of(saved)}' but '{fmt.name}' was requested; "
            "prompts will not look like its training data",
            ChatFormatMismatchWarning,
            stacklevel=2,
        )
    return fmt


def _render(template: str, messages: list[dict], special: dict, add_generation_prompt: bool,
            track: bool, tools: list | None = None) -> tuple[str, list[tuple[int, int]]]:
    rendered, indices = render_jinja_template(
        conversations=[messages], chat_template=template, return_assistant_tokens_mask=track,
        add_generation_prompt=add_generation_prompt, tools=tools, **special,
    )
    return rendered[0], [tuple(s) for s in indices[0]] if track else []


def render(fmt: ChatFormat, messages: list[dict], tokenizer, add_generation_prompt: bool = False,
           tools: list | None = None) -> Rendered:
    """Render a conversation; `spans` are the assistant texts (including the end-of-turn token).
    `tools`: function schemas, for templates that render them."""
    special = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
    special.setdefault("bos_token", None)
    special.setdefault("eos_token", "")
    if fmt.has_generation_tags:
        text, spans = _render(fmt.template, messages, special, add_generation_prompt, track=True, tools=tools)
        return Rendered(text, spans)
    # No generation tags: an assistant turn is what rendering the conversation up to and including
    # it adds to the prompt that asks for it. Valid only if those renders are prefixes of the whole.
    text, _ = _render(fmt.template, messages, special, add_generation_prompt, track=False, tools=tools)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before, _ = _render(fmt.template, messages[:i], special, True, track=False, tools=tools)
        upto, _ = _render(fmt.template, messages[: i + 1], special, False, track=False, tools=tools)
        if not (text.startswith(before) and text.startswith(upto) and len(upto) > len(before)):
            raise TemplateError("template renders a conversation prefix differently from the whole")
        spans.append((len(before), len(upto)))
    return Rendered(text, spans)


_PROBE_CALL = "zq_probe_function"
_PROBE_RESULT = "zq_probe_result"
_PROBE_SCHEMA = "zq_probe_schema"
_PROBES = {
    # what the template must show, and a conversation that holds it
    "tool_calls": (_PROBE_CALL, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": _PROBE_CALL, "arguments": {"x": 1}}}]},
        {"role": "tool", "content": "r"}, {"role": "assistant", "content": "a"}], None),
    "tool_turns": (_PROBE_RESULT, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "c"},
                                   {"role": "tool", "content": _PROBE_RESULT}, {"role": "assistant", "content": "a"}], None),
    "tools": (_PROBE_SCHEMA, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
              [{"type": "function", "function": {"name": _PROBE_SCHEMA, "parameters": {"type": "object"}}}]),
}


def tool_support(fmt: ChatFormat, tokenizer) -> dict[str, bool]:
    """Which tool parts a format's template renders: assistant `tool_calls`, `tool` turns, the
    `tools` schemas. Found by rendering a probe conversation for each and looking for its marker (a
    template that ignores a part renders the conversation without it, silently)."""
    out = {}
    for part, (marker, messages, tools) in _PROBES.items():
        try:
            out[part] = marker in render(fmt, messages, tokenizer, tools=tools).text
        except (TemplateError, ValueError, TypeError, KeyError, AttributeError) + _JINJA_ERRORS:
            out[part] = False
    return out


def apply_chat_format(tokenizer, fmt: ChatFormat) -> list[str]:
    """Save `fmt` as the tokenizer's chat_template; add its end-of-turn tokens if missing.

    Returns the tokens that were added (the caller must then resize the model's embeddings).
    """
    vocab = tokenizer.get_vocab()
    missing = [t for t in fmt.end_of_turn if t not in vocab]
    if fmt.name == "chatml" and "<|im_start|>" not in vocab:
        missing.insert(0, "<|im_start|>")
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    tokenizer.chat_template = fmt.template
    return missing


def stop_token_ids(tokenizer, fmt: ChatFormat) -> list[int]:
    """Token ids that end an assistant turn: eos plus the format's end-of-turn markers."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for t in fmt.end_of_turn:
        tid = tokenizer.convert_tokens_to_ids(t)
        if tid is not None and tid != tokenizer.unk_token_id:
            ids.append(tid)
    return sorted(set(ids))
