"""`tunerail select`: choose the base model on your own data, licence gated, before training.

Findings (stable codes):

| code | check | severity |
| --- | --- | --- |
| SEL001 | licence.non_commercial: CC-BY-NC, research-only, `other` named so | error (commercial project), else info |
| SEL002 | licence.unknown: no card, no licence, `other`, unclassifiable | error until `model.license_acknowledged` lists it |
| SEL003 | licence.conditional: Gemma, Llama, OpenRAIL, copyleft (the condition quoted) | warning |
| SEL004 | licence.acknowledged: an unknown licence reviewed in the config (recorded) | info |
| SEL020 | select.over_budget: the time/cost estimate exceeds `budget.max_hours` / `max_cost` | error (ineligible) |
| SEL021 | select.memory: LoRA training would not fit this machine's memory | error (ineligible) |
| SEL022 | select.truncation: over 5 % of training rows longer than `model.max_seq_length` | warning |
| SEL030 | select.bigger_not_better: a larger candidate is not significantly better | info |
| SEL031 | select.all_near_zero: every task score near zero; bits per byte decides | warning |
| SEL032 | select.none_eligible: no candidate passes the gates | error |
| SEL040 | select.language_declared: the card's languages exclude the data's | warning |
| SEL041 | select.language_bpb: bits per byte on non-English data far above the general suite's | warning |
| SEL050 | select.baselines: cheap classifiers on the same rows (warning when one beats the pick) | info/warning |
"""

from tunerail._callable import make_callable
from tunerail.select.recipe import CandidateResult, SelectResult, resolve_candidates, select

__all__ = ["CandidateResult", "SelectResult", "resolve_candidates", "select"]

make_callable(__name__, select)
