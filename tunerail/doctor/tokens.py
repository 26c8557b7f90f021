"""Token counts as training will see them: the chat template applied, then the fast tokenizer.

Counting characters or words misjudges truncation badly (SmolLM2 splits ``card_arrival`` into
several tokens, and the chat template adds a default system prompt of ~20 tokens).
"""

from __future__ import annotations

from typing import Any, Sequence

from tunerail.config import TunerailConfig
from tunerail.data.records import Record


def training_messages(record: Record, config: TunerailConfig) -> list[dict[str, str]]:
    """The conversation training builds for ``record``: system prompt and template from ``prompts[0]``."""
    prompt = config.prompts[0] if config.prompts else None
    messages = [dict(m) for m in record.messages]
    if prompt is not None and record.format != "chat":
        messages[0]["content"] = prompt.template.replace("{prompt}", record.prompt)
    if prompt is not None and prompt.system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": prompt.system})
    return messages


def chat_token_lengths(records: Sequence[Record], tokenizer: Any, config: TunerailConfig,
                       batch_size: int = 1024) -> list[int]:
    """Token count of every record's full training sequence (prompt + answer), batched."""
    texts = [_render(tokenizer, training_messages(r, config)) for r in records]
    lengths: list[int] = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        encoded = tokenizer(batch, add_special_tokens=False, return_attention_mask=False)
        lengths.extend(len(ids) for ids in encoded["input_ids"])
    return lengths


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False)
    # No template (a base model): training concatenates the turns.
    return "\n".join(m["content"] for m in messages) + (tokenizer.eos_token or "")
