"""ROUGE for Japanese: rouge1, rouge2, rougeLsum (0–100) and rouge2_scaling (rouge2 / 100, 0–1).

What llm-jp-eval v1.4.1 computes (its ``rouge_ja`` module): Google's rouge-score ``RougeScorer`` with a word
tokenizer passed in (sacrebleu's ja-mecab, IPA dictionary, whitespace-split; rouge-score's own tokenizer drops
every non-ASCII character and would score Japanese 0). Before scoring, a newline is put after each 。！？ unless
the text already holds a newline (rougeLsum treats lines as sentences). Each sample's F-measure is scaled by 100
and the system score is the ``mid`` of rouge-score's ``BootstrapAggregator`` (the median of 1,000 bootstrap
means; upstream's numpy draws are unseeded, ours are seeded, see `AGG_SEED`).

This module re-implements rouge-score's n-gram and summary-level LCS scoring on cached tokens instead of
importing it (importing rouge-score pulls in nltk, ~1 s); tests check equality with rouge-score on every sample.

The ``jleval`` profile tokenizes with fugashi + unidic-lite and reports the plain mean of the per-sample
F-measures.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import chain

import numpy as np

from jleval.metrics import MetricResult, Signature, not_computed, register, versions_of
from jleval.metrics import postprocess as pp
from jleval.metrics import tokenize as tk

ROUGE_TYPES = ("rouge1", "rouge2", "rougeLsum")
AGG_SAMPLES = 1000
AGG_SEED = 0
_PUNCT = "。！？"


def add_new_line(text: str) -> str:
    """Sentence split for rougeLsum as upstream: a newline after each 。！？ unless the text has newlines."""
    if "\n" in text:
        return text
    for p in _PUNCT:
        text = text.replace(p, p + "\n")
    return text


def _fmeasure(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _score_ngrams(target: Sequence[str], pred: Sequence[str], n: int) -> float:
    t, p = _ngrams(target, n), _ngrams(pred, n)
    inter = sum(min(c, p[g]) for g, c in t.items())
    precision = inter / max(sum(p.values()), 1)
    recall = inter / max(sum(t.values()), 1)
    return _fmeasure(precision, recall)


def _lcs_indices(ref: Sequence[str], can: Sequence[str]) -> list[int]:
    """Indices into `ref` of the LCS rouge-score picks (same table, same tie-breaking in the backtrack)."""
    if not set(ref).intersection(can):
        return []
    prev = [0] * (len(can) + 1)
    table = [prev]
    for r in ref:
        cur = [0]
        for j, c in enumerate(can):
            cur.append(prev[j] + 1 if r == c else max(prev[j + 1], cur[j]))
        table.append(cur)
        prev = cur
    i, j = len(ref), len(can)
    out: list[int] = []
    while i > 0 and j > 0:
        if ref[i - 1] == can[j - 1]:
            out.append(i - 1)
            i -= 1
            j -= 1
        elif table[i][j - 1] > table[i - 1][j]:
            j -= 1
        else:
            i -= 1
    out.reverse()
    return out


def _summary_lcs(ref_sents: list[tuple[str, ...]], can_sents: list[tuple[str, ...]]) -> float:
    m = sum(map(len, ref_sents))
    n = sum(map(len, can_sents))
    if not m or not n:  # no tokens (or no sentences) on one side
        return 0.0
    cnt_r = Counter(chain.from_iterable(ref_sents))
    cnt_c = Counter(chain.from_iterable(can_sents))
    hits = 0
    for r in ref_sents:
        union = sorted(set().union(*(_lcs_indices(r, c) for c in can_sents)))
        for t in (r[i] for i in union):
            if cnt_c[t] > 0 and cnt_r[t] > 0:
                hits += 1
                cnt_c[t] -= 1
                cnt_r[t] -= 1
    return _fmeasure(hits / n, hits / m)


def rouge_sample(pred: str, gold: str, rouge_type: str, tokenizer: str) -> float:
    """One sample's F-measure (0–1) as rouge-score computes it with the given word tokenizer."""
    pred, gold = add_new_line(pred), add_new_line(gold)
    if rouge_type == "rougeLsum":
        def sents(text: str) -> list[tuple[str, ...]]:
            return [tk.tokens(s, tokenizer) for s in text.split("\n") if len(s)]

        return _summary_lcs(sents(gold), sents(pred))
    n = int(rouge_type[len("rouge"):])
    return _score_ngrams(tk.tokens(gold, tokenizer), tk.tokens(pred, tokenizer), n)


def bootstrap_mid(values: np.ndarray, n_samples: int = AGG_SAMPLES, seed: int = AGG_SEED) -> float:
    """rouge-score BootstrapAggregator's `mid`: the median of `n_samples` bootstrap means (seeded here)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_samples, len(values)))
    return float(np.percentile(values[idx].mean(axis=1), 50))


def _make(name: str):
    base = "rouge2" if name == "rouge2_scaling" else name
    scale = 1.0 if name == "rouge2_scaling" else 100.0

    def metric(preds: Sequence[str], golds: Sequence[str], *, inputs=None,
               profile: str = pp.DEFAULT_PROFILE) -> MetricResult:
        tok = tk.for_profile(profile)
        upstream = pp.get_profile(profile).rouge_bootstrap_mid
        agg = f"bootstrap-mid(n={AGG_SAMPLES},seed={AGG_SEED})" if upstream else "mean"
        sig = Signature.of(("metric", name), ("impl", "rouge-score-0.1.2-equivalent"), ("tok", tk.signature(tok)),
                           ("sent-split", "newline-after-。！？"), ("score", f"fmeasure*{scale:g}"),
                           pp.signature_of(profile), ("agg", agg), versions_of("numpy"))
        if not preds:
            return not_computed(sig, "no samples to score")
        vals = np.array([rouge_sample(p, g, base, tok) * scale for p, g in zip(preds, golds)])
        score = bootstrap_mid(vals) if upstream else float(vals.mean())
        return MetricResult(score=score, per_sample=tuple(vals.tolist()), signature=sig)

    metric.__name__ = name
    return metric


for _name in (*ROUGE_TYPES, "rouge2_scaling"):
    register(_name)(_make(_name))
