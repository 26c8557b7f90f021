"""How two written prompts differ, and whether their answers say so: the rules that tell one request asked twice
(a near-duplicate, a conflict) from two requests (``tunerail.doctor.checks.similarity``)."""

from __future__ import annotations

import difflib
import re

from tunerail.data.record_prompts import STEM, parse_record


def record_key(prompt: str) -> str:
    """A record prompt's ``(field, value)`` pairs, case-folded and sorted, as one string; ``""`` for other prompts."""
    record = parse_record(prompt)
    return "" if record is None else repr(sorted((k.casefold(), v.casefold()) for k, v in record))


_WORDS = re.compile(r"\w+")


def _added_words(a: str, b: str, ignore: frozenset[str] | set[str]) -> tuple[set[str], set[str]]:
    """The words only ``a`` and only ``b`` hold, less ``ignore`` and typos (a word within edit ratio 0.8 of one on the other side)."""
    wa, wb = set(_WORDS.findall(a.casefold())), set(_WORDS.findall(b.casefold()))
    only_a = {w for w in wa - wb if w not in ignore}
    only_b = {w for w in wb - wa if w not in ignore}

    def typo_of(word: str, others: set[str]) -> bool:
        return any(difflib.SequenceMatcher(None, word, o).ratio() >= 0.8 for o in others)

    return {w for w in only_a if not typo_of(w, wb - wa)}, {w for w in only_b if not typo_of(w, wa - wb)}


def minimal_pair(a: str, b: str) -> bool:
    """True when one prompt adds content words to the other, and those words may decide the label.

    "A payment I didn't do" / "A direct debit payment I didn't do": the added "direct debit" is
    what makes the second a direct-debit intent, so differing labels are expected, not a
    conflict. Only additions count: stop words, punctuation and typos (a word within edit ratio
    0.8 of a word on the other side) are not decisive, and a substitution ("charged" /
    "billed") may be a paraphrase, so it still counts as a conflict.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    only_a, only_b = _added_words(a, b, ENGLISH_STOP_WORDS)
    return bool(only_a) != bool(only_b)  # content words added on one side only


# Words that do not change what a request asks ("find the perimeter of a square" = "find perimeter of square"). Not
# sklearn's stop words: those hold "first", "last", "even", "two", "more", "not", "and", "or", which do ("the first
# even number" / "the first odd number", "the first position" / "the last position").
FUNCTION_WORDS = frozenset(
    {
        "a", "an", "the", "of", "in", "on", "at", "for", "to", "from", "by", "with", "into", "onto", "about", "as", "is", "are",
        "was", "were", "be", "been", "being", "am", "do", "does", "did", "can", "could", "will", "would", "shall", "should", "may",
        "might", "must", "it", "its", "this", "that", "these", "those", "which", "who", "whom", "whose", "what", "there", "here",
        "i", "me", "my", "we", "us", "our", "you", "your", "he", "him", "his", "she", "her", "they", "them", "their", "given",
        "please", "so", "then", "also", "just", "very",
    }
)  # fmt: skip


def difference_echoed(a: tuple[str, str], b: tuple[str, str], records: bool = False) -> bool:
    """True when the prompts' difference explains the answers' difference: two different inputs, two right answers.

    ``a`` and ``b`` are ``(prompt, answer)`` pairs; ``records``: the data's prompts are records of fields.

    Records of fields (``name[The Eagle], food[French]``, see ``tunerail.data.record_prompts``) that
    differ in any field or value are two inputs to describe, whatever the answers say (a flag such
    as ``familyFriendly[yes]`` is written "kid friendly"). Other prompts: every content word one
    answer has and the other lacks is in its own prompt only (two posts naming different people,
    two right entity lists; a name both posts have and one answer leaves out is a conflict). Words count by their first
    ``STEM`` letters ("moderate" is echoed by "moderately"); a rewording with an answer that says
    what its prompt does not stays a conflict: one question answered twice.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    ka, kb = (record_key(a[0]), record_key(b[0])) if records else ("", "")
    if ka and kb:
        return ka != kb

    def stems(text: str) -> set[str]:
        return {w[:STEM] for w in _WORDS.findall(text.casefold()) if w not in ENGLISH_STOP_WORDS}

    pa, pb, aa, ab = stems(a[0]), stems(b[0]), stems(a[1]), stems(b[1])
    only_a, only_b = aa - ab, ab - aa
    return bool(only_a or only_b) and only_a <= pa - pb and only_b <= pb - pa


_IDENTIFIER_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def difference_named(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """True when a word one prompt holds and the other lacks is named by its own answer and not by the other's: two
    requests, each answered, not one request asked twice. ``a`` and ``b`` are ``(prompt, answer)``.

    MBPP: "find the perimeter of a square" / "... of a pentagon" answered ``square_perimeter`` / ``perimeter_pentagon``,
    "the first even number" / "the first odd number" (``first_even`` / ``first_odd``), "the modified run-length
    encoding" (``modified_encode``). One substituted word keeps a ten-word prompt's word-set Jaccard at 0.82, over the
    near-duplicate bar, and code that differs in an operator keeps its word set too. Only :data:`FUNCTION_WORDS` and
    typos are ignored (sklearn's stop words hold "first", "even", "two", "or"). Identifiers count by their parts
    (``first_non_repeating``, ``evenPowerSum``), a part naming a word by its first ``STEM`` letters or as its
    abbreviation ("negative" / ``largest_neg``). A copy edited at random (a word
    of the prompt and one of the answer replaced) names nothing and stays a near-duplicate; "the capital city of
    France?" answered "Lyon" beside "the capital of France?" answered "Paris" stays a conflict.
    """
    only_a, only_b = _added_words(a[0], b[0], FUNCTION_WORDS)

    def parts(text: str) -> set[str]:
        return {part.casefold() for part in _IDENTIFIER_PARTS.findall(text)}

    def named(word: str, own: set[str]) -> bool:  # by its stem, or by an abbreviation of three letters or more ("neg")
        return any(p[:STEM] == word[:STEM] or (len(p) >= 3 and word.startswith(p)) for p in own)

    pa, pb = parts(a[1]), parts(b[1])
    return any(named(w, pa - pb) for w in only_a) or any(named(w, pb - pa) for w in only_b)
