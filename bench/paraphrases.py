"""Planted in-data paraphrases: short queries reworded with a synonym and/or a typo.

The kind a user's own data holds ("Why was I double charged?" / "How come was I double billed?"):
``reword`` either swaps up to two words or phrases for a synonym (a fixed banking/customer-
service list below) or, for the other half of the rows and when no synonym applies, puts a
typo (a dropped, doubled or swapped letter) in one word. Used by ``bench/split_leakage.py`` and the split tests.
"""

from __future__ import annotations

import random
import re

SYNONYMS: dict[str, list[str]] = {
    "why": ["how come"],
    "charged": ["billed"],
    "charge": ["fee"],
    "fee": ["charge"],
    "money": ["funds", "cash"],
    "cancel": ["stop", "call off"],
    "card": ["debit card"],
    "payment": ["transaction"],
    "transaction": ["payment"],
    "transfer": ["wire"],
    "account": ["profile"],
    "received": ["gotten", "got"],
    "receive": ["get"],
    "get": ["receive", "obtain"],
    "need": ["want", "require"],
    "want": ["would like", "need"],
    "help": ["assist"],
    "how long": ["how much time"],
    "arrive": ["come", "show up"],
    "where": ["in which place"],
    "can i": ["am i able to"],
    "can you": ["could you"],
    "i can't": ["i cannot", "i am unable to"],
    "not": ["never"],
    "my": ["the"],
    "is": ["seems"],
    "still": ["yet"],
    "wrong": ["incorrect"],
    "used": ["utilized"],
    "buy": ["purchase"],
    "show": ["display"],
    "pending": ["on hold"],
    "declined": ["rejected", "refused"],
    "top up": ["top-up", "recharge"],
    "top-up": ["top up", "recharge"],
    "exchange rate": ["conversion rate"],
    "lost": ["misplaced"],
    "stolen": ["taken"],
    "atm": ["cash machine"],
    "withdraw": ["take out"],
    "refund": ["reimbursement"],
    "phone": ["mobile"],
    "app": ["application"],
    "verify": ["confirm"],
    "identity": ["id"],
    "extra": ["additional"],
    "twice": ["two times"],
    "again": ["once more"],
    "quickly": ["fast"],
    "soon": ["shortly"],
    "new": ["replacement"],
    "please": ["pls"],
    "what": ["which"],
    "do i": ["should i"],
    "does it": ["will it"],
    "much": ["a lot"],
    "yet": ["so far"],
    "change": ["update"],
    "send": ["transfer"],
    "time": ["long"],
    "order": ["request"],
    "happened": ["occurred"],
    "problem": ["issue"],
    "issue": ["problem"],
    "working": ["functioning"],
    "possible": ["allowed"],
}
_PHRASES = sorted(SYNONYMS, key=len, reverse=True)


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    k = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("drop", "double", "swap"))
    if kind == "drop":
        return word[:k] + word[k + 1 :]
    if kind == "double":
        return word[:k] + word[k] + word[k:]
    return word[: k - 1] + word[k] + word[k - 1] + word[k + 1 :]


def reword(text: str, rng: random.Random) -> str | None:
    """A paraphrase of ``text`` with up to two synonym swaps and/or one typo; None when unchanged."""
    lowered = text.lower()
    spots = []
    for phrase in _PHRASES:
        for m in re.finditer(rf"\b{re.escape(phrase)}\b", lowered):
            if all(m.end() <= s or m.start() >= e for s, e, _ in spots):
                spots.append((m.start(), m.end(), phrase))
    rng.shuffle(spots)
    typo_only = not spots or rng.random() < 0.5
    chosen = [] if typo_only else sorted(spots[:2])
    out, last = [], 0
    for start, end, phrase in chosen:
        out.append(text[last:start])
        out.append(rng.choice(SYNONYMS[phrase]))
        last = end
    out.append(text[last:])
    new = "".join(out)
    if typo_only:
        words = new.split(" ")
        candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
        if candidates:
            i = rng.choice(candidates)
            words[i] = _typo(words[i], rng)
            new = " ".join(words)
    return new if new != text else None


def plant(texts: list[str], n: int, seed: int = 0, max_words: int = 12) -> list[tuple[int, str]]:
    """``n`` (source index, paraphrase) pairs for short source texts (<= ``max_words`` words)."""
    rng = random.Random(seed)
    pool = [i for i, t in enumerate(texts) if len(t.split()) <= max_words]
    out = []
    for i in rng.sample(pool, len(pool)):
        new = reword(texts[i], rng)
        if new is not None:
            out.append((i, new))
        if len(out) == n:
            break
    return out
