"""bleu_ja / bleu_en: sacrebleu BLEU, scored per sample and averaged (0–100).

Default profile (llm-jp-eval v1.4.1): for each sample, both sides are stripped; if either is empty the sample
scores ``float(pred == gold)`` (1.0 when both are empty — on the 0–100 scale, so almost nothing — else 0.0);
otherwise ``BLEU(trg_lang=…, effective_order=True).corpus_score(pred, [gold])``: the prediction **string** and
a one-element list holding the reference string. sacrebleu then treats every character as a segment and pairs
the i-th characters of both strings, so the number is a positional character-unigram score, not sentence BLEU
(the upstream bug described in docs/metrics.md). Japanese uses sacrebleu's ja-mecab (IPA dictionary), English
13a.

``jleval`` profile: proper sentence BLEU, ``corpus_score([pred], [[gold]])`` with effective order; Japanese is
tokenized with fugashi + unidic-lite (then sacrebleu's ``none`` tokenizer); both sides empty scores 100, one
side empty 0.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

from jleval.metrics import MetricResult, Signature, mean_result, register, versions_of
from jleval.metrics import postprocess as pp
from jleval.metrics import tokenize as tk


@functools.cache
def _bleu(lang: str, pretokenized: bool):
    from sacrebleu.metrics import BLEU

    if pretokenized:
        return BLEU(tokenize="none", effective_order=True)
    return BLEU(trg_lang=lang, effective_order=True)


def bleu_sample(pred: str, gold: str, lang: str, profile: str = pp.DEFAULT_PROFILE) -> float:
    p, g = tk.utf8(pred.strip()), tk.utf8(gold.strip())  # sacrebleu's ja-mecab reads UTF-8 too
    upstream = pp.get_profile(profile).upstream_bleu
    if not p or not g:  # an empty side: 0; both empty: 100 (upstream: its float(pred == gold), 1.0)
        return float(p == g) * (1.0 if upstream else 100.0)
    if upstream:
        return _bleu(lang, False).corpus_score(p, [g]).score
    if lang == "ja":  # tokenized here, as the profile says, then scored as pretokenized text
        p, g = " ".join(tk.tokens(p, "unidic-lite")), " ".join(tk.tokens(g, "unidic-lite"))
    return _bleu(lang, lang == "ja").corpus_score([p], [[g]]).score


def _signature(lang: str, profile: str) -> Signature:
    tok = tk.signature(tk.for_profile(profile)) if lang == "ja" else "13a"
    if pp.get_profile(profile).upstream_bleu:
        how = "call:corpus_score(str,[str])-per-char-bug|empty:float(pred==gold)"
    else:
        how = "call:sentence|empty:both=100,one=0"
    return Signature.of(("metric", f"bleu_{lang}"), ("nrefs", 1), ("case", "mixed"), ("eff", True), ("tok", tok),
                        ("smooth", "exp"), how, ("strip", True), pp.signature_of(profile),
                        ("agg", "mean-of-samples"), versions_of("sacrebleu"))


def _make(lang: str):
    def metric(preds: Sequence[str], golds: Sequence[str], *, inputs=None,
               profile: str = pp.DEFAULT_PROFILE) -> MetricResult:
        return mean_result([bleu_sample(p, g, lang, profile) for p, g in zip(preds, golds)],
                           _signature(lang, profile))

    metric.__name__ = f"bleu_{lang}"
    return metric


bleu_ja = register("bleu_ja")(_make("ja"))
bleu_en = register("bleu_en")(_make("en"))
