"""An Ollama `Modelfile` for an exported GGUF: FROM the file, the chat template as Ollama's Go
template, the stop tokens, the sampling defaults, the trained context length.

    modelfile(model_dir, gguf_name, sampling) -> (text, report)

The template is translated, not guessed: the model's Jinja chat template is rendered on probe
conversations and must match the ChatML layout (`<|im_start|>role\\n...<|im_end|>\\n`, the
project's `chatml` format, SmolLM2's and Qwen's templates), including a default system prompt the
template adds by itself (then Ollama's SYSTEM); the Go template written is checked by rendering
the same layout back (`render_turns`) against the Jinja template on a multi-turn conversation. A
template of another layout gets no TEMPLATE line (Ollama then matches the GGUF's own
`tokenizer.chat_template` against its known templates) and the report says why.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

GO_CHATML = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}
{{- end }}"""

_PROBE = [{"role": "system", "content": "SYS_Q1"}, {"role": "user", "content": "USER_Q2"},
          {"role": "assistant", "content": "ASSISTANT_Q3"}, {"role": "user", "content": "USER_Q4"}]


def render_turns(messages: list[dict], default_system: str | None, generation: bool) -> str:
    """What GO_CHATML (with Ollama's SYSTEM default prepended when there is no system message)
    renders: the Python twin used to check the translation against the Jinja template."""
    if default_system is not None and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": default_system}, *messages]
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if generation and messages[-1]["role"] != "assistant" else "")


def _jinja(tok, messages: list[dict], generation: bool) -> str:
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    bos = tok.bos_token or ""  # a template that writes BOS itself: llama.cpp adds it (add_bos_token)
    writes_bos = "bos_token" in str(tok.chat_template)
    return text[len(bos):] if bos and writes_bos and text.startswith(bos) else text


def translate_template(tok) -> tuple[str | None, str | None, str]:
    """(Go template, default system prompt, why) of a tokenizer's chat template; None when its
    layout is not ChatML (why says what was found)."""
    if not getattr(tok, "chat_template", None):
        return None, None, "the model has no chat template"
    try:
        no_system = _jinja(tok, _PROBE[1:2], True)
        default = None
        head = "<|im_start|>system\n"
        if no_system.startswith(head):  # a system turn the template adds by itself
            default = no_system[len(head):no_system.index("<|im_end|>")]
        # a reply is asked for after a user turn (Ollama adds the assistant header only then)
        cases = [(_PROBE, True), (_PROBE, False), (_PROBE[1:], True), (_PROBE[:3], False)]
        ok = all(_jinja(tok, conv, gen) == render_turns(conv, default, gen) for conv, gen in cases)
    except Exception as e:  # noqa: BLE001 - any template error means: not translatable
        return None, None, f"the chat template cannot be rendered on a probe conversation ({type(e).__name__})"
    if not ok:
        return None, None, "the chat template is not ChatML-shaped (<|im_start|>role ... <|im_end|>)"
    return GO_CHATML, default, "ChatML, checked against the Jinja template on a multi-turn conversation"


def _stops(tok, model_dir: Path) -> list[str]:
    """Tokens that end a turn: the generation config's eos ids, the tokenizer's eos, <|im_end|>."""
    gen = _read(model_dir / "generation_config.json")
    ids = gen.get("eos_token_id")
    ids = ids if isinstance(ids, list) else [ids] if ids is not None else []
    stops = [tok.convert_ids_to_tokens(int(i)) for i in ids]
    stops += [t for t in (tok.eos_token, "<|im_end|>") if t and t in tok.get_vocab()]
    return list(dict.fromkeys(s for s in stops if s))


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _quoted(text: str) -> str:
    if '"""' in text:
        raise ValueError('text with """ cannot go into a Modelfile')
    return f'"""{text}"""'


def modelfile(model_dir: str | os.PathLike, gguf_name: str, sampling) -> tuple[str, dict]:
    """The Modelfile's text for `gguf_name` (beside it) and what went in; `sampling`: a
    `SamplingConfig` for the PARAMETER defaults."""
    from ..models.loading import load_tokenizer

    model_dir = Path(model_dir)
    tok = load_tokenizer(model_dir)
    template, default_system, why = translate_template(tok)
    lines = [f"# written by llm-recipe export from {model_dir}", f"FROM ./{gguf_name}"]
    if template is not None:
        lines.append(f"TEMPLATE {_quoted(template)}")
    if default_system:
        lines.append(f"SYSTEM {_quoted(default_system)}")
    stops = _stops(tok, model_dir)
    lines += [f"PARAMETER stop {json.dumps(s)}" for s in stops]
    params = {"temperature": sampling.temperature, "top_k": sampling.top_k, "top_p": sampling.top_p,
              "repeat_penalty": sampling.repetition_penalty, "num_predict": sampling.max_new_tokens}
    ctx = getattr(tok, "model_max_length", None)
    if isinstance(ctx, int) and 0 < ctx < 1 << 20:
        params["num_ctx"] = ctx
    lines += [f"PARAMETER {k} {v:g}" if isinstance(v, float) else f"PARAMETER {k} {v}"
              for k, v in params.items() if v is not None]
    report = {"template": why if template is not None else None, "no_template_because": None if template else why,
              "default_system": default_system, "stop": stops, "parameters": {k: v for k, v in params.items()
                                                                                if v is not None}}
    return "\n".join(lines) + "\n", report
