"""Optional model-based metrics: comet_wmt22 and bert_score_{ja,en}_f1.

They need extra packages (``pip install "jleval[comet]"`` / ``"jleval[bertscore]"``) and model weights. When
either is missing the metric is reported as *not computed, with the reason* — never as 0 — so a partial run
is visible as such. Models are looked up offline first (the Hugging Face cache); set ``JLEVAL_ALLOW_DOWNLOAD=1``
to let them download. torch is imported only inside these functions, never by the rest of jleval.metrics.

comet_wmt22: Unbabel ``wmt22-comet-da``, triplets (src = input, mt = prediction, ref = gold), ``system_score``
(the mean of the segment scores, ≈0–1). bert_score: ``bert_score.score(preds, golds, lang=…)`` F1 mean with the
library's default model for the language.
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence

from jleval.metrics import MetricResult, Signature, mean_result, not_computed, register, versions_of
from jleval.metrics import postprocess as pp

COMET_MODEL = "Unbabel/wmt22-comet-da"


def _missing(package: str, extra: str) -> str | None:
    if importlib.util.find_spec(package) is None:
        return f"the optional package {package!r} is not installed (pip install \"jleval[{extra}]\")"
    return None


def _allow_download() -> bool:
    return os.environ.get("JLEVAL_ALLOW_DOWNLOAD", "") not in ("", "0")


@register("comet_wmt22")
def comet_wmt22(preds: Sequence[str], golds: Sequence[str], *, inputs: Sequence[str] | None = None,
                profile: str = pp.DEFAULT_PROFILE) -> MetricResult:
    sig = Signature.of(("metric", "comet_wmt22"), ("model", COMET_MODEL), ("batch", 8), pp.signature_of(profile),
                       ("agg", "system_score"), versions_of("unbabel-comet"))
    if reason := _missing("comet", "comet"):
        return not_computed(sig, reason)
    if inputs is None:
        return not_computed(sig, "COMET needs the source inputs; none were given")
    try:
        from comet import download_model, load_from_checkpoint

        if not _allow_download():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = download_model(COMET_MODEL)
        model = load_from_checkpoint(path)
        data = [{"src": s, "mt": p, "ref": g} for s, p, g in zip(inputs, preds, golds)]
        import torch

        out = model.predict(data, batch_size=8, gpus=1 if torch.cuda.is_available() else 0, progress_bar=False)
    except Exception as e:  # noqa: BLE001 - model absent offline, download refused, incompatible versions …
        return not_computed(sig, f"could not load or run {COMET_MODEL}: {type(e).__name__}: {e} "
                                 "(set JLEVAL_ALLOW_DOWNLOAD=1 to download it)")
    return mean_result(list(out.scores), sig)


def _bert_score(lang: str):
    def metric(preds: Sequence[str], golds: Sequence[str], *, inputs=None,
               profile: str = pp.DEFAULT_PROFILE) -> MetricResult:
        sig = Signature.of(("metric", f"bert_score_{lang}_f1"), ("model", f"bert_score-default-{lang}"),
                           pp.signature_of(profile), ("agg", "mean"), versions_of("bert-score"))
        if reason := _missing("bert_score", "bertscore"):
            return not_computed(sig, reason)
        if not preds:
            return not_computed(sig, "no samples to score")
        try:
            if not _allow_download():
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import bert_score

            _, _, f1 = bert_score.score(list(preds), list(golds), lang=lang, verbose=False)
        except Exception as e:  # noqa: BLE001 - as for COMET: any failure to load or run is reported as not computed
            return not_computed(sig, f"could not load or run BERTScore for {lang}: {type(e).__name__}: {e} "
                                     "(set JLEVAL_ALLOW_DOWNLOAD=1 to download the model)")
        return mean_result(f1.tolist(), sig)

    metric.__name__ = f"bert_score_{lang}_f1"
    return metric


bert_score_ja_f1 = register("bert_score_ja_f1")(_bert_score("ja"))
bert_score_en_f1 = register("bert_score_en_f1")(_bert_score("en"))
