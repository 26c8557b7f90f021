"""The one place a record becomes model input: doctor, train, eval, forgetting, the judge, select,
sweep, serve and monitor all render prompts here.

Training and evaluation must see byte-identical prompts, or the evaluation measures a prompt the
model was never trained on; the doctor must count tokens exactly as training will, or its
truncation figures disagree with the trainer's. Everything goes through :func:`build_messages`,
then :func:`render_prompt` (the text the model continues from) and, for training,
:func:`render_example` (prompt and answer); :func:`encode_example` tokenises both parts the way the trainer does.

Notes
-----
- Always pass a system message: without one, some chat templates (SmolLM2's) insert a ~20-token
  default system prompt the user never asked for.
- The answer text ends with the template's end-of-turn marker (``<|im_end|>`` for SmolLM2), so the
  model learns to stop; the loss mask is built from the answer *span*, never from the pad id
  (pad = eos = ``<|im_end|>`` there, and masking by pad id would hide the stop token).
- Few-shot examples (``shots``) are inserted as user/assistant turns before the final user turn,
  each rendered with the same template.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Mapping, Sequence

from tunerail.data.records import Record

PROMPT_FIELD = "{prompt}"


def template_parts(prompt_template: Any) -> tuple[str | None, str]:
    """(system, template) from a ``PromptTemplate``, a mapping or a plain template string."""
    if prompt_template is None:
        return None, PROMPT_FIELD
    if isinstance(prompt_template, str):
        return None, prompt_template
    if isinstance(prompt_template, Mapping):
        return prompt_template.get("system"), prompt_template.get("template", PROMPT_FIELD)
    return getattr(prompt_template, "system", None), getattr(prompt_template, "template", PROMPT_FIELD)


def pick_template(config: Any, version: str | None = None) -> Any:
    """The prompt variant a step uses: ``version``, else ``eval.prompt_version``, else the first.

    Raises ``TunerailError`` naming the versions that exist when ``version`` is unknown.
    """
    from tunerail.errors import Problem, TunerailError

    wanted = version or config.eval.prompt_version
    if wanted is None:
        return config.prompts[0] if config.prompts else None
    for p in config.prompts:
        if p.version == wanted:
            return p
    raise TunerailError(
        Problem(
            f"no prompt with version {wanted!r}",
            field="eval.prompt_version",
            fix=f"use one of: {', '.join(p.version for p in config.prompts)}",
        )
    )


def build_messages(
    record_or_prompt: Record | str, prompt_template: Any = None, shots: Sequence[tuple[str, str]] = ()
) -> list[dict[str, str]]:
    """Chat messages for one example, WITHOUT the answer turn.

    Parameters
    ----------
    record_or_prompt : Record or str
        A loaded record (its ``prompt``; for multi-turn chat records the earlier turns are kept)
        or the prompt text itself.
    prompt_template : PromptTemplate, mapping or str, optional
        ``system`` message and user ``template`` in which ``{prompt}`` is replaced (plain
        replacement, so other braces in the template or the data are left alone).
    shots : sequence of (prompt, answer), optional
        Few-shot examples placed after the system turn, each with the same template.
    """
    system, template = template_parts(prompt_template)
    if isinstance(record_or_prompt, Record) and record_or_prompt.format == "chat":
        turns = list(record_or_prompt.messages)
        last = max(i for i, t in enumerate(turns) if t["role"] == "assistant")
        messages = [dict(t) for t in turns[:last]]
        if system and not any(t["role"] == "system" for t in messages):
            messages.insert(0, {"role": "system", "content": system})
        # Apply the template to the final user turn only; earlier turns are context as written.
        for turn in reversed(messages):
            if turn["role"] == "user":
                turn["content"] = template.replace(PROMPT_FIELD, turn["content"])
                break
    else:
        prompt = record_or_prompt.prompt if isinstance(record_or_prompt, Record) else str(record_or_prompt)
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": template.replace(PROMPT_FIELD, prompt)})
    if not shots:
        return messages
    pairs: list[dict[str, str]] = []
    for question, answer in shots:
        pairs += [{"role": "user", "content": template.replace(PROMPT_FIELD, question)}, {"role": "assistant", "content": answer}]
    head = 1 if messages and messages[0]["role"] == "system" else 0
    return messages[:head] + pairs + messages[head:]


def render_prompt(tokenizer: Any, messages_without_answer: list[dict[str, str]]) -> str:
    """The exact prompt string (chat template + generation prompt) the model continues from.

    Tokenizers without a chat template (plain base models) get a simple, documented layout:
    each turn's content on its own paragraph, ending with ``"\\n"`` for the answer.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages_without_answer, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages_without_answer) + "\n"


def render_example(tokenizer: Any, messages_without_answer: list[dict[str, str]], answer: str) -> tuple[str, str]:
    """(prompt, answer) texts of one training example: :func:`render_prompt` and what follows it.

    The answer is derived from the chat template itself (full conversation minus the prompt), so
    whatever the template appends after an assistant turn (its end-of-turn marker) is learned too.
    One render of the prompt serves both parts: the doctor renders every row of a large file.
    """
    prompt = render_prompt(tokenizer, messages_without_answer)
    if getattr(tokenizer, "chat_template", None):
        full = tokenizer.apply_chat_template(messages_without_answer + [{"role": "assistant", "content": answer}], tokenize=False)
        if full.startswith(prompt):
            return prompt, full[len(prompt) :]
    return prompt, answer + (tokenizer.eos_token or "")


def prompt_for(tokenizer: Any, record_or_prompt: Record | str, prompt_template: Any = None, shots: Sequence[tuple[str, str]] = ()) -> str:
    """:func:`build_messages` then :func:`render_prompt`: the text generation and scoring start from."""
    return render_prompt(tokenizer, build_messages(record_or_prompt, prompt_template, shots))


def encode_example(tokenizer: Any, record: Record, prompt_template: Any = None) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) exactly as training tokenises a record, before truncation.

    The two parts are tokenised apart, so the answer span is exact; ``len(prompt) + len(answer)``
    is the row's training length, which the doctor's truncation count and the trainer's lint use.
    """
    prompt, answer = render_example(tokenizer, build_messages(record, prompt_template), record.completion)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return list(prompt_ids), list(answer_ids)


def training_lengths(
    tokenizer: Any, records: Sequence[Record], prompt_template: Any = None, batch_size: int = 1024, max_chars: int | None = None
) -> list[int]:
    """Training length in tokens of every record (prompt + answer), tokenised in batches.

    Same texts as :func:`encode_example`, batched for speed on large files; each batch is
    rendered just before it is tokenised, so memory does not grow with the file. ``max_chars``
    caps each rendered text (a 50 MB row need not be tokenised whole to know it is too long:
    pass a cap far above ``max_seq_length`` times the longest token). A capped text's count is
    extrapolated from its capped part (tokens x full length / capped length, rounded up), so a
    20 MB row reads as millions of tokens, not as the ~800 of its first characters.
    """
    lengths: list[int] = []
    for start in range(0, len(records), batch_size):
        prompts: list[str] = []
        answers: list[str] = []
        scales: list[tuple[float, float]] = []  # full length / capped length, prompt and answer
        for record in records[start : start + batch_size]:
            prompt, answer = render_example(tokenizer, build_messages(record, prompt_template), record.completion)
            prompts.append(prompt[:max_chars])
            answers.append(answer[:max_chars])
            scales.append((len(prompt) / max(1, len(prompts[-1])), len(answer) / max(1, len(answers[-1]))))
        p = tokenizer(prompts, add_special_tokens=False, return_attention_mask=False)
        a = tokenizer(answers, add_special_tokens=False, return_attention_mask=False)
        lengths.extend(math.ceil(len(x) * sx) + math.ceil(len(y) * sy) for x, y, (sx, sy) in zip(p["input_ids"], a["input_ids"], scales))
    return lengths


def prompt_hash(prompt_template: Any, shots: Sequence[tuple[str, str]] = ()) -> str:
    """Identifies a prompt variant in caches and reports (version + exact text + shots)."""
    if hasattr(prompt_template, "model_dump"):
        payload_t: Any = prompt_template.model_dump(mode="json")
    elif isinstance(prompt_template, Mapping):
        payload_t = dict(prompt_template)
    else:
        payload_t = prompt_template
    payload = json.dumps({"t": payload_t, "shots": [list(s) for s in shots]}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
