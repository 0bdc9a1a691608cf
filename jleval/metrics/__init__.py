"""Metrics: one registry, each metric a small function with its own signature string.

A metric function receives post-processed predictions and golds (and the inputs, for metrics like COMET that
need the source) and returns a MetricResult: the task-level score aggregated the way upstream does, the
per-sample values where the score is a mean of them (used for bootstrap CIs and paired comparisons), and a
sacrebleu-style signature naming every setting that changes the number.

Register a metric with:

    @register("exact_match")
    def exact_match(preds, golds, *, inputs=None, profile) -> MetricResult: ...

Metric modules are imported lazily by `get_metric(name)` (see _MODULES) so that importing jleval.metrics is
cheap and optional dependencies (COMET, BERTScore) are only touched when asked for.

The front door for callers holding raw model text is `compute(metric, generations, golds, profile=...)`: it
applies the profile's post-processing (jleval.metrics.postprocess) and returns the task-level score.
Scales are upstream's: exact_match, char_f1, set_f1, code_exec, pylint_check, comet_wmt22, bert_score and
rouge2_scaling in 0–1; pearson/spearman in -1–1; bleu_ja/bleu_en and rouge1/rouge2/rougeLsum in 0–100.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from jleval.metrics.postprocess import DEFAULT_PROFILE, PROFILES  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class MetricResult:
    score: float | None  # None = not computed (see `reason`); never a silent 0
    per_sample: tuple[float, ...] | None  # per-sample values when `score` is their mean, else None
    signature: str
    reason: str | None = None
    #: A caveat about a computed score (e.g. a correlation undefined on constant predictions, reported as 0);
    #: scoring adds it to the run's warnings.
    note: str | None = None
    #: For scores that are not a plain mean of `per_sample` (pearson, spearman): maps a (B, n) array of sample
    #: indices (bootstrap replicates) to the B scores recomputed on them. None when `per_sample` suffices.
    resample: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)


class MetricFn(Protocol):
    def __call__(self, preds: Sequence[str], golds: Sequence[str], *, inputs: Sequence[str] | None = None,
                 profile: str = "llm-jp-eval-1.4.1") -> MetricResult: ...


_REGISTRY: dict[str, MetricFn] = {}

#: metric name -> module (under jleval.metrics) that registers it; extended by each metric module's author.
_MODULES: dict[str, str] = {
    "code_exec": "code",
    "pylint_check": "code",
    "exact_match": "text",
    "char_f1": "text",
    "set_f1": "text",
    "pearson": "corr",
    "spearman": "corr",
    "bleu_ja": "bleu",
    "bleu_en": "bleu",
    "rouge1": "rouge",
    "rouge2": "rouge",
    "rougeLsum": "rouge",
    "rouge2_scaling": "rouge",
    "mathematical_equivalence": "mathequiv",
    "comet_wmt22": "neural",
    "bert_score_ja_f1": "neural",
    "bert_score_en_f1": "neural",
}

#: The scale each metric's task-level score is reported on (upstream's scales).
SCALES: dict[str, str] = {
    "exact_match": "0-1", "char_f1": "0-1", "set_f1": "0-1", "code_exec": "0-1", "pylint_check": "0-1",
    "pearson": "-1-1", "spearman": "-1-1", "bleu_ja": "0-100", "bleu_en": "0-100", "rouge1": "0-100",
    "rouge2": "0-100", "rougeLsum": "0-100", "rouge2_scaling": "0-1", "mathematical_equivalence": "0-1",
    "comet_wmt22": "0-1", "bert_score_ja_f1": "0-1", "bert_score_en_f1": "0-1",
}


def register(name: str) -> Callable[[MetricFn], MetricFn]:
    def deco(fn: MetricFn) -> MetricFn:
        _REGISTRY[name] = fn
        return fn

    return deco


def get_metric(name: str) -> MetricFn:
    if name not in _REGISTRY and name in _MODULES:
        importlib.import_module(f"jleval.metrics.{_MODULES[name]}")
    if name not in _REGISTRY:
        from jleval.errors import UsageError

        raise UsageError(f"unknown metric {name!r}", f"known metrics: {', '.join(sorted(_MODULES))}")
    return _REGISTRY[name]


def compute_result(metric: str, generations: Sequence[str], golds: Sequence[str],
                   profile: str = DEFAULT_PROFILE, inputs: Sequence[str] | None = None,
                   pattern: str | None = None) -> MetricResult:
    """Post-process raw `generations` and `golds` for `profile`, then score them with `metric`.

    `pattern` is the task's answer-extraction regex (used by the `jleval` profile only; see
    postprocess.answer_pattern)."""
    from jleval.metrics.postprocess import normalize_gold, postprocess

    if len(generations) != len(golds):
        raise ValueError(f"{len(generations)} generations but {len(golds)} golds")
    fn = get_metric(metric)
    preds = [postprocess(g, profile, pattern) for g in generations]
    refs = [normalize_gold(g, profile) for g in golds]
    return fn(preds, refs, inputs=inputs, profile=profile)


def compute(metric: str, generations: Sequence[str], golds: Sequence[str], profile: str = DEFAULT_PROFILE,
            inputs: Sequence[str] | None = None, pattern: str | None = None) -> float:
    """The task-level score of raw `generations` against `golds`, as upstream aggregates it.

    Raises jleval.errors.ScoreError when the metric cannot be computed here (an optional dependency or model
    is missing, too few samples for a correlation): the message gives the reason. Never returns a stand-in 0.
    """
    res = compute_result(metric, generations, golds, profile, inputs, pattern)
    if res.score is None:
        from jleval.errors import ScoreError

        raise ScoreError(f"{metric} not computed: {res.reason}")
    return res.score


def versions_signature(*dists: str) -> str:
    """`name:version` pairs for the libraries behind a number, plus jleval's own version (always last)."""
    import importlib.metadata

    import jleval

    parts = []
    for d in dists:
        try:
            parts.append(f"{d}:{importlib.metadata.version(d)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{d}:absent")
    parts.append(f"jleval:{jleval.__version__}")
    return "|".join(parts)


def not_computed(signature: str, reason: str) -> MetricResult:
    return MetricResult(score=None, per_sample=None, signature=signature, reason=reason)


def mean_result(values: Sequence[float], signature: str) -> MetricResult:
    """A score that is the mean of per-sample values (0 samples: not computed)."""
    if not values:
        return not_computed(signature, "no samples to score")
    vals = tuple(float(v) for v in values)
    return MetricResult(score=sum(vals) / len(vals), per_sample=vals, signature=signature)
