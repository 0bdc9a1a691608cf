"""Metrics: one registry, each metric a small function with its own signature string.

A metric function receives post-processed predictions and golds (and the inputs, for metrics like COMET that
need the source) and returns a MetricResult: the task-level score aggregated the way upstream does, the
per-sample values where the score is a mean of them (used for bootstrap CIs and paired comparisons), and a
sacrebleu-style signature naming every setting that changes the number.

Add a metric with one METRICS entry and:

    @register("exact_match")
    def exact_match(preds, golds, *, inputs=None, profile) -> MetricResult: ...

Every metric is declared once in METRICS (its module, scale, direction and needs), so metadata is known without
importing anything; metric modules are imported lazily by `get_metric(name)` so that importing jleval.metrics is
cheap and optional dependencies (COMET, BERTScore) are only touched when asked for.

The front door for callers holding raw model text is `compute(metric, generations, golds, profile=...)`: it
applies the profile's post-processing (jleval.metrics.postprocess) and returns the task-level score.
Scales are upstream's: exact_match, char_f1, set_f1, code_exec, pylint_check, comet_wmt22, bert_score and
rouge2_scaling in 0–1; pearson/spearman in -1–1; bleu_ja/bleu_en and rouge1/rouge2/rougeLsum in 0–100.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jleval.metrics.postprocess import DEFAULT_PROFILE, PROFILES  # noqa: F401  (re-exported)
from jleval.metrics.signature import Signature


@dataclass(frozen=True)
class MetricResult:
    score: float | None  # None = not computed (see `reason`); never a silent 0
    per_sample: tuple[float, ...] | None  # per-sample values when `score` is their mean, else None
    signature: Signature | str  # a Signature (jleval.metrics.signature); formatted text is accepted too
    reason: str | None = None
    #: A caveat about a computed score (e.g. a correlation undefined on constant predictions, reported as 0);
    #: scoring adds it to the run's warnings.
    note: str | None = None
    #: For scores that are not a plain mean of `per_sample` (pearson, spearman): maps a (B, n) array of sample
    #: indices (bootstrap replicates) to the B scores recomputed on them. None when `per_sample` suffices.
    resample: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)


class MetricFn(Protocol):
    def __call__(self, preds: Sequence[str], golds: Sequence[str], *, inputs: Sequence[str] | None = None,
                 profile: str = DEFAULT_PROFILE) -> MetricResult: ...


_REGISTRY: dict[str, MetricFn] = {}


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is, known without importing its module: where it lives, the scale of its task-level score
    (upstream's), its direction, and what it needs beyond predictions and golds."""

    module: str  # the module under jleval.metrics that registers it
    scale: str  # "0-1", "0-100" or "-1-1"
    higher_is_better: bool = True
    #: "inputs" (the source texts), "sandbox" (runs model-written code), "model" (downloads a neural model),
    #: "extra:<name>" (an optional dependency: pip install "jleval[<name>]")
    needs: tuple[str, ...] = ()


def _m(module: str, scale: str, *needs: str) -> MetricInfo:
    return MetricInfo(module, scale, True, needs)


#: Every metric jleval knows, declared once: the registry's single source of metadata (a metric module's
#: `@register(name)` must name an entry here). Scales are upstream's.
METRICS: dict[str, MetricInfo] = {
    "exact_match": _m("text", "0-1"),
    "char_f1": _m("text", "0-1"),
    "set_f1": _m("text", "0-1"),
    "pearson": _m("corr", "-1-1"),
    "spearman": _m("corr", "-1-1"),
    "bleu_ja": _m("bleu", "0-100"),
    "bleu_en": _m("bleu", "0-100"),
    "rouge1": _m("rouge", "0-100"),
    "rouge2": _m("rouge", "0-100"),
    "rougeLsum": _m("rouge", "0-100"),
    "rouge2_scaling": _m("rouge", "0-1"),
    "mathematical_equivalence": _m("mathequiv", "0-1", "extra:math"),
    "code_exec": _m("code", "0-1", "sandbox"),
    "pylint_check": _m("code", "0-1", "sandbox"),
    "comet_wmt22": _m("neural", "0-1", "inputs", "model", "extra:comet"),
    "bert_score_ja_f1": _m("neural", "0-1", "model", "extra:bertscore"),
    "bert_score_en_f1": _m("neural", "0-1", "model", "extra:bertscore"),
    # open-ended answers judged pairwise (`jleval arena judge` / `rank`): a rating, not a per-task function
    "arena": _m("", "rating", "judge"),
}


_NONE = MetricInfo("", "")


def metric_info(name: str) -> MetricInfo | None:
    """The declared metadata of a metric; None for a name jleval does not know."""
    return METRICS.get(name)


def register(name: str) -> Callable[[MetricFn], MetricFn]:
    if name not in METRICS:
        raise ValueError(f"metric {name!r} is registered but not declared in jleval.metrics.METRICS")

    def deco(fn: MetricFn) -> MetricFn:
        _REGISTRY[name] = fn
        return fn

    return deco


def check_metric_names(names: Sequence[str]) -> list[str]:
    """The names among `names` that are no known metric."""
    return [n for n in names if n not in METRICS]


def get_metric(name: str) -> MetricFn:
    if name not in _REGISTRY and METRICS.get(name, _NONE).module:
        importlib.import_module(f"jleval.metrics.{METRICS[name].module}")
    if name not in _REGISTRY:
        from jleval.errors import UsageError

        if name in METRICS:
            raise UsageError(f"metric {name!r} is not computed per sample",
                             "rank those answers with `jleval arena judge` and `jleval arena rank`")
        raise UsageError(f"unknown metric {name!r}", f"known metrics: {', '.join(sorted(METRICS))}")
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


def versions_of(*dists: str) -> Signature:
    """`name:version` pairs for the libraries behind a number, plus jleval's own version (always last)."""
    import importlib.metadata

    import jleval

    parts = []
    for d in dists:
        try:
            parts.append((d, importlib.metadata.version(d)))
        except importlib.metadata.PackageNotFoundError:
            parts.append((d, "absent"))
    parts.append(("jleval", jleval.__version__))
    return Signature(parts)


def versions_signature(*dists: str) -> str:
    """versions_of(...), formatted."""
    return str(versions_of(*dists))


def not_computed(signature: Signature | str, reason: str) -> MetricResult:
    return MetricResult(score=None, per_sample=None, signature=signature, reason=reason)


def mean_result(values: Sequence[float], signature: Signature | str) -> MetricResult:
    """A score that is the mean of per-sample values (0 samples: not computed)."""
    if not values:
        return not_computed(signature, "no samples to score")
    vals = tuple(float(v) for v in values)
    return MetricResult(score=sum(vals) / len(vals), per_sample=vals, signature=signature)
