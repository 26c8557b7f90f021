"""Prompt construction for evaluation: the SAME template the model was trained with.

Temporary home until ``tunerail.train.prompting`` lands; then ``build_messages`` /
``render_prompt`` here delegate to it so train and eval can never drift apart.
A missing system message is passed as none (the chat template may then insert its default,
exactly as in training); the template's ``{prompt}`` is filled with the record's prompt.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

from tunerail.config import PromptTemplate


def build_messages(template: PromptTemplate, prompt: str,
                   shots: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """System turn (if any), optional few-shot user/assistant pairs, then the user turn."""
    if not shots:
        try:  # the trainer's implementation wins once merged
            from tunerail.train.prompting import build_messages as train_build  # type: ignore
        except ImportError:
            pass
        else:
            return train_build(template, prompt)
    out: list[dict[str, str]] = []
    if template.system:
        out.append({"role": "system", "content": template.system})
    for q, a in shots:
        out += [{"role": "user", "content": template.template.replace("{prompt}", q)},
                {"role": "assistant", "content": a}]
    out.append({"role": "user", "content": template.template.replace("{prompt}", prompt)})
    return out


def render_prompt(tokenizer: Any, template: PromptTemplate, prompt: str,
                  shots: Sequence[tuple[str, str]] = ()) -> str:
    """Chat-template text ending with the assistant header, ready for generation/scoring."""
    return tokenizer.apply_chat_template(build_messages(template, prompt, shots), tokenize=False,
                                         add_generation_prompt=True)


def prompt_hash(template: PromptTemplate, shots: Sequence[tuple[str, str]] = ()) -> str:
    """Identifies a prompt variant in caches and reports (version + exact text)."""
    payload = json.dumps({"t": template.model_dump(mode="json"), "shots": list(shots)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
