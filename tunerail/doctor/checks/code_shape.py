"""Python answers that a cut left broken or ending in a statement no one writes: used by ``lengths.cut_off``.

A code answer has no closing punctuation to lose, so the prose signals say nothing about it ("return bin(n).r"
ends on a word like any line of code). Where a dataset's code answers are Python (MBPP, HumanEval, most code
instruction sets), the parser is the judge: a cut answer no longer parses ("for num" with no body), or it
parses but stops on a statement that does nothing ("res", "retu") or on a bare ``return`` that ends a function.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
import warnings
from typing import Sequence

from tunerail.doctor.checks.instruct import looks_like_code

PYTHON_SHARE = 0.9  # code answers that parse, at or above which a dataset's code is Python (MBPP 99 %, HumanEval 100 %)
MIN_CODE_ANSWERS = 10  # fewer code answers than this say nothing about the data's language


def parse_python(text: str) -> ast.Module | None:
    """The module ``text`` parses to, as a file or as a function's indented body (HumanEval's completions); None if neither."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in old code are the data's style, not a cut
        for source in (text, "def _body():\n" + text):  # a function's body alone parses as one
            try:
                return ast.parse(source)
            except (SyntaxError, ValueError, MemoryError, RecursionError):
                continue
    return None


def python_code(answers: Sequence[str]) -> bool:
    """Whether the data's code answers are Python: at least ``PYTHON_SHARE`` of them parse (each read up to 4,000 characters)."""
    code = [text for text in answers if "```" not in text and looks_like_code(text[:4000])]
    if len(code) < MIN_CODE_ANSWERS:
        return False
    return sum(parse_python(text[:4000]) is not None for text in code) >= PYTHON_SHARE * len(code)


def _last_statement(tree: ast.Module) -> tuple[ast.stmt, ast.stmt | None]:
    """The last statement in source order, and the function or class body it ends (None at module level)."""
    node: ast.stmt = tree.body[-1]
    owner: ast.stmt | None = None
    while True:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            owner = node
        blocks = [getattr(node, name) for name in ("finalbody", "orelse", "handlers", "body") if getattr(node, name, None)]
        if not blocks:
            return node, owner
        tail = blocks[0][-1]
        if not isinstance(tail, ast.stmt):  # an except handler: step into its body
            tail = tail.body[-1]
        node = tail


def _returns_value(function: ast.stmt) -> bool:
    return any(isinstance(node, ast.Return) and node.value is not None for node in ast.walk(function))


def _defined_nowhere(name: str, text: str, context: str) -> bool:
    """A name that is no builtin and occurs once in the answer and its prompt: its own last word, cut ("= lud")."""
    if hasattr(builtins, name) or keyword.iskeyword(name):
        return False
    return len(re.findall(rf"(?<![\w.]){re.escape(name)}(?!\w)", text + "\n" + context)) == 1


def python_cut_reason(answer: str, context: str = "") -> str | None:
    """Why a Python answer looks cut, or None: it does not parse, or it stops on a no-op, a bare ``return``
    that ends a function returning values elsewhere, or a name defined nowhere (``context``: the row's prompt).

    Call only for data whose code answers are Python (:func:`python_code`) and for an answer that looks like code.
    """
    text = answer.rstrip()
    tree = parse_python(text)
    if tree is None:
        return "does not parse as Python, unlike the data's other code answers"
    if not tree.body:
        return None
    last, owner = _last_statement(tree)
    if isinstance(last, ast.Expr) and isinstance(last.value, (ast.Name, ast.Attribute)) and owner is not None:
        return f"ends with a statement that does nothing ({ast.unparse(last.value)!r})"
    if isinstance(last, ast.Return) and last.value is None and isinstance(owner, (ast.FunctionDef, ast.AsyncFunctionDef)):
        if owner.body[-1] is last or _returns_value(owner):
            return "ends the function with a bare return"
    tail = re.search(r"[A-Za-z_]\w*$", text)
    loaded = {node.id for node in ast.walk(last) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    if tail and tail.group(0) in loaded and _defined_nowhere(tail.group(0), text, context):
        return f"ends with the name {tail.group(0)!r}, defined nowhere in the answer or its prompt"
    return None
