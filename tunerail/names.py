"""Names a user types in the config, beside the schema: guardrail switches and doctor check codes.

A leaf module (imports nothing from tunerail). ``tunerail.config`` validates ``train.guards`` and
``doctor.disabled_checks`` against these tables at load time, once, with did-you-mean; the
doctor registry refuses to register a check whose code and name are not listed here, and
tests/test_architecture.py checks the table and the registry hold exactly the same checks. So
the schema never imports a step, and each list of names is checked in one place.
"""

from __future__ import annotations

# Runtime guardrails (tunerail/train/guards.py); switch one off with ``train.guards: {name: false}``.
GUARDS: tuple[str, ...] = ("validation", "early_stopping", "divergence", "overfitting", "budget", "lint")

# Doctor checks, code -> dotted name (report order is code order). A new check adds its line here
# and registers with the same code and name: ``@register("DOC0xx", "group.name")``.
DOCTOR_CHECKS: dict[str, str] = {
    "DOC001": "format.unparseable",
    "DOC002": "format.missing_field",
    "DOC003": "format.wrong_type",
    "DOC004": "format.unknown_role",
    "DOC005": "format.no_assistant_turn",
    "DOC006": "format.mojibake",
    "DOC007": "format.control_chars",
    "DOC008": "format.markup",
    "DOC009": "format.escape_chars",
    "DOC010": "duplicates.exact",
    "DOC011": "format.encoding",
    "DOC015": "lengths.truncated",
    "DOC016": "lengths.empty_answer",
    "DOC017": "lengths.short_answer",
    "DOC018": "lengths.cut_off",
    "DOC019": "lengths.unfinished",
    "DOC020": "content.boilerplate",
    "DOC021": "content.refusal",
    "DOC025": "instruct.missing_input",
    "DOC026": "instruct.unseen_input",
    "DOC027": "instruct.placeholder_output",
    "DOC028": "instruct.empty_input_marker",
    "DOC029": "instruct.merged",
    "DOC030": "instruct.code_missing",
    "DOC035": "pii.email",
    "DOC036": "pii.phone",
    "DOC037": "pii.card_number",
    "DOC038": "pii.iban",
    "DOC039": "pii.ip_address",
    "DOC040": "secrets.token",
    "DOC041": "secrets.private_key",
    "DOC043": "language.mismatch",
    "DOC044": "language.distribution",
    "DOC045": "balance.imbalance",
    "DOC046": "balance.small_class",
    "DOC047": "size.too_small",
    "DOC048": "size.eval_split",
    "DOC049": "balance.single_class",
    "DOC050": "duplicates.near",
    "DOC051": "duplicates.semantic",
    "DOC052": "labels.conflict",
    "DOC053": "labels.conflict_paraphrase",
    "DOC060": "labels.likely_mislabeled",
    "DOC061": "content.outlier",
    "DOC070": "preference.empty",
    "DOC071": "preference.identical",
    "DOC072": "preference.contradiction",
    "DOC073": "preference.test_leak",
}
