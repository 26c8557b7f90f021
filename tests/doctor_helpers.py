"""Helpers for the doctor tests: real rows to plant defects into, and a quick doctor run."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

from tunerail.config import TunerailConfig
from tunerail.doctor import DoctorResult, doctor

# The tokenizer check is tested on its own; elsewhere it would only add model-loading time.
FAST = ["lengths.truncated"]


def alpaca(shared_data: Path) -> list[dict[str, str]]:
    return json.loads((shared_data / "instruct" / "alpaca_5000.json").read_text(encoding="utf-8"))


def user_oriented_chats(shared_data: Path) -> list[dict[str, Any]]:
    """user_oriented_instructions.jsonl as OpenAI chat rows (first instance of each task)."""
    rows = []
    for line in (shared_data / "instruct" / "user_oriented_instructions.jsonl").read_text(encoding="utf-8").splitlines():
        task = json.loads(line)
        inst = task["instances"][0]
        user = task["instruction"] + ("\n\n" + inst["input"] if inst["input"].strip() else "")
        rows.append({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": inst["output"]}]})
    return rows


def banking(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def run(path: Path, task: str = "generation", disabled: list[str] | None = None, **doctor_cfg: Any) -> DoctorResult:
    cfg = TunerailConfig(task=task, doctor={"disabled_checks": FAST if disabled is None else disabled, **doctor_cfg})
    return doctor(path, cfg, semantic=False)


def flagged(result: DoctorResult, check: str) -> set[int]:
    return {r.index for f in result.findings if f.check == check for r in f.rows}


def luhn_card(rng: random.Random, prefix: str = "4") -> str:
    """A random Luhn-valid 16-digit card number with ``prefix``."""
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))
    for check in range(10):
        digits = body + str(check)
        total = sum((int(d) * 2 - 9 if int(d) > 4 else int(d) * 2) if i % 2 else int(d) for i, d in enumerate(reversed(digits)))
        if total % 10 == 0:
            return " ".join(digits[i : i + 4] for i in range(0, 16, 4))
    raise AssertionError


def gb_iban(rng: random.Random) -> str:
    """A random checksum-valid GB IBAN (ISO 13616)."""
    bban = "WEST" + "".join(str(rng.randrange(10)) for _ in range(14))
    check = 98 - int("".join(str(int(c, 36)) for c in bban + "GB00")) % 97
    iban = f"GB{check:02d}{bban}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def token(rng: random.Random, kind: str) -> str:
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    pick = lambda n, chars=alnum: "".join(rng.choice(chars) for _ in range(n))  # noqa: E731
    return {
        "aws": "AKIA" + pick(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
        "github": "ghp_" + pick(36),
        "openai": "sk-proj-" + pick(40),
        "slack": "xoxb-" + pick(12, "0123456789") + "-" + pick(24),
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJ" + pick(30) + "." + pick(43),
    }[kind]


FOREIGN = [
    (
        "Schreibe eine kurze Zusammenfassung über die Geschichte der Stadt Berlin.",
        "Berlin wurde im dreizehnten Jahrhundert gegründet und ist heute die Hauptstadt von Deutschland.",
    ),
    (
        "Écris une courte description de la ville de Paris et de ses monuments.",
        "Paris est la capitale de la France, célèbre pour la tour Eiffel et le musée du Louvre.",
    ),
    (
        "Escribe una breve descripción de la ciudad de Madrid y sus museos.",
        "Madrid es la capital de España y tiene museos famosos como el Prado y el Reina Sofía.",
    ),
    (
        "Scrivi una breve descrizione della città di Roma e dei suoi monumenti.",
        "Roma è la capitale d'Italia ed è famosa per il Colosseo e per i suoi antichi monumenti.",
    ),
    (
        "Schrijf een korte beschrijving van de stad Amsterdam en haar grachten.",
        "Amsterdam is de hoofdstad van Nederland en staat bekend om de grachten en de musea.",
    ),
    (
        "Escreva uma breve descrição da cidade de Lisboa e dos seus bairros antigos.",
        "Lisboa é a capital de Portugal e é conhecida pelos seus bairros antigos e pelo fado.",
    ),
]


# --- planting defects into real Alpaca rows: kind -> (check that must find it, planter) ---------


def _cut_mid_word(text: str, rng: random.Random) -> str:
    pos = int(len(text) * rng.uniform(0.4, 0.8))
    while pos < len(text) - 1 and not (text[pos - 1].isalnum() and text[pos].isalnum()):
        pos += 1
    return text[:pos]


REFUSALS = [
    "As an AI language model, I cannot browse the internet, but ",
    "I'm sorry, but I cannot help with that. ",
    "I am unable to provide personal opinions. However, ",
    "As a language model, I don't have personal experiences. ",
    "I apologize, but I can't access that information. ",
]
MEDIA = ["<Picture Attached>", "photo.jpg", "<image>", "[image attached]", "https://www.bbc.co.uk/news/world-55555555"]
PLACEHOLDERS = ["<No Output>", "<nooutput>", "N/A", "Not applicable", "No output"]
MARKERS = ["<noinput>", "No input", "noinput", "<no input>", "No input."]
MERGED = "\n##\n{n}. Instruction: Name three primary colours.\n{n}. Input: <noinput>\n{n}. Output: Red, blue and yellow."


def plant(kind: str, row: dict[str, str], rng: random.Random, i: int) -> dict[str, str]:
    """Return ``row`` with one defect of ``kind``; ``i`` varies the planted value."""
    row = dict(row)
    out = row["output"]
    if kind == "mojibake":
        row["output"] = (out + " It’s “simple”.").encode("utf-8").decode("cp1252", errors="replace")
    elif kind == "control_chars":
        row["output"] = out[: len(out) // 2] + ["\x00", "\x1b[0m", "\x08", "\x07", "\ufffd"][i % 5] + out[len(out) // 2 :]
    elif kind == "markup":
        row["output"] = [
            "<p>" + out + "</p>",
            out + "<br>",
            out.replace(" ", "&nbsp;", 1) + " &nbsp;",
            "<div>" + out + "</div>",
            "<b>" + out + "</b>",
        ][i % 5]
    elif kind == "escape_chars":
        row["output"] = out.replace("\n", "\\n") if "\n" in out else out + "\\n\\nHope this helps."
    elif kind == "empty_answer":
        row["output"] = [".", "-", "...", " - ", "?"][i % 5]
    elif kind == "cut_off":
        row["output"] = _cut_mid_word(out, rng)
    elif kind == "refusal":
        row["output"] = REFUSALS[i % len(REFUSALS)] + out[0].lower() + out[1:]
    elif kind == "missing_input":
        row["input"] = ""
    elif kind == "unseen_input":
        row["input"] = MEDIA[i % len(MEDIA)]
    elif kind == "placeholder_output":
        row["output"] = PLACEHOLDERS[i % len(PLACEHOLDERS)]
    elif kind == "empty_input_marker":
        row["input"] = MARKERS[i % len(MARKERS)]
    elif kind == "merged":
        row["output"] = out + MERGED.format(n=10 + i)
    elif kind == "code_missing":
        row["instruction"] = "Write a Python function that answers this: " + row["instruction"]
    elif kind == "email":
        row["output"] = (
            out
            + f" Write to {['anna', 'li.wei', 'j.smith', 'omar'][i % 4]}{i}@{['gmail.com', 'outlook.com', 'corp.de'][i % 3]} for details."
        )
    elif kind == "phone":
        row["output"] = out + [" Call +44 20 7946 0{:03d}.", " Call (415) 555-2{:03d} today.", " Tel. +49 30 901820{:02d}."][i % 3].format(
            i
        )
    elif kind == "card_number":
        row["output"] = out + f" Card number: {luhn_card(rng, ['4', '51', '37'][i % 3])}."
    elif kind == "iban":
        row["output"] = out + f" Pay to IBAN {gb_iban(rng)}."
    elif kind == "ip_address":
        row["output"] = out + [f" The server is at 81.2.69.{i + 10}.", f" Connect to 2a00:1450:4001:81{i % 10}::200e now."][i % 2]
    elif kind == "secret":
        row["output"] = out + f" Use key {token(rng, ['aws', 'github', 'openai', 'slack', 'jwt'][i % 5])} to log in."
    elif kind == "private_key":
        row["output"] = (
            out
            + "\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n-----END RSA PRIVATE KEY-----"
        )
    elif kind == "language":
        row["instruction"], row["output"] = FOREIGN[i % len(FOREIGN)]
        row["input"] = ""
    else:
        raise KeyError(kind)
    return row


EXPECTED = {
    "mojibake": "format.mojibake",
    "control_chars": "format.control_chars",
    "markup": "format.markup",
    "escape_chars": "format.escape_chars",
    "empty_answer": "lengths.empty_answer",
    "cut_off": "lengths.cut_off",
    "refusal": "content.refusal",
    "missing_input": "instruct.missing_input",
    "unseen_input": "instruct.unseen_input",
    "placeholder_output": "instruct.placeholder_output",
    "empty_input_marker": "instruct.empty_input_marker",
    "merged": "instruct.merged",
    "code_missing": "instruct.code_missing",
    "email": "pii.email",
    "phone": "pii.phone",
    "card_number": "pii.card_number",
    "iban": "pii.iban",
    "ip_address": "pii.ip_address",
    "secret": "secrets.token",
    "private_key": "secrets.private_key",
    "language": "language.mismatch",
}


def eligible(kind: str, row: dict[str, str]) -> bool:
    """Rows a defect can be planted into (a defect needs something to act on)."""
    import re

    if kind == "cut_off":
        return len(row["output"].split()) >= 25
    if kind == "missing_input":
        # the instruction points at an input it does not contain itself
        return (
            bool(row["input"].strip())
            and bool(re.search(r"\b(the following|the given|this|these)\b", row["instruction"], re.I))
            and not re.search(r"[:\"“\n]", row["instruction"])
        )
    if kind == "code_missing":
        return not re.search(r"[{};=]|\bdef\b|\breturn\b", row["output"])
    if kind == "markup" or kind == "escape_chars":
        return not re.search(r"html|code|program|function|script|tag", row["instruction"], re.I)
    return True


def flip_labels(emb: Any, y: Any, n_confusable: int, n_random: int, seed: int) -> tuple[Any, Any]:
    """Plant label errors: ``n_confusable`` rows moved to their nearest other class centroid (by
    embedding), ``n_random`` to a random other class. Returns (noisy class ids, flipped row ids;
    the first ``n_confusable`` are the confusable ones). Shared by the mislabel test and bench."""
    import numpy as np

    classes = int(y.max()) + 1
    centroids = np.stack([emb[y == k].mean(axis=0) for k in range(classes)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(y), n_confusable + n_random, replace=False)
    noisy = y.copy()
    sims = emb[pick[:n_confusable]] @ centroids.T
    sims[np.arange(n_confusable), y[pick[:n_confusable]]] = -np.inf
    noisy[pick[:n_confusable]] = sims.argmax(axis=1)
    for i in pick[n_confusable:]:
        noisy[i] = rng.choice([k for k in range(classes) if k != y[i]])
    return noisy, pick
