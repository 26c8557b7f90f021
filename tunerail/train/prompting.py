"""The one place a record becomes model input, shared by training and evaluation.

Training and evaluation must see byte-identical prompts, or the evaluation measures a prompt the
model was never trained on. Both call :func:`build_messages` then :func:`render_prompt`; training
appends :func:`render_answer`. Keep these signatures stable: ``tunerail.eval`` imports them.

Notes
-----
- Always pass a system message: without one, some chat templates (SmolLM2's) insert a ~20-token
  default system prompt the user never asked for.
- The answer text ends with the template's end-of-turn marker (``<|im_end|>`` for SmolLM2), so the
  model learns to stop; the loss mask is built from the answer *span*, never from the pad id
  (pad = eos = ``<|im_end|>`` there, and masking by pad id would hide the stop token).
"""

from __future__ import annotations

from typing import Any, Mapping

from tunerail.data.records import Record

PROMPT_FIELD = "{prompt}"


def _template_parts(prompt_template: Any) -> tuple[str | None, str]:
    """(system, template) from a ``PromptTemplate``, a mapping or a plain template string."""
    if prompt_template is None:
        return None, PROMPT_FIELD
    if isinstance(prompt_template, str):
        return None, prompt_template
    if isinstance(prompt_template, Mapping):
        return prompt_template.get("system"), prompt_template.get("template", PROMPT_FIELD)
    return getattr(prompt_template, "system", None), getattr(prompt_template, "template", PROMPT_FIELD)


def build_messages(record_or_prompt: Record | str, prompt_template: Any = None) -> list[dict[str, str]]:
    """Chat messages for one example, WITHOUT the answer turn.

    Parameters
    ----------
    record_or_prompt : Record or str
        A loaded record (its ``prompt``; for multi-turn chat records the earlier turns are kept)
        or the prompt text itself.
    prompt_template : PromptTemplate, mapping or str, optional
        ``system`` message and user ``template`` in which ``{prompt}`` is replaced (plain
        replacement, so other braces in the template or the data are left alone).
    """
    system, template = _template_parts(prompt_template)
    if isinstance(record_or_prompt, Record) and record_or_prompt.format == "chat":
        turns = list(record_or_prompt.messages)
        last = max(i for i, t in enumerate(turns) if t["role"] == "assistant")
        history = [dict(t) for t in turns[:last]]
        if system and not any(t["role"] == "system" for t in history):
            history.insert(0, {"role": "system", "content": system})
        # Apply the template to the final user turn only; earlier turns are context as written.
        for turn in reversed(history):
            if turn["role"] == "user":
                turn["content"] = template.replace(PROMPT_FIELD, turn["content"])
                break
        return history
    prompt = record_or_prompt.prompt if isinstance(record_or_prompt, Record) else str(record_or_prompt)
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": template.replace(PROMPT_FIELD, prompt)})
    return messages


def render_prompt(tokenizer: Any, messages_without_answer: list[dict[str, str]]) -> str:
    """The exact prompt string (chat template + generation prompt) the model continues from.

    Tokenizers without a chat template (plain base models) get a simple, documented layout:
    each turn's content on its own paragraph, ending with ``"\\n"`` for the answer.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages_without_answer, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages_without_answer) + "\n"


def render_answer(tokenizer: Any, messages_without_answer: list[dict[str, str]], answer: str) -> str:
    """The answer text that follows :func:`render_prompt` in training, end-of-turn marker included.

    Derived from the chat template itself (full conversation minus the prompt), so whatever the
    template appends after an assistant turn is learned too.
    """
    prompt = render_prompt(tokenizer, messages_without_answer)
    if getattr(tokenizer, "chat_template", None):
        full = tokenizer.apply_chat_template(
            messages_without_answer + [{"role": "assistant", "content": answer}], tokenize=False)
        if full.startswith(prompt):
            return full[len(prompt):]
    return answer + (tokenizer.eos_token or "")
