"""String metrics: exact_match, char_f1, set_f1, and the out-of-label rate.

char_f1 in the default profile is fuzzywuzzy's ``token_sort_ratio`` (with the python-Levenshtein backend, as
llm-jp-eval v1.4.1 installs it), reproduced with rapidfuzz:

1. ``force_ascii``: code points 128–255 are deleted (é, ×, °, · …; Japanese is untouched);
2. every non-word character (``\\W``: punctuation such as ``、。・``, symbols, spaces) becomes a space;
3. lower-case, strip; split on whitespace, sort the tokens, re-join with single spaces;
4. equal strings score 100 (so two answers that are both empty after step 3 score 1.0); otherwise an empty side
   scores 0; otherwise the Indel similarity ``(len1+len2-indel)/(len1+len2)`` times 100, rounded to an integer
   with Python's ``round`` (half to even: 62.5 -> 62, 87.5 -> 88), divided by 100.

The ``jleval`` profile keeps steps 2–4 but drops the Latin-1 deletion and the integer rounding.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from rapidfuzz.distance import Indel

from jleval.metrics import MetricResult, Signature, mean_result, register, versions_of
from jleval.metrics import postprocess as pp

_LATIN1 = dict.fromkeys(range(128, 256))
_NONWORD = re.compile(r"(?ui)\W")


def fuzz_process(s: str, force_ascii: bool = True) -> str:
    """fuzzywuzzy's full_process + token sort: the string token_sort_ratio compares."""
    if force_ascii:
        s = s.translate(_LATIN1)
    s = _NONWORD.sub(" ", s).lower().strip()
    return " ".join(sorted(s.split()))


def _similarity(a: str, b: str) -> float:
    """Step 4 on two processed strings, before any rounding (0–1)."""
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    return Indel.normalized_similarity(a, b)


def token_sort_ratio(a: str, b: str) -> int:
    """fuzzywuzzy.fuzz.token_sort_ratio(a, b) (0–100, an int) without fuzzywuzzy."""
    return round(100 * _similarity(fuzz_process(a), fuzz_process(b)))


def char_f1_sample(pred: str, gold: str, profile: str = pp.DEFAULT_PROFILE) -> float:
    if pp.get_profile(profile).fuzzywuzzy_char_f1:
        return token_sort_ratio(pred, gold) / 100.0
    return _similarity(fuzz_process(pred, force_ascii=False), fuzz_process(gold, force_ascii=False))


def _lines(text: str) -> list[str]:
    """The lines of a set_f1 answer, stripped."""
    return [x.strip() for x in text.split("\n")]


def set_f1_sample(pred: str, gold: str, profile: str = pp.DEFAULT_PROFILE) -> float:
    if pp.get_profile(profile).upstream_set_f1:
        # Upstream: gold lines kept as a list (duplicates count), prediction lines deduplicated; the recall's
        # numerator is the precision's (matched unique prediction lines), over the number of gold lines.
        gold_lines = _lines(gold)
        pred_set = set(_lines(pred))
        hits = sum(1 for y in pred_set if y in gold_lines)
        p = hits / len(pred_set)
        r = hits / len(gold_lines)
    else:
        gold_set = set(_lines(gold)) - {""}
        pred_set = set(_lines(pred)) - {""}
        if not gold_set or not pred_set:
            return float(gold_set == pred_set)  # two empty answers agree: 1.0; one empty: 0.0
        hits = len(pred_set & gold_set)
        p, r = hits / len(pred_set), hits / len(gold_set)
    return 2 * p * r / (p + r) if p + r else 0.0


def _sig(metric: str, profile: str, extra: str, *dists: str) -> Signature:
    return Signature.of(("metric", metric), extra, pp.signature_of(profile), ("agg", "mean"), versions_of(*dists))


@register("exact_match")
def exact_match(preds: Sequence[str], golds: Sequence[str], *, inputs=None,
                profile: str = pp.DEFAULT_PROFILE) -> MetricResult:
    sig = _sig("exact_match", profile, "cmp:string-equality")
    return mean_result([1.0 if p == g else 0.0 for p, g in zip(preds, golds)], sig)


@register("char_f1")
def char_f1(preds: Sequence[str], golds: Sequence[str], *, inputs=None,
            profile: str = pp.DEFAULT_PROFILE) -> MetricResult:
    if pp.get_profile(profile).fuzzywuzzy_char_f1:
        extra = "proc:fuzzywuzzy-token-sort|ascii:drop-128-255|sim:indel|round:int-half-even"
    else:
        extra = "proc:token-sort|ascii:keep|sim:indel|round:none"
    sig = _sig("char_f1", profile, extra, "rapidfuzz")
    return mean_result([char_f1_sample(p, g, profile) for p, g in zip(preds, golds)], sig)


@register("set_f1")
def set_f1(preds: Sequence[str], golds: Sequence[str], *, inputs=None,
           profile: str = pp.DEFAULT_PROFILE) -> MetricResult:
    if pp.get_profile(profile).upstream_set_f1:
        extra = "split:newline|strip:lines|dedup:pred-only|recall:precision-numerator"
    else:
        extra = "split:newline|strip:lines|dedup:both|drop:empty-lines|recall:true"
    sig = _sig("set_f1", profile, extra)
    return mean_result([set_f1_sample(p, g, profile) for p, g in zip(preds, golds)], sig)


def out_of_label(preds: Sequence[str], label_list: Sequence[str]) -> list[bool]:
    """Per prediction: is it outside `label_list`? (upstream PR #159's definition, for tasks with labels)."""
    labels = set(label_list)
    return [p not in labels for p in preds]
