"""Sections ``prompts``, ``eval`` and ``review``: the prompt variants, the evaluation and the human review."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tunerail.config.base import _Section


class JudgeConfig(_Section):
    enabled: bool = Field(False, description="Score outputs with an LLM judge.")
    endpoint: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://localhost:8000/v1.")
    model: str | None = Field(None, description="Judge model name at the endpoint, or a local HF model path.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the key (never logged).")
    rubric: dict[str, str] = Field(
        default_factory=lambda: {
            "correctness": "Is the answer factually and logically correct given the input?",
            "relevance": "Does the answer address the request?",
            "tone": "Is the tone appropriate for a customer-facing assistant?",
        },
        description="Criterion name -> question the judge scores 1-5.",
    )
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for one judge reply.")
    max_pairs: int = Field(50, ge=1, description="Test rows judged (each costs two calls: both answer orders).")


class PromptTemplate(_Section):
    version: str = Field("v1", description="Version label, recorded with every run and verdict.")
    system: str | None = Field(None, description="System message; set one, or the chat template may insert a default.")
    template: str = Field("{prompt}", description="User turn; `{prompt}` is replaced by the record's prompt.")

    @field_validator("template")
    @classmethod
    def _has_prompt(cls, template: str) -> str:
        if "{prompt}" not in template:
            raise ValueError("the template has no {prompt}: every row would get the same user turn; write e.g. 'Classify: {prompt}'")
        return template


class HostedModel(_Section):
    """One prompted model behind an OpenAI-compatible endpoint, compared as an alternative (``eval.hosted``)."""

    name: str = Field(
        ..., pattern=r"^[A-Za-z0-9_.-]+$", description="Short id for the report and the cache (letters, digits, _ . -), e.g. gpt4o."
    )
    base_url: str = Field(
        ..., description="OpenAI-compatible base URL (ends in /v1), e.g. https://api.openai.com/v1 or a `tunerail serve`."
    )
    model: str = Field(..., description="Model name the endpoint serves, e.g. gpt-4o-mini.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key (read at call time; never logged, cached or reported); None sends none."
    )
    k_shot: int | None = Field(
        None,
        ge=0,
        le=8,
        description="Training examples in the prompt; None: the same examples as the base model's k-shot row (eval.few_shot).",
    )
    max_tokens: int | None = Field(None, ge=1, description="Answer length cap; None: eval.max_new_tokens.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature; 0 (greedy) so a re-run asks the same question.")
    concurrency: int = Field(
        4, ge=1, le=64, description="Requests in flight at once (hosted APIs rate-limit; raise it for your own server)."
    )
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for one reply.")
    retries: int = Field(2, ge=0, le=10, description="Retries per request on timeouts, 429 and 5xx (the openai client's backoff).")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        """A URL without its scheme would fail only at eval time, after training."""
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http(s) URL; write e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1")
        return url


class EvalConfig(_Section):
    max_new_tokens: int = Field(64, ge=1, description="Generation length cap.")
    batch_size: int = Field(16, ge=1, description="Rows per generation batch.")
    bootstrap: int = Field(1000, ge=100, description="Bootstrap resamples for confidence intervals.")
    forgetting: bool = Field(True, description="Run the general-capability suite on base and tuned model.")
    label_ranking: bool = Field(
        False,
        description=(
            "Classification: also rank every label by log-likelihood (2-3x the cost of generation; never answers outside the label set)."
        ),
    )
    length_normalize: bool = Field(False, description="Label ranking by mean per-token log-likelihood instead of the sum.")
    perplexity: bool = Field(
        True,
        description=(
            "Also report the reference answers' perplexity under the base and tuned model (one forward pass "
            "per test row each; always on when criteria.metric is perplexity)."
        ),
    )
    few_shot: int | None = Field(
        None,
        ge=0,
        le=8,
        description=(
            "Also evaluate the base model with this many training examples in the prompt (one per label first); "
            "needs the training split (`tunerail run` passes it; `tunerail eval --train`). None: 3 where the base "
            "model k-shot is a registered alternative (extraction without spans, generation, chat), else 0; 0: off."
        ),
    )
    num_beams: int = Field(
        1,
        ge=1,
        le=16,
        description=(
            "Beam search width for every model the eval generates with (tuned, base zero- and k-shot), as transformers' "
            "generate(num_beams=...): 1 is greedy; 4-8 find likelier, more typical answers (CommonGen ROUGE-L 0.404 "
            "greedy, 0.429 with 4 beams) at ~2.5-5x the generation time. Serve with the same width (`tunerail serve` reads "
            "it from the run). Classification's label trie and span copy stay greedy."
        ),
    )
    decoding: Literal["constrained", "free", "both"] = Field(
        "both",
        description=(
            "How the tuned model answers. constrained: greedy decoding restricted per task - classification: to the "
            "label set's token sequences (a trie), so no answer falls outside it; extraction whose values are spans of "
            "the input (most training values occur verbatim in their prompt): span copy, every JSON string value stays "
            "a span of its prompt starting and ending at word boundaries, keys free, JSON punctuation, numbers and "
            "literals between strings (same forward passes as free generation); keywords-to-text generation (90 % of "
            "prompts a list of 2-12 words, as CommonGen's concepts) with num_beams > 1: of the beam's candidates, the one "
            "that uses the most keywords in some word form, for every LLM row alike (no extra forward pass); other tasks: "
            "free. free: unconstrained generation only. both (default): the verdict uses constrained, free generation "
            "is reported beside it with the paired difference (one more generation pass on the test rows)."
        ),
    )
    baselines: bool = Field(
        True,
        description=(
            "Fit cheap baselines on train + validation and score them on the test set (classification: TF-IDF "
            "and MiniLM embeddings + logistic regression; generation/extraction: nearest training prompt's "
            "answer). Seconds on 2 CPU cores, cached; the tuned model must beat them by the CI."
        ),
    )
    alternatives_budget_share: float | None = Field(
        0.10,
        gt=0,
        le=1,
        description=(
            "Share of the eval step's estimated time the local alternatives may spend together (CPU seconds); "
            "null: no cap. One the cap cuts before it converged cannot count as beaten (EVL054)."
        ),
    )
    alternatives: list[str] = Field(
        default_factory=list,
        description=(
            "Opt-in alternatives fitted beside the ones registered for the answer shape (with eval.baselines); "
            "today minilm_tokens: a MiniLM token classifier for span extraction, slower than CRF + spaCy together."
        ),
    )
    hosted: list[HostedModel] = Field(
        default_factory=list,
        description=(
            'Prompted models behind OpenAI-compatible endpoints, compared as alternatives on every task ("does a hosted '
            'model already do it?"): same prompt and k-shot examples, scored and bootstrapped like the LLM rows, cached.'
        ),
    )
    prompt_version: str | None = Field(None, description="Prompt variant for the verdict; default: the first in `prompts`.")

    @field_validator("hosted")
    @classmethod
    def _unique_hosted(cls, models: list[HostedModel]) -> list[HostedModel]:
        """Two entries with one name would share a report row and a cache key."""
        names = [m.name for m in models]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"hosted model name(s) used twice: {', '.join(twice)}; give each entry its own name")
        return models

    review_samples: int = Field(20, ge=0, description="Side-by-side examples sampled into the report and review export.")
    cache: bool = Field(True, description="Cache model outputs by (model, data, prompt) hash under ~/.cache/tunerail/eval.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig)


class RubricItem(_Section):
    name: str = Field(..., description="Short name, e.g. correctness.")
    description: str = Field("", description="The question the reviewer answers.")
    scale: int = Field(5, ge=2, le=10, description="Scores 1..scale.")


class ReviewConfig(_Section):
    rubric: list[RubricItem] = Field(
        default_factory=lambda: [
            RubricItem(name="correctness", description="Is the answer correct for the input?"),
            RubricItem(name="relevance", description="Does the answer address the request?"),
            RubricItem(name="tone", description="Is the tone right for the audience?"),
        ],
        description="Questions each reviewer scores per item, besides the A/B preference.",
    )
    overlap: float = Field(
        0.2,
        ge=0,
        le=1,
        description=(
            "Share of items given to two annotators, for agreement (0.2: enough doubly rated items for alpha "
            "without halving coverage); the rest go to one annotator each."
        ),
    )
    seed: int = Field(13, description="Seed for item assignment and the A/B order.")
    annotators: list[str] = Field(
        default_factory=list,
        description=("Annotator names for `tunerail review serve` (one link each); --annotators overrides; none = one 'reviewer'."),
    )
    pairs: list[str] = Field(
        default_factory=lambda: ["base:tuned"],
        description=("Systems compared, as first:second (base, tuned, base_few_shot when eval.few_shot is set); --pairs overrides."),
    )

    @model_validator(mode="after")
    def _unique_rubric(self) -> "ReviewConfig":
        names = [q.name for q in self.rubric]
        if len(set(names)) != len(names):
            raise ValueError(f"review.rubric names must be unique, found {names}")
        return self
