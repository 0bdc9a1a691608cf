"""Fuzzing the metrics (issue 16): random Unicode, empty and huge strings through every metric that runs here
(not the sandboxed code metrics, not the neural ones that download a model), in every profile. The property:
a score that is a finite number within the metric's scale, with finite per-sample values, or "not computed"
with a reason; never an exception, never a NaN."""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jleval.errors import JlevalError
from jleval.metrics import METRICS, PROFILES, compute_result

FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = sorted(n for n, info in METRICS.items()
               if info.module and not {"sandbox", "model"} & set(info.needs))
SCALES = {"0-1": (0.0, 1.0), "0-100": (0.0, 100.0), "-1-1": (-1.0, 1.0)}
NASTY = ["", " ", "\n", "\x00", "\ud800", "１２３", "3.5", "-0", "nan", "inf", "1e309", "A", "entailment",
         "\u200b", "𠮷野家", "ｱｲｳ", "\\boxed{2}", "[[1]]", "a" * 3000, "あ" * 3000]
TEXT = st.one_of(st.sampled_from(NASTY), st.text(max_size=60), st.text(alphabet="0123456789.-e ", max_size=12))
PAIRS = st.lists(st.tuples(TEXT, TEXT), min_size=0, max_size=6)


def check(metric: str, profile: str, pairs: list[tuple[str, str]]) -> None:
    gens, golds = [p for p, _ in pairs], [g for _, g in pairs]
    try:
        res = compute_result(metric, gens, golds, profile=profile, inputs=gens)
    except JlevalError as e:  # a one-line error is an allowed outcome
        assert "\n" not in e.message
        return
    where = f"{metric} ({profile}) on {pairs!r:.300}"
    if res.score is None:
        assert res.reason, f"{where}: not computed without a reason"
        return
    low, high = SCALES[METRICS[metric].scale]
    assert math.isfinite(res.score) and low - 1e-9 <= res.score <= high + 1e-9, f"{where}: score {res.score}"
    for v in res.per_sample or ():
        assert math.isfinite(v), f"{where}: per-sample value {v}"


@FAST
@given(metric=st.sampled_from(NAMES), profile=st.sampled_from(sorted(PROFILES)), pairs=PAIRS)
def test_metrics_on_random_text(metric, profile, pairs):
    check(metric, profile, pairs)


@pytest.mark.parametrize("metric", NAMES)
def test_metrics_on_empty_and_huge_strings(metric):
    huge = "日本語の文です。" * 12_500  # 100,000 characters
    for profile in sorted(PROFILES):
        check(metric, profile, [])
        check(metric, profile, [("", "")])
        check(metric, profile, [("", "a"), ("a", "")])
        check(metric, profile, [(huge, "日本語"), ("日本語", "日本語")])


@pytest.mark.parametrize("metric", ["rouge1", "rouge2", "rougeLsum", "rouge2_scaling", "bleu_ja", "bleu_en"])
def test_a_lone_surrogate_is_scored(metric):
    """Found by the fuzzer: a gold holding a lone surrogate (valid JSON: "\\ud800") failed MeCab (a TypeError
    or UnicodeEncodeError) and so the task's ROUGE and BLEU."""
    for profile in sorted(PROFILES):
        res = compute_result(metric, ["日本語", "", "a"], ["\ud800", "\ud800日本語", "a\udcff"], profile=profile)
        assert res.score is not None and math.isfinite(res.score), (profile, res)


@pytest.mark.slow
@SLOW
@given(metric=st.sampled_from(NAMES), profile=st.sampled_from(sorted(PROFILES)), pairs=PAIRS)
def test_metrics_on_random_text_long_run(metric, profile, pairs):
    check(metric, profile, pairs)
