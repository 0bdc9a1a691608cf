"""pearson / spearman (jsts): corpus-level correlations between gold and parsed predicted scores.

Default profile (llm-jp-eval v1.4.1): a prediction is parsed by deleting every character except digits and
"." and calling float() on the rest ("-1" -> 1.0, "3.5/5" -> 3.55); an unparsable prediction is -2.0; golds
are float(). The correlation is scipy's pearsonr / spearmanr statistic; NaN (constant predictions or golds)
becomes 0.0. Fewer than 2 samples: not computed (upstream would crash).

The ``jleval`` profile parses the first signed decimal number instead ("-1" -> -1.0, "3.5/5" -> 3.5), with the
same -2.0 for unparsable text and the same NaN -> 0 rule.

Computed with numpy (the same formulas as scipy, equal to ~1e-12; pinned in tests) so that scoring does not pay
for importing scipy.stats.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from jleval.metrics import MetricResult, Signature, not_computed, register, versions_of
from jleval.metrics import postprocess as pp

_NOT_NUMBER = re.compile(r"[^0-9.]")
_FIRST_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")


def parse_float(text: str, profile: str = pp.DEFAULT_PROFILE) -> float:
    if pp.get_profile(profile).keep_digits_parse:
        try:
            return float(_NOT_NUMBER.sub("", str(text)))
        except ValueError:
            return -2.0
    m = _FIRST_NUMBER.search(text)
    return float(m.group(0)) if m else -2.0


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of x, y (2-D); NaN where a row is constant."""
    xm = x - x.mean(axis=1, keepdims=True)
    ym = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        nx = np.linalg.norm(xm, axis=1)
        ny = np.linalg.norm(ym, axis=1)
        r = np.einsum("ij,ij->i", xm / nx[:, None], ym / ny[:, None])
    r = np.clip(r, -1.0, 1.0)
    # scipy returns NaN for constant input (after a ConstantInputWarning); so do we.
    r[(nx == 0) | (ny == 0) | ~np.isfinite(nx) | ~np.isfinite(ny)] = np.nan
    # a row that is constant up to rounding: scipy also reports NaN when every value equals the first
    r[(x == x[:, :1]).all(axis=1) | (y == y[:, :1]).all(axis=1)] = np.nan
    return r


def _rank_rows(a: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share the mean rank) of each row, like scipy.stats.rankdata."""
    out = np.empty(a.shape, dtype=float)
    for i, row in enumerate(a):
        order = np.argsort(row, kind="mergesort")
        srt = row[order]
        new = np.r_[True, srt[1:] != srt[:-1]]
        dense = np.cumsum(new) - 1
        starts = np.flatnonzero(new)
        ends = np.r_[starts[1:], len(row)]
        avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks starts+1 .. ends
        out[i, order] = avg[dense]
    return out


def _corr(kind: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if kind == "spearman":
        x, y = _rank_rows(x), _rank_rows(y)
    return np.nan_to_num(_pearson_rows(x, y), nan=0.0)


def _make(kind: str):
    def metric(preds: Sequence[str], golds: Sequence[str], *, inputs=None,
               profile: str = pp.DEFAULT_PROFILE) -> MetricResult:
        parse = "keep-digits-and-dot,unparsable=-2" if pp.get_profile(profile).keep_digits_parse else \
            "first-signed-number,unparsable=-2"
        sig = Signature.of(("metric", kind), ("parse", parse), ("nan", 0), pp.signature_of(profile),
                           ("agg", "corpus"), versions_of("numpy"))
        if len(preds) < 2:
            return not_computed(sig, f"{kind} needs at least 2 samples, got {len(preds)}")
        try:
            x = np.array([float(g) for g in golds], dtype=float)
        except ValueError as e:
            return not_computed(sig, f"a gold value is not a number ({e})")
        y = np.array([parse_float(p, profile) for p in preds], dtype=float)
        score = float(_corr(kind, x[None, :], y[None, :])[0])
        note = None
        if np.ptp(y) == 0 or np.ptp(x) == 0:
            note = (f"{kind} is undefined when every {'prediction' if np.ptp(y) == 0 else 'gold value'} is the "
                    "same number; reported as 0, as upstream does (NaN -> 0)")

        def resample(idx: np.ndarray) -> np.ndarray:
            return _corr(kind, x[idx], y[idx])

        return MetricResult(score=score, per_sample=None, signature=sig, resample=resample, note=note)

    metric.__name__ = kind
    return metric


pearson = register("pearson")(_make("pearson"))
spearman = register("spearman")(_make("spearman"))
