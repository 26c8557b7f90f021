"""The one place a record becomes model input: doctor, train, eval, forgetting, the judge, select,
sweep, serve and monitor all render prompts here.

Training and evaluation must see byte-identical prompts, or the evaluation measures a prompt the
model was never trained on; the doctor must count tokens exactly as training will, or its
truncation figures disagree with the trainer's. Everything goes through :func:`build_messages`,
then :func:`render_prompt` (the text the model continues from) and, for training,
:func:`render_example` (prompt and answer); :func:`conversation_parts` cuts a chat record at every
assistant turn and :func:`encode_parts` / :func:`fit_parts` tokenise and truncate it the way the trainer does.

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


# What the loss covers, by ``train.loss_on``: "context" is every token not written by the assistant,
# "turn" an earlier assistant turn of a chat record, "answer" the final assistant turn.
LOSS_KINDS: dict[str, frozenset[str]] = {
    "all": frozenset({"turn", "answer"}),
    "last": frozenset({"answer"}),
    "sequence": frozenset({"context", "turn", "answer"}),
}

Part = tuple[str, str]  # (text, kind): kind is "context", "turn" or "answer"


def conversation_parts(tokenizer: Any, record: Record, prompt_template: Any = None) -> list[Part]:
    """The training text of ``record`` cut at its assistant turns: [(text, kind), ...] in order.

    Joined, the texts are exactly :func:`render_example`'s prompt + answer. Each assistant turn's
    span comes from the chat template itself, rendered incrementally and diffed: the text between
    the conversation up to turn ``i`` with the generation prompt and the conversation including
    turn ``i`` is that turn, end-of-turn marker included (templates without ``{% generation %}``,
    such as SmolLM2's, give no assistant mask). A template that rewrites earlier turns when later
    ones follow (one that strips earlier reasoning, say) is not prefix-stable; the earlier turns
    then stay context and only the final answer is marked. So do tokenizers without a chat template.
    """
    messages = build_messages(record, prompt_template)
    prompt, answer = render_example(tokenizer, messages, record.completion)
    whole: list[Part] = [(prompt, "context"), (answer, "answer")]
    earlier = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not earlier or not getattr(tokenizer, "chat_template", None):
        return whole
    parts: list[Part] = []
    done = ""
    for i in earlier:
        before = render_prompt(tokenizer, messages[:i])
        after = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (before.startswith(done) and after.startswith(before) and prompt.startswith(after)):
            return whole
        parts += [(before[len(done) :], "context"), (after[len(before) :], "turn")]
        done = after
    parts += [(prompt[len(done) :], "context"), (answer, "answer")]
    return [(text, kind) for text, kind in parts if text]


def encode_parts(tokenizer: Any, record: Record, prompt_template: Any = None) -> list[tuple[list[int], str]]:
    """:func:`conversation_parts` tokenised part by part, before truncation: what training and the doctor count.

    Each part is tokenised apart so every span is exact (chat templates end each part on a special
    token or a newline, so nothing would merge across a boundary anyway).
    """
    parts = conversation_parts(tokenizer, record, prompt_template)
    ids = tokenizer([text for text, _ in parts], add_special_tokens=False, return_attention_mask=False)["input_ids"]
    return [(list(x), kind) for x, (_, kind) in zip(ids, parts)]


def fit_parts(parts: Sequence[tuple[list[int], str]], max_length: int) -> list[tuple[list[int], str]]:
    """Cut tokenised parts to ``max_length`` tokens the way training does (the doctor reports the same cut).

    The final answer keeps up to ``max(max_length - everything before it, max_length // 2)`` tokens
    (at least one, so no row is left with nothing to learn); the conversation before it is then cut
    from the left, so the turns right before the answer survive. An earlier assistant turn that loses
    its start becomes context: no loss on an answer whose beginning the model cannot see.
    """
    total = sum(len(ids) for ids, _ in parts)
    if total <= max_length:
        return [(list(ids), kind) for ids, kind in parts]
    *before, (answer, kind) = parts
    n_before = total - len(answer)
    answer = answer[: max(max_length - n_before, max_length // 2, 1)]
    drop = max(0, n_before - (max_length - len(answer)))
    out: list[tuple[list[int], str]] = []
    for ids, part_kind in before:
        if drop >= len(ids):
            drop -= len(ids)
            continue
        out.append((list(ids[drop:]), "context" if drop and part_kind == "turn" else part_kind))
        drop = 0
    return out + [(list(answer), kind)]


def training_lengths(
    tokenizer: Any, records: Sequence[Record], prompt_template: Any = None, batch_size: int = 1024, max_chars: int | None = None
) -> list[int]:
    """Training length in tokens of every record (all its parts), tokenised in batches.

    Same parts as :func:`encode_parts`, batched for speed on large files; each batch is
    rendered just before it is tokenised, so memory does not grow with the file. ``max_chars``
    caps each rendered part (a 50 MB row need not be tokenised whole to know it is too long:
    pass a cap far above ``max_seq_length`` times the longest token). A capped part's count is
    extrapolated from its capped text (tokens x full length / capped length, rounded up), so a
    20 MB row reads as millions of tokens, not as the ~800 of its first characters.
    """
    lengths: list[int] = []
    for start in range(0, len(records), batch_size):
        texts: list[str] = []
        owner: list[tuple[int, float]] = []  # (record in the batch, full length / capped length)
        batch = records[start : start + batch_size]
        for j, record in enumerate(batch):
            for text, _ in conversation_parts(tokenizer, record, prompt_template):
                texts.append(text[:max_chars])
                owner.append((j, len(text) / max(1, len(texts[-1]))))
        counts = [0] * len(batch)
        for (j, scale), ids in zip(owner, tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]):
            counts[j] += math.ceil(len(ids) * scale)
        lengths.extend(counts)
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
