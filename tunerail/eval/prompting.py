"""Prompt construction for evaluation: the SAME messages and template the model was trained with.

Mirrors the signatures of ``tunerail.train.prompting`` (``build_messages(record_or_prompt,
template)`` / ``render_prompt(tokenizer, messages)``) and delegates to it when it is installed,
so training and evaluation cannot drift apart. Few-shot examples (baseline only) are inserted as
user/assistant turns before the final user turn.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

from tunerail.config import PromptTemplate
from tunerail.data.records import Record

PROMPT_FIELD = "{prompt}"


def build_messages(record_or_prompt: Record | str, template: PromptTemplate,
                   shots: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """System turn (if any), optional few-shot pairs, then the user turn, without the answer."""
    try:
        from tunerail.train.prompting import build_messages as train_build  # type: ignore
    except ImportError:
        messages = _build(record_or_prompt, template)
    else:
        messages = train_build(record_or_prompt, template)
    if not shots:
        return messages
    pairs: list[dict[str, str]] = []
    for q, a in shots:
        pairs += [{"role": "user", "content": template.template.replace(PROMPT_FIELD, q)},
                  {"role": "assistant", "content": a}]
    head = 1 if messages and messages[0]["role"] == "system" else 0
    return messages[:head] + pairs + messages[head:]


def _build(record_or_prompt: Record | str, template: PromptTemplate) -> list[dict[str, str]]:
    """Fallback with the trainer's semantics: chat records keep their earlier turns."""
    if isinstance(record_or_prompt, Record) and record_or_prompt.format == "chat":
        turns = list(record_or_prompt.messages)
        last = max(i for i, t in enumerate(turns) if t["role"] == "assistant")
        history = [dict(t) for t in turns[:last]]
        if template.system and not any(t["role"] == "system" for t in history):
            history.insert(0, {"role": "system", "content": template.system})
        for turn in reversed(history):
            if turn["role"] == "user":
                turn["content"] = template.template.replace(PROMPT_FIELD, turn["content"])
                break
        return history
    prompt = record_or_prompt.prompt if isinstance(record_or_prompt, Record) else str(record_or_prompt)
    out = [{"role": "system", "content": template.system}] if template.system else []
    return out + [{"role": "user", "content": template.template.replace(PROMPT_FIELD, prompt)}]


def render_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """Chat-template text ending with the assistant header, ready for generation/scoring."""
    try:
        from tunerail.train.prompting import render_prompt as train_render  # type: ignore
    except ImportError:
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n"
    return train_render(tokenizer, messages)


def prompt_for(tokenizer: Any, record_or_prompt: Record | str, template: PromptTemplate,
               shots: Sequence[tuple[str, str]] = ()) -> str:
    return render_prompt(tokenizer, build_messages(record_or_prompt, template, shots))


def prompt_hash(template: PromptTemplate, shots: Sequence[tuple[str, str]] = ()) -> str:
    """Identifies a prompt variant in caches and reports (version + exact text)."""
    payload = json.dumps({"t": template.model_dump(mode="json"), "shots": list(shots)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
