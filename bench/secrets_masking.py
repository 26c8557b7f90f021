"""Secrets planted in rows: how many survive into each file tunerail writes, and how often the masker
fires on the bundled examples that hold none.

The planted set is ``tests/data/secrets.jsonl``: the positive test cases of detect-secrets' own plugin
tests (Apache-2.0) and gitleaks' literal rule test cases (MIT), see ``tests/data/secrets_README.md``,
each embedded in a sentence, plus a few prose/config password and AWS secret-key rows written for tunerail. Rebuild it from clones (bare or not)
of github.com/Yelp/detect-secrets and github.com/gitleaks/gitleaks (MIT) with
``python bench/secrets_masking.py build DETECT_SECRETS_CLONE GITLEAKS_CLONE``.

    python bench/secrets_masking.py            # writes bench/results/secrets.json and .md

Per output, a secret counts as masked when its value (raw, JSON- or HTML-escaped) is absent from
what tunerail wrote for its row (whole files where rows cannot be told apart: there each distinct value
counts once, and values that are plain words are left out): the doctor (findings.json, report.html examples through the
report's clipper, clean.jsonl with doctor.mask_pii), the leakage report (every planted row leaks
into a copy of itself, so every row is quoted), the serve traffic log and a review comment
(review.sqlite, read back raw). The doctor's detection rate is the share of planted rows with a
``secrets.*`` finding. False positives: rows of examples/*/ whose text the secret detectors change
(they hold no secrets), listed with what was masked.
"""

from __future__ import annotations

import sys

# This file is named like the stdlib's ``secrets`` (which tunerail uses): run as a script, its folder
# must not shadow it.
sys.path[:] = [p for p in sys.path if p != __file__.rsplit("/", 1)[0]]

import ast  # noqa: E402
import html  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FIXTURES = REPO / "tests" / "data" / "secrets.jsonl"
RESULTS = REPO / "bench" / "results"
TEMPLATES = (
    "Here is the line from my config, why does the deploy fail? {line}",
    "{line}",
    "Log excerpt follows:\n{line}\nCan you explain the error?",
    "My colleague pasted this in the ticket: {line} -- is it safe?",
)
# detect-secrets test file -> the kind its positive cases exercise
KINDS = {
    "artifactory": "Artifactory credentials",
    "aws_key": "AWS access key",
    "azure_storage_key": "Azure storage key",
    "basic_auth": "Basic-auth URL",
    "cloudant": "Cloudant credentials",
    "discord": "Discord bot token",
    "github_token": "GitHub token",
    "gitlab_token": "GitLab token",
    "high_entropy_strings": "High-entropy string",
    "ibm_cloud_iam": "IBM Cloud IAM key",
    "ibm_cos_hmac": "IBM COS HMAC secret",
    "jwt": "JSON web token",
    "keyword": "Keyword (password, api_key, secret...)",
    "mailchimp_key": "Mailchimp key",
    "npm": "npm token",
    "openai": "OpenAI key",
    "private_key": "Private key",
    "pypi_token": "PyPI token",
    "sendgrid": "SendGrid key",
    "slack": "Slack token",
    "softlayer": "SoftLayer credentials",
    "square_oauth": "Square OAuth secret",
    "stripe_key": "Stripe key",
    "telegram_token": "Telegram bot token",
    "twilio": "Twilio key",
}
# Written for tunerail: the shapes issue 25 names (prose, pwd=, passwd:, YAML/JSON/ini/env, AWS secret keys).
OWN = [
    ("my password is hunter2", "hunter2", "Password (prose)"),
    ("Hi, my password is Summer2024! and I still cannot log in", "Summer2024!", "Password (prose)"),
    ("The wifi passcode was 'Tr0ub4dor&3' last week", "Tr0ub4dor&3", "Password (prose)"),
    ("I changed my password to kX9#mP2$vL yesterday, now the app rejects it", "kX9#mP2$vL", "Password (prose)"),
    ("my new pin is 4921, please update it", "4921", "Password (prose)"),
    ("Our admin password is Adm1n_2023 for the staging box", "Adm1n_2023", "Password (prose)"),
    ("pwd=S3cr3tPa55", "S3cr3tPa55", "Password (config)"),
    ("login failed with user=bob pwd=Qw3rty!9 on the portal", "Qw3rty!9", "Password (config)"),
    ("passwd: n0t-so-s3cret", "n0t-so-s3cret", "Password (config)"),
    ("database:\n  user: app\n  password: hX7pL2qW9z", "hX7pL2qW9z", "Password (config)"),
    ('{"user": "app", "password": "J8d!ks92Lm"}', "J8d!ks92Lm", "Password (config)"),
    ("[db]\nhost = db1\npassword = Vb93kLs0q", "Vb93kLs0q", "Password (config)"),
    ("export DB_PASSWORD=p4ssW0rdEnv", "p4ssW0rdEnv", "Password (config)"),
    ("POSTGRES_PASSWORD=Zx81mnQ2w docker compose up", "Zx81mnQ2w", "Password (config)"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS secret access key",
    ),
    (
        "AWS_SECRET_ACCESS_KEY=je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        "AWS secret access key",
    ),
    (
        "my secret key is 9drTJvcXLB89EXAMPLELB8923FB892xMFI/K7MDENG and the id AKIAI44QH8DHBEXAMPLE",
        "9drTJvcXLB89EXAMPLELB8923FB892xMFI/K7MDENG",
        "AWS secret access key",
    ),
    (
        '"SecretAccessKey": "bPxRfiCYEXAMPLEKEYwJalrXUtnFEMI/K7MDENG"',
        "bPxRfiCYEXAMPLEKEYwJalrXUtnFEMI/K7MDENG",
        "AWS secret access key",
    ),
    ("clone https://deploy:gh0stR1der@git.internal.net/repo.git", "gh0stR1der", "Basic-auth URL"),
    ("DATABASE_URL=postgres://admin:pg-Pa55w0rd@10.0.0.5:5432/app", "pg-Pa55w0rd", "Basic-auth URL"),
]


# --- building the planted set ------------------------------------------------------------------


def _positive_lines(src: str) -> list[str]:
    """Strings of a detect-secrets test module's parametrize lists whose case is flagged (True, or a value)."""
    tree = ast.parse(src)
    names: dict[str, Any] = {"base64": __import__("base64"), "randint": __import__("random").randint}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            try:
                exec(compile(ast.Module([node], []), "<fixture>", "exec"), names)  # module constants (example secrets)
            except Exception:  # noqa: BLE001 - constants built from test helpers are skipped
                pass
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, (ast.List, ast.Tuple)) and node.elts):
            continue
        try:
            value = eval(compile(ast.Expression(node), "<fixture>", "eval"), names)  # noqa: S307 - a pinned test file
        except Exception:  # noqa: BLE001
            continue
        if all(isinstance(case, str) for case in value):  # a list of lines that all flag (slack_test)
            lines.extend(value)
            continue
        for case in value:
            if isinstance(case, tuple) and len(case) >= 2 and isinstance(case[0], str) and case[1] not in (False, None, 0):
                lines.append(case[0])
    return lines


def _plugin_values(module: str, line: str) -> set[str]:
    """What the detect-secrets plugin(s) of ``module`` read as the secret in ``line`` (no verification, no network)."""
    import importlib

    from detect_secrets.plugins import keyword
    from detect_secrets.plugins.base import BasePlugin

    mod = importlib.import_module(f"detect_secrets.plugins.{module}")
    values: set[str] = set()
    for cls in vars(mod).values():
        if not (isinstance(cls, type) and issubclass(cls, BasePlugin) and cls.__module__ == mod.__name__ and "secret_type" in vars(cls)):
            continue
        plugin = cls()
        if module == "keyword":
            tables = [
                keyword.CONFIG_DENYLIST_REGEX_TO_GROUP,
                keyword.GOLANG_DENYLIST_REGEX_TO_GROUP,
                keyword.COMMON_C_DENYLIST_REGEX_TO_GROUP,
            ]
            tables += [keyword.C_PLUS_PLUS_REGEX_TO_GROUP, keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP]
            values.update(v for t in tables for v in plugin.analyze_string(line, denylist_regex_to_group=t))
        elif module == "high_entropy_strings":
            values.update(v for v in plugin.analyze_string(line) if plugin.calculate_shannon_entropy(v) > plugin.entropy_limit)
        else:
            values.update(plugin.analyze_string(line))
    values = {v.strip().strip("=:\"'") for v in values}  # some plugins' matches carry their delimiters
    return {v for v in values if len(v) >= 4}


_GO_STRING = r'(`[^`]*`|"(?:[^"\\]|\\.)*")'


def _go_string(literal: str) -> str:
    return literal[1:-1] if literal[0] == "`" else ast.literal_eval(literal)


def _gitleaks_rows(clone: Path) -> list[dict[str, str]]:
    """Literal true positives of gitleaks' rules (``tps`` lines and ``GenerateSampleSecret`` calls with a
    literal secret); the value is what the rule's own regex and secretGroup capture (generated ones skipped)."""
    import re
    import tomllib

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(clone), *args], capture_output=True, text=True, check=True).stdout

    commit = git("rev-parse", "HEAD").strip()[:12]
    rules = {r["id"]: r for r in tomllib.loads(git("show", "HEAD:config/gitleaks.toml"))["rules"] if "regex" in r}
    out = []
    for path in git("ls-tree", "-r", "--name-only", "HEAD", "cmd/generate/config/rules/").split():
        if not path.endswith(".go"):
            continue
        for chunk in re.split(r"\nfunc ", git("show", f"HEAD:{path}")):
            ids = re.findall(r'RuleID:\s*"([^"]+)"', chunk)
            if len(ids) != 1 or ids[0] not in rules or "tps" not in chunk:
                continue
            rule = rules[ids[0]]
            # RE2 allows (?i) mid-pattern, Python does not: apply it to the whole (these lines are known positives)
            regex = re.compile(rule["regex"].replace("(?i)", "").replace("\\z", "\\Z"), re.I if "(?i)" in rule["regex"] else 0)
            start = chunk.find("tps")
            stop = chunk.find("fps", start)
            region = chunk[start : stop if stop > 0 else len(chunk)]
            lines = []
            for m in re.finditer(r"^\s*" + _GO_STRING + r"\s*,?\s*(?://.*)?$", region, re.M):
                lines.append(_go_string(m.group(1)))
            for m in re.finditer(r"GenerateSampleSecret\(\s*" + _GO_STRING + r"\s*,\s*" + _GO_STRING + r"\s*\)", chunk):
                lines.append(f'{_go_string(m.group(1))}_api_token = "{_go_string(m.group(2))}"')  # utils.GenerateSampleSecret's shape
            for line in lines:
                m = regex.search(line)
                group = rule.get("secretGroup") or (1 if regex.groups else 0)
                value = m.group(group) if m and group <= regex.groups else None
                if value and len(value) >= 8:
                    kind = "gitleaks: " + ids[0].split("-")[0]
                    out.append({"line": line, "secret": value, "kind": kind, "source": f"gitleaks@{commit}:{path} ({ids[0]})"})
    return out


def build(checkout: Path, gitleaks: Path | None = None) -> list[dict[str, Any]]:
    """The planted set from a detect-secrets clone: each flagged test line, with its value as that test's plugin reads it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, check=True).stdout

    commit = git("rev-parse", "HEAD").strip()
    rows, seen = [], set()
    for path in sorted(Path(p) for p in git("ls-tree", "--name-only", "HEAD", "tests/plugins/").split()):
        name = path.name.removesuffix("_test.py")
        kind = KINDS.get(name)
        if kind is None:
            continue
        module = {"aws_key": "aws", "mailchimp_key": "mailchimp", "stripe_key": "stripe", "telegram_token": "telegram_token"}.get(
            name, name
        )
        for line in _positive_lines(git("show", f"HEAD:{path}")):
            values = _plugin_values(module, line)
            if not values or line in seen or len(line) > 2000:
                continue
            seen.add(line)
            template = TEMPLATES[len(rows) % len(TEMPLATES)]
            source = f"detect-secrets@{commit[:12]}:{path}"
            rows.append({"text": template.format(line=line), "secret": max(values, key=len), "kind": kind, "source": source})
    if gitleaks is not None:
        for row in _gitleaks_rows(gitleaks):
            if row["line"] not in seen:
                seen.add(row["line"])
                template = TEMPLATES[len(rows) % len(TEMPLATES)]
                rows.append(
                    {"text": template.format(line=row["line"]), "secret": row["secret"], "kind": row["kind"], "source": row["source"]}
                )
    for line, secret, kind in OWN:
        rows.append({"text": line, "secret": secret, "kind": kind, "source": "tunerail"})
    return rows


# --- measuring ---------------------------------------------------------------------------------


def _forms(secret: str) -> list[str]:
    """The value as it could appear in a file: raw, JSON-escaped (both ASCII modes), HTML-escaped."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
        html.escape(secret, quote=False),
    }
    return [f for f in forms if f]


def _common_word(secret: str) -> bool:
    """A value such as ``password`` also occurs in masked text ("my password is [SECRET]"): a search of a
    whole file cannot tell a leak from it, so whole-file outputs leave such rows out (counted per row elsewhere)."""
    return secret.isalpha() and (secret.islower() or secret.istitle())


def _skip_in_file(rows: list[dict[str, Any]], i: int) -> bool:
    """Whole-file outputs count each distinct value once (several rows share one fixture secret) and no plain word."""
    value = rows[i]["secret"]
    return _common_word(value) or any(r["secret"] == value for r in rows[:i])


def leaked(secret: str, text: str) -> bool:
    return any(f in text for f in _forms(secret))


def _doctor(rows: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    from tunerail.config import TunerailConfig
    from tunerail.doctor import doctor
    from tunerail.doctor.report import _clip

    data = work / "planted.jsonl"
    data.write_text(
        "".join(json.dumps({"instruction": f"Question {i}: what went wrong here?", "output": r["text"]}) + "\n" for i, r in enumerate(rows))
    )
    cfg = TunerailConfig(doctor={"mask_pii": True})
    result = doctor(data, cfg, out_dir=work / "doctor", fix=True, semantic=False)
    flagged = {ref.index for f in result.findings if f.check.startswith("secrets.") for ref in f.rows}
    findings_json = (work / "doctor" / "findings.json").read_text()
    report_html = (work / "doctor" / "report.html").read_text()
    clean = {json.loads(line)["_tunerail"]["index"]: line for line in (work / "doctor" / "clean.jsonl").read_text().splitlines()}
    return {
        "doctor finds it (secrets.* finding on its row)": [i in flagged for i in range(len(rows))],
        "doctor findings.json": [None if _skip_in_file(rows, i) else not leaked(r["secret"], findings_json) for i, r in enumerate(rows)],
        "doctor report.html": [None if _skip_in_file(rows, i) else not leaked(r["secret"], report_html) for i, r in enumerate(rows)],
        "doctor report examples (every row clipped)": [not leaked(r["secret"], _clip(r["text"])) for r in rows],
        "doctor clean.jsonl (mask_pii)": [not leaked(r["secret"], clean[i]) if i in clean else None for i, r in enumerate(rows)],
    }


def _leakage(rows: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    from tunerail.data.records import Record, RowRef
    from tunerail.split.leakage import leakage

    def recs(name: str) -> list[Record]:
        return [Record(RowRef(i, i + 1, name), "text_label", [], r["text"], "x", "x") for i, r in enumerate(rows)]

    leakage({"train": recs("train.jsonl"), "test": recs("test.jsonl")}, out_dir=work / "leakage", methods=("exact",), semantic=False)
    quoted: dict[int, str] = defaultdict(str)  # row -> every text the report quotes for its leak
    for f in json.loads((work / "leakage" / "leakage.json").read_text())["findings"]:
        for ref in f["rows"]:
            quoted[ref["index"]] += "\n".join(f["details"]["texts"])
    page = (work / "leakage" / "leakage.html").read_text()
    return {
        "leakage.json (the row's quoted texts)": [not leaked(r["secret"], quoted[i]) if i in quoted else None for i, r in enumerate(rows)],
        "leakage.html": [None if _skip_in_file(rows, i) else not leaked(r["secret"], page) for i, r in enumerate(rows)],
    }


def _traffic(rows: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    from tunerail.serve.traffic import TrafficLog

    log = TrafficLog(work / "traffic" / "traffic.jsonl", fsync=False)
    out = []
    for r in rows:
        line = log.encode({"prompt": r["text"], "output": f"You wrote: {r['text']}"}).decode()
        out.append(not leaked(r["secret"], line))
    log.close()
    return {"serve traffic log": out}


def _review(rows: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    from tunerail.review.store import ReviewStore, Unit

    store = ReviewStore(work / "review" / "review.sqlite")
    units = [Unit(f"u{i:05d}", i, 0, "base", "tuned") for i in range(len(rows))]
    store.create(material_hash="0" * 64, units=units, annotators=["ann"], overlap=0.0, seed=0, pairs=[("base", "tuned")])
    for u, r in zip(units, rows):
        store.cast("ann", u.unit, preference="tie", rubric={}, comment=r["text"], skip_reason=None)
    stored = {v["unit"]: v["comment"] for v in store.votes()}
    raw = b"".join(p.read_bytes() for p in (work / "review").glob("review.sqlite*")).decode("utf-8", "replace")
    return {
        "review.sqlite comment (the row's)": [not leaked(r["secret"], stored[u.unit]) for u, r in zip(units, rows)],
        "review.sqlite (raw bytes, -wal included)": [
            None if _skip_in_file(rows, i) else not leaked(r["secret"], raw) for i, r in enumerate(rows)
        ],
    }


def example_texts() -> dict[str, list[str]]:
    """Every text of the bundled examples (they hold no secrets)."""
    import csv

    with open(REPO / "examples" / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        banking = [row["text"] for row in csv.DictReader(handle)]
    posts = [json.loads(line)["text"] for line in (REPO / "examples" / "wnut17" / "posts.jsonl").read_text().splitlines()]
    return {"examples/banking77/train.csv": banking, "examples/wnut17/posts.jsonl": posts}


def shared_texts() -> dict[str, list[str]]:
    """Public datasets beside the repo (``../shared/data``, read only here): more text with no planted secret,
    Alpaca's code and config answers included."""
    root = next((p for p in (REPO.parent / "shared" / "data", Path("/work/shared/data")) if p.is_dir()), None)
    if root is None:
        return {}
    alpaca = json.loads((root / "instruct" / "alpaca_5000.json").read_text(encoding="utf-8"))
    dialogs = [json.loads(line) for line in (root / "summarization" / "dialogsum" / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    clinc = json.loads((root / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    return {
        "shared instruct/alpaca_5000.json (instruction + input + output)": ["\n".join(r.values()) for r in alpaca],
        "shared summarization/dialogsum/test.jsonl (dialogue)": [d["dialogue"] for d in dialogs],
        "shared clinc150 test + oos_test": [t for t, _ in clinc["test"] + clinc["oos_test"]],
    }


def false_positives() -> dict[str, Any]:
    """Rows of the bundled examples that the secret detectors change, and the cost of masking them all."""
    from tunerail.pii import scan
    from tunerail.report.redact import redact_text

    out: dict[str, Any] = {}
    for name, texts in {**example_texts(), **shared_texts()}.items():
        hits = []
        for t in texts:
            spans = [t[m.start : m.end] for m in scan(t) if m.kind in ("secret", "private_key")]
            if spans:
                hits.append({"text": t[:160], "masked": spans})
        start = time.perf_counter()
        for t in texts:
            redact_text(t)
        redact_s = time.perf_counter() - start
        out[name] = {"rows": len(texts), "rows_with_a_secret_masked": len(hits), "rate": len(hits) / len(texts), "examples": hits[:20]}
        out[name]["redact_ms_per_row"] = round(1000 * redact_s / len(texts), 3)
    return out


def main(argv: list[str]) -> dict[str, Any]:
    if argv[:1] == ["build"]:
        rows = build(Path(argv[1]), Path(argv[2]) if len(argv) > 2 else None)
        FIXTURES.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"{len(rows)} rows, {len({r['kind'] for r in rows})} kinds, {len({r['secret'] for r in rows})} distinct values -> {FIXTURES}")
        return {}
    rows = [json.loads(line) for line in FIXTURES.read_text(encoding="utf-8").splitlines()]
    work = Path(tempfile.mkdtemp(prefix="bench-secrets."))
    outputs: dict[str, list[bool | None]] = {}
    from tunerail.report.redact import redact_text

    outputs["redact (every report text)"] = [not leaked(r["secret"], redact_text(r["text"])) for r in rows]
    for step in (_doctor, _leakage, _traffic, _review):
        start = time.perf_counter()
        outputs.update(step(rows, work))
        print(f"{step.__name__[1:]}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    result = {
        "fixture": {"rows": len(rows), "kinds": len({r["kind"] for r in rows}), "distinct_values": len({r["secret"] for r in rows})},
        "per_output": {name: _share(vals) for name, vals in outputs.items()},
        "per_kind": _per_kind(rows, outputs),
        "missed": {name: [rows[i]["text"][:160] for i, v in enumerate(vals) if v is False][:15] for name, vals in outputs.items()},
        "false_positives": false_positives(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "secrets.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / "secrets.md").write_text(_markdown(result))
    print(_markdown(result))
    return result


def _share(vals: list[bool | None]) -> dict[str, Any]:
    known = [v for v in vals if v is not None]
    return {"masked": sum(known), "of": len(known), "share": round(sum(known) / len(known), 4) if known else None}


def _per_kind(rows: list[dict[str, Any]], outputs: dict[str, list[bool | None]]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = defaultdict(dict)
    for name, vals in outputs.items():
        by_kind: dict[str, list[bool | None]] = defaultdict(list)
        for r, v in zip(rows, vals):
            by_kind[r["kind"]].append(v)
        for kind, kv in by_kind.items():
            table[kind][name] = _share(kv)["share"]
    counts = Counter(r["kind"] for r in rows)
    return {kind: {"rows": counts[kind], **table[kind]} for kind in sorted(table)}


def _markdown(result: dict[str, Any]) -> str:
    fx = result["fixture"]
    lines = [
        "# Planted secrets: share masked in every output",
        "",
        f"Command: `python bench/secrets_masking.py`. Planted set: `tests/data/secrets.jsonl`, {fx['rows']} rows, "
        f"{fx['kinds']} kinds, {fx['distinct_values']} distinct secret values (detect-secrets' plugin test cases, Apache-2.0; "
        "gitleaks' literal rule test cases, MIT; 20 tunerail-written prose/config passwords and AWS secret keys). "
        "Goal: >= 95 % in every output. Whole-file rows count each distinct value once and leave out plain-word values.",
        "",
        "| output | masked | share |",
        "|---|---:|---:|",
    ]
    for name, s in result["per_output"].items():
        lines.append(f"| {name} | {s['masked']} / {s['of']} | {100 * s['share']:.1f} % |")
    names = list(result["per_output"])
    lines += [
        "",
        "## Per kind (share masked per output, in the order above)",
        "",
        "| kind | rows | " + " | ".join(f"o{i + 1}" for i in range(len(names))) + " |",
    ]
    lines.append("|---|---:|" + "---:|" * len(names))
    for kind, row in result["per_kind"].items():
        cells = " | ".join("-" if row.get(n) is None else f"{100 * row[n]:.0f}" for n in names)
        lines.append(f"| {kind} | {row['rows']} | {cells} |")
    lines += [
        "",
        "Columns: " + "; ".join(f"o{i + 1} = {n}" for i, n in enumerate(names)),
        "",
        "## False positives on the bundled examples and the shared public sets (no planted secrets)",
        "",
    ]
    for name, fp in result["false_positives"].items():
        lines.append(
            f"- {name}: {fp['rows_with_a_secret_masked']} of {fp['rows']} rows had text masked as a secret "
            f"({100 * fp['rate']:.2f} %); redact_text {fp['redact_ms_per_row']} ms per row"
        )
        for ex in fp["examples"][:5]:
            lines.append(f"  - masked {ex['masked']!r} in {ex['text']!r}")
    missed = {k: v for k, v in result["missed"].items() if v}
    if missed:
        lines += ["", "## Missed (first rows per output)", ""]
        for name, texts in missed.items():
            lines.append(f"- {name}: " + "; ".join(repr(t[:90]) for t in texts[:6]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(sys.argv[1:])
