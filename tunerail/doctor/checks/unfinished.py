"""``lengths.unfinished``: answers a small chat model does not expect to end where they do (opt-in, ``doctor.model_checks``).

The rules of ``lengths.cut_off`` read the form of an answer's end; a cut at a word boundary can
leave a form that looks finished ("William" of "William Shakespeare", "1. Apple" of a three-item
list, "SELECT id, name"). A chat model trained to stop puts its end-of-turn token after a
finished answer, or a full stop and then end-of-turn, and seldom either after such a cut
(``EndScore.finish`` in ``tunerail.doctor.end_scores``). That log-probability is judged against
the dataset's own answers (a robust z-score: median and MAD), so there is no absolute threshold:
terse labels and long essays each set their own norm.
"""

from __future__ import annotations

import random
import statistics

from tunerail.doctor.checks._common import answer_field, excerpt, found, is_generation
from tunerail.doctor.context import CheckContext
from tunerail.doctor.registry import register
from tunerail.findings import Finding, Severity
from tunerail.prompting import pick_template

MIN_ROWS = 50  # fewer answers give no stable median and MAD to judge one by
# The data's norm is read from this many rows (seeded sample) besides the rows judged: most prose answers close
# with a stop and are never judged, so scoring them all would cost much and change the median little.
REFERENCE_ROWS = 300


def robust_scale(values: list[float]) -> tuple[float, float]:
    """(median, 1.4826 x MAD): the centre and spread of a z-score a few extreme rows cannot drag (MAD floored at 0.1)."""
    centre = statistics.median(values)
    return centre, 1.4826 * max(statistics.median(abs(v - centre) for v in values), 0.1)


@register("DOC019", "lengths.unfinished", needs=("end_model",))
def unfinished(ctx: CheckContext) -> list[Finding]:
    """Answers that stop on a word where a chat model, given the prompt, almost never ends: cut at a word boundary.

    Anti-pattern: a cut that leaves a complete-looking line ("The author is William", a list of
    one item where three were asked for) teaches the model to stop mid-answer, and no rule on the
    answer's last characters sees it. Only answers ending on a letter or digit are judged (a
    closing stop or bracket is judged by ``lengths.cut_off``). Fix: complete or regenerate the
    answer, or drop the row; lower ``doctor.unfinished_z`` to flag fewer rows.
    """
    if not is_generation(ctx) or len(ctx.records) < MIN_ROWS:
        return []
    from tunerail.doctor.end_scores import cached_end_scores

    doc = ctx.config.doctor
    judged = [i for i, rec in enumerate(ctx.records) if rec.completion.rstrip()[-1:].isalnum()]
    reference = sorted(random.Random(0).sample(range(len(ctx.records)), min(REFERENCE_ROWS, len(ctx.records))))
    rows = sorted(set(judged) | set(reference))
    scored = cached_end_scores(doc.end_model, [ctx.records[i] for i in rows], pick_template(ctx.config), ctx.cache_dir)
    finish = {i: s.finish for i, s in zip(rows, scored)}
    centre, spread = robust_scale([finish[i] for i in reference])
    out = []
    for i in judged:
        rec, score = ctx.records[i], finish[i]
        z = (score - centre) / spread
        if z < doc.unfinished_z:
            out.append(
                found(
                    Severity.WARNING,
                    f"answer in field '{answer_field(rec, ctx)}' looks unfinished: {doc.end_model} gives it finishing here a log-probability "
                    f'of {score:.1f}, {-z:.1f} robust SDs below the data\'s answers: "…{excerpt(rec.completion, 60, tail=True)}"',
                    "complete or regenerate the answer, or drop the row",
                    rows=[rec.ref],
                    details={"finish_logprob": round(score, 2), "robust_z": round(z, 2)},
                )
            )
    return out
