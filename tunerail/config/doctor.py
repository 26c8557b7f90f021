"""Sections ``doctor`` and ``split``: the data audit's thresholds and the grouped split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tunerail.config.base import did_you_mean, _Section
from tunerail.names import DOCTOR_CHECKS


class DoctorConfig(_Section):
    semantic: bool = Field(True, description="Run the embedding-based checks (semantic duplicates, outliers, mislabels).")
    near_duplicate_threshold: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Jaccard similarity of the rows' normalised word sets at or above which rows are near-duplicates (MinHash LSH finds candidates, exact Jaccard confirms).",
    )
    semantic_duplicate_threshold: float = Field(
        0.95, gt=0, le=1, description="Cosine similarity of MiniLM embeddings above which rows are paraphrases."
    )
    mislabel_margin: float = Field(
        0.4,
        gt=0,
        le=1,
        description=(
            "labels.likely_mislabeled flags a row when another label's out-of-fold probability exceeds the given "
            "label's by at least this much (0.4: the given label has at most 0.3), or is ten times as likely. Lower "
            "finds more wrong labels and flags more right ones: on Banking77 with 1.6 % planted errors "
            "(bench/doctor_mislabels.py) 0.4 flagged 3.7 % of rows and found 90 % of the errors, 0.3 4.5 % and 93 %, "
            "0.2 5.7 % and 94 %."
        ),
    )
    model_checks: bool = Field(
        False,
        description=(
            "Run the checks that read every row with a small language model (lengths.unfinished: answers cut at a word "
            "boundary that only meaning shows, 'William' of 'William Shakespeare'). Off by default: one forward pass of "
            "doctor.end_model for each answer ending on a letter or digit plus 300 reference rows, about 560 s per 1,000 rows "
            "scored on a busy 2-core CPU (bench/results/doctor_unseen_lm.md); scores are cached, so a re-run scores only changed rows."
        ),
    )
    end_model: str = Field(
        "bundled:smollm2",
        description="Chat model whose end-of-turn probability after each answer lengths.unfinished reads (a small one: it reads every row).",
    )
    unfinished_z: float = Field(
        -4.0,
        lt=0,
        description=(
            "lengths.unfinished flags an answer ending on a letter or digit whose log-probability of finishing there lies "
            "this many robust standard deviations (median, MAD) below the dataset's; lower flags fewer rows. Chosen on the "
            "development sets of bench/doctor_unseen.py (planted cuts the rules missed / clean rows flagged, on 80/200 Alpaca, "
            "24/160 E2E and 40/160 GSM8K train rows): at -4, 87.5 %/0.5 %, 87.5 %/1.3 % (real cuts) and 60 %/0 %; at -3, "
            "94 %/1.5 %, 96 %/1.3 % and 70 %/0 %."
        ),
    )
    min_rows_generation: int = Field(1000, ge=1, description="Warn below this many rows for generation tasks.")
    min_rows_per_class: int = Field(20, ge=1, description="Warn for classes with fewer rows (too few to learn or to test).")
    language: str | None = Field(None, description="Expected language (ISO 639-1); default: the dataset's dominant language.")
    mask_pii: bool = Field(False, description="With --fix, replace personal data and secrets with placeholders.")
    disabled_checks: list[str] = Field(default_factory=list, description="Checks to skip, by name or code; recorded in the report.")

    @field_validator("disabled_checks")
    @classmethod
    def _known_checks(cls, names: list[str]) -> list[str]:
        """A typo here would leave a check running that the user meant to skip (or the reverse)."""
        if names:
            known = set(DOCTOR_CHECKS) | set(DOCTOR_CHECKS.values())
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(
                    f"unknown check(s) {', '.join(map(repr, unknown))}{did_you_mean(unknown[0], known)}; "
                    "use a name or code from summary.checks_run in findings.json"
                )
        return names

    max_imbalance_ratio: float = Field(
        10.0, ge=1, description="Warn when the largest class has more than this many times the rows of the smallest."
    )
    boilerplate_min_rows: int = Field(5, ge=2, description="An answer (of at least 5 words) repeated in this many rows is boilerplate.")
    min_answer_chars: int = Field(
        2, ge=1, description="Answers with fewer non-space characters are reported as too short (generation tasks)."
    )
    min_language_chars: int = Field(
        30,
        ge=1,
        description=(
            "Rows with fewer letters, where identification is unreliable, are judged by the stricter short-row rule "
            "(script, short_language_confidence, the dataset's common words); at 30: no false alarm on Banking77."
        ),
    )
    language_confidence: float = Field(
        0.8, gt=0, le=1, description="Report a row in another language only when the identifier is at least this sure."
    )
    language_word_margin: float = Field(
        1.5,
        gt=0,
        description=(
            "A row the identifier is unsure of is in another language when its words are, on average, this much more "
            "frequent there (mean wordfreq Zipf difference; 1.5 = about 30x). Chosen on tests/data/short_foreign_qa.tsv "
            "(foreign pairs 1.2-4.5, English Alpaca and Banking77 rows at most 1.1)."
        ),
    )
    short_language_confidence: float = Field(
        0.5,
        gt=0,
        le=1,
        description=(
            "Short rows (two words or more, at most a third of them common in the dataset): report another language "
            "at this probability. At 0.5 (bench/doctor_language.py): 96-97 % of 196 short foreign queries caught (98.6 % "
            "of 70 held-out ones), 0 of Banking77's 2,749 and 3 of CLINC150's 6,802 short English rows flagged; at 0.8: 91-94 %, same false alarms."
        ),
    )
    phone_region: str = Field("US", description="Region assumed for phone numbers written without a country code (ISO 3166 alpha-2).")
    max_examples: int = Field(3, ge=0, description="Example rows shown per finding in report.html.")


class SplitConfig(_Section):
    train: float = Field(0.8, gt=0, lt=1, description="Share of rows for training.")
    validation: float = Field(0.1, gt=0, lt=1, description="Share for validation (early stopping, model selection). At least 0.1.")
    test: float = Field(0.1, gt=0, lt=1, description="Share for the frozen test set (the verdict). At least 0.1.")
    seed: int = Field(13, description="Seed: the same data and seed give the same split.")
    stratify: bool = Field(True, description="Keep class proportions in every split (classification).")
    semantic: bool | Literal["auto"] = Field(
        "auto",
        description=(
            "Also keep embedding paraphrase clusters in one split; auto = on below semantic_max_rows "
            "(costs one MiniLM pass, about 1 min per 10k rows on 2 CPU cores, cached)."
        ),
    )
    semantic_threshold: float = Field(
        0.95,
        gt=0,
        le=1,
        description=("Cosine similarity of MiniLM prompt embeddings at or above which two rows are paraphrases and stay together."),
    )
    semantic_max_rows: int = Field(
        200_000, ge=1, description="Above this many rows, auto skips paraphrase grouping (exact, 13-gram and MinHash still run)."
    )
    paraphrase_threshold: float | None = Field(
        0.5,
        gt=0,
        le=1,
        description=(
            "With semantic grouping, also keep each row with its nearest neighbour when their mean of embedding cosine "
            "and character n-gram cosine is at least this (rewordings with a typo or a synonym); null turns it off. "
            "Each row adds at most one edge, so groups stay small (measured in bench/split_leakage.py)."
        ),
    )

    @model_validator(mode="after")
    def _sums_to_one(self) -> "SplitConfig":
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1.0, found {total:.3f}")
        return self
