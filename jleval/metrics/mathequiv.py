"""mathematical_equivalence (llm-jp-eval v2, PR #195): Hugging Face math-verify's parse + verify of the
prediction against the gold, averaged over samples (0–1).

math-verify is an optional package: without it the metric is reported as not computed, with the reason. It is
not part of the v1.4.1 leaderboard (mawps is scored with exact_match there).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from jleval.metrics import MetricResult, Signature, mean_result, not_computed, register, versions_of
from jleval.metrics import postprocess as pp


def _equivalent(pred: str, gold: str) -> float:
    from math_verify import parse, verify

    gold_parsed = parse(gold)
    pred_parsed = parse(pred)
    if not gold_parsed or not pred_parsed:
        return 0.0
    return 1.0 if verify(gold_parsed, pred_parsed) else 0.0


@register("mathematical_equivalence")
def mathematical_equivalence(preds: Sequence[str], golds: Sequence[str], *, inputs=None,
                             profile: str = pp.DEFAULT_PROFILE) -> MetricResult:
    sig = Signature.of(("metric", "mathematical_equivalence"), ("impl", "math-verify-parse+verify"),
                       pp.signature_of(profile), ("agg", "mean"), versions_of("math-verify"))
    if importlib.util.find_spec("math_verify") is None:
        return not_computed(sig, "the optional package 'math-verify' is not installed (pip install math-verify)")
    return mean_result([_equivalent(p, g) for p, g in zip(preds, golds)], sig)
