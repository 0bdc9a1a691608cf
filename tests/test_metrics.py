"""Metrics pinned on hand-checked cases, and checked against the reference libraries where we re-implement one
(fuzzywuzzy semantics, scipy's correlations, rouge-score)."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from jleval.errors import ScoreError, UsageError
from jleval.metrics import compute, compute_result, get_metric
from jleval.metrics import postprocess as pp
from jleval.metrics import tokenize as tk
from jleval.metrics.text import char_f1_sample, out_of_label, set_f1_sample, token_sort_ratio

V141 = "llm-jp-eval-1.4.1"


# ------------------------------------------------------------------------------------------ post-processing


def test_v141_postprocess_cuts_at_blank_line_nfkc_no_strip():
    assert pp.postprocess("ｅｎｔａｉｌｍｅｎｔ\n\n説明", V141) == "entailment"
    assert pp.postprocess(" neutral \nmore\n\nx", V141) == " neutral \nmore"
    assert pp.postprocess("\n\nanswer", V141) == ""  # a leading blank line empties the prediction, as upstream
    assert pp.normalize_gold("１２３", V141) == "123"


def test_jleval_postprocess_strips_and_extracts():
    assert pp.postprocess(" neutral \n\nx", "jleval") == "neutral"
    pat = pp.answer_pattern({"answer_pattern_id": "answer_tags_jp"})
    assert pp.postprocess("考えます…<answer> ２ </answer>", "jleval", pat) == "2"
    assert pp.postprocess("no tags here", "jleval", pat) == ""
    assert pp.answer_pattern({"answer_extract_pattern": r"答え：(\d+)"}) == r"答え：(\d+)"
    assert pp.answer_pattern({}) is None


def test_exact_match_profiles():
    gens, golds = ["entailment\n\nbecause…", " entailment", "ＹＥＳ"], ["entailment", "entailment", "YES"]
    assert compute("exact_match", gens, golds) == pytest.approx(2 / 3)  # the leading space fails upstream
    assert compute("exact_match", gens, golds, profile="jleval") == 1.0


def test_unknown_profile_and_metric_are_usage_errors():
    with pytest.raises(UsageError):
        compute("exact_match", ["a"], ["a"], profile="nope")
    with pytest.raises(UsageError):
        get_metric("no_such_metric")


# ------------------------------------------------------------------------------------------ char_f1


@pytest.mark.parametrize("pred,gold,expected", [
    ("東京都", "東京", 0.80),
    ("ダイ・ハード", "ダイハード", 0.91),  # ・ becomes a space: "ダイ ハード" vs "ダイハード"
    ("YES", "yes", 1.0),  # lower-cased
    ("東京、大阪", "大阪 東京", 1.0),  # 、 to space, tokens sorted
    ("", "x", 0.0),
    ("", "", 1.0),  # equal strings score 100 before the empty check
    ("。", "、", 1.0),  # both empty after processing -> equal
    ("東京。", "東京", 1.0),
    ("abcde", "abcdefghijk", 0.62),  # 62.5 -> 62: round half to even
    ("abc", "abcdefghijklm", 0.38),  # 37.5 -> 38
    ("café", "caf", 1.0),  # force_ascii: code points 128-255 deleted
])
def test_char_f1_v141_hand_checked(pred, gold, expected):
    assert char_f1_sample(pred, gold, V141) == expected


def test_char_f1_full_width_goes_through_nfkc():
    assert compute("char_f1", ["ＡＢＣ１２３"], ["abc123"]) == 1.0


def test_char_f1_jleval_unrounded():
    assert char_f1_sample("abcde", "abcdefghijk", "jleval") == pytest.approx(0.625)
    assert char_f1_sample("café", "caf", "jleval") == pytest.approx(6 / 7)
    assert char_f1_sample("東京都", "東京", "jleval") == pytest.approx(0.8)


def test_token_sort_ratio_matches_fuzzywuzzy_definition_on_random_strings():
    """Cross-check against a direct transcription of fuzzywuzzy's steps with difflib-free Indel math."""
    import re

    rng = random.Random(3)
    alphabet = "東京大阪都・、。 abcABCé-"

    def reference(a: str, b: str) -> int:
        def proc(s):
            s = "".join(ch for ch in s if not 128 <= ord(ch) < 256)
            s = re.sub(r"(?ui)\W", " ", s).lower().strip()
            return " ".join(sorted(s.split())).strip()
        a, b = proc(a), proc(b)
        if a == b:
            return 100
        if not a or not b:
            return 0
        # Indel distance via LCS
        t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(len(a)):
            for j in range(len(b)):
                t[i + 1][j + 1] = t[i][j] + 1 if a[i] == b[j] else max(t[i][j + 1], t[i + 1][j])
        lensum = len(a) + len(b)
        return round(100 * (1 - (lensum - 2 * t[-1][-1]) / lensum))

    for _ in range(300):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        assert token_sort_ratio(a, b) == reference(a, b), (a, b)


# ------------------------------------------------------------------------------------------ set_f1


def test_set_f1_v141_quirks():
    # gold duplicates count in the recall denominator; prediction duplicates are collapsed
    assert set_f1_sample("a", "a\na", V141) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert set_f1_sample("a\na\nb", "a\nb", V141) == 1.0
    # multi-line answers, lines stripped
    assert set_f1_sample(" 東京 positive\n大阪 negative", "東京 positive\n名古屋 neutral", V141) == 0.5
    assert set_f1_sample("", "a", V141) == 0.0
    assert set_f1_sample("x\ny", "a\nb", V141) == 0.0


def test_set_f1_jleval_true_recall():
    assert set_f1_sample("a", "a\na", "jleval") == 1.0
    assert set_f1_sample("a\n\nb", "a\nb\nc", "jleval") == pytest.approx(0.8)
    assert set_f1_sample("", "", "jleval") == 1.0
    assert set_f1_sample("", "a", "jleval") == 0.0


def test_set_f1_through_compute_averages_samples():
    assert compute("set_f1", ["a\nb", "x"], ["a\nb", "y"]) == 0.5


# ------------------------------------------------------------------------------------------ out-of-label


def test_out_of_label():
    assert out_of_label(["entailment", " neutral", "", "含意"], ["entailment", "neutral"]) == [False, True, True, True]


# ------------------------------------------------------------------------------------------ correlations


def test_parse_float_upstream_and_jleval():
    from jleval.metrics.corr import parse_float

    assert parse_float("-1", V141) == 1.0
    assert parse_float("3.5/5", V141) == 3.55
    assert parse_float("わからない", V141) == -2.0
    assert parse_float("1.2.3", V141) == -2.0
    assert parse_float("-1", "jleval") == -1.0
    assert parse_float("3.5/5", "jleval") == 3.5


@pytest.mark.parametrize("kind", ["pearson", "spearman"])
def test_correlations_equal_scipy(kind):
    import scipy.stats as st

    from jleval.metrics.corr import parse_float

    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(3, 60))
        golds = [f"{x:.1f}" for x in rng.uniform(0, 5, n)]
        preds = [str(x) for x in rng.integers(0, 6, n)]  # many ties
        if trial % 5 == 0:
            preds[0] = "不明"
        x = [float(g) for g in golds]
        y = [parse_float(p) for p in preds]
        ref = (st.pearsonr if kind == "pearson" else st.spearmanr)(x, y)[0]
        ref = 0.0 if np.isnan(ref) else ref
        assert compute(kind, preds, golds) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("kind", ["pearson", "spearman"])
def test_correlations_constant_predictions_are_zero(kind):
    assert compute(kind, ["3", "3", "3"], ["1.0", "2.0", "4.0"]) == 0.0


def test_correlation_needs_two_samples():
    res = compute_result("pearson", ["3"], ["1.0"])
    assert res.score is None and "at least 2" in res.reason
    with pytest.raises(ScoreError, match="at least 2"):
        compute("pearson", ["3"], ["1.0"])


def test_correlation_resample_matches_direct_computation():
    res = compute_result("spearman", ["1", "2", "3", "3", "5"], ["1.0", "2.5", "2.0", "4.0", "5.0"])
    idx = np.array([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [0, 0, 1, 2, 4]])
    reps = res.resample(idx)
    for row, value in zip(idx, reps):
        sub = compute("spearman", [["1", "2", "3", "3", "5"][i] for i in row],
                      [["1.0", "2.5", "2.0", "4.0", "5.0"][i] for i in row])
        assert value == pytest.approx(sub, abs=1e-12)


# ------------------------------------------------------------------------------------------ tokenization


def test_tokenizers_and_signatures():
    assert tk.ipadic_tokens("東京へ行った") == ("東京", "へ", "行っ", "た")
    assert tk.unidic_tokens("東京へ行った") == ("東京", "へ", "行っ", "た")
    assert tk.ipadic_tokens("東京\n大阪") == ("東京", "大阪")
    assert all(isinstance(t, str) for t in tk.unidic_tokens("吾輩は猫である。名前はまだ無い。"))
    assert "IPA" in tk.signature("ipadic") and "ipadic-" in tk.signature("ipadic")
    assert tk.signature("unidic-lite").startswith("fugashi-") and "unidic-lite-" in tk.signature("unidic-lite")


# ------------------------------------------------------------------------------------------ BLEU


def test_bleu_v141_reproduces_per_character_call():
    from sacrebleu.metrics import BLEU

    pairs = [("東京に行きました", "東京へ行った"), ("猫が好きです。犬も好き", "私は猫が好きです。"),
             ("I like cats.", "I like dogs."), ("吾輩は猫である", "吾輩は猫である")]
    for pred, gold in pairs:
        fresh = BLEU(trg_lang="ja", effective_order=True).corpus_score(pred, [gold]).score
        assert compute("bleu_ja", [pred], [gold]) == pytest.approx(fresh)
    assert compute("bleu_ja", ["東京に行きました"], ["東京へ行った"]) == pytest.approx(50.0)


def test_bleu_v141_empty_rule():
    assert compute("bleu_ja", [""], [""]) == 1.0  # float(pred == gold), on the 0-100 scale
    assert compute("bleu_ja", ["  "], ["東京"]) == 0.0
    assert compute("bleu_en", ["x"], [" "]) == 0.0


def test_bleu_jleval_is_sentence_bleu():
    from sacrebleu.metrics import BLEU

    pred, gold = "猫が好きです。犬も好き", "私は猫が好きです。"

    def toks(s: str) -> str:
        return " ".join(tk.unidic_tokens(s))

    ref = BLEU(tokenize="none", effective_order=True).corpus_score([toks(pred)], [[toks(gold)]]).score
    assert compute("bleu_ja", [pred], [gold], profile="jleval") == pytest.approx(ref)
    en = BLEU(trg_lang="en", effective_order=True).corpus_score(["I like cats ."], [["I like dogs ."]]).score
    assert compute("bleu_en", ["I like cats ."], ["I like dogs ."], profile="jleval") == pytest.approx(en)
    assert compute("bleu_ja", [""], [""], profile="jleval") == 100.0


def test_bleu_signature_names_tokenizer_and_bug():
    sig = compute_result("bleu_ja", ["a"], ["a"]).signature
    assert "ja-mecab-0.996-IPA" in sig and "per-char" in sig and "sacrebleu:" in sig
    assert "unidic-lite" in compute_result("bleu_ja", ["a"], ["a"], profile="jleval").signature


# ------------------------------------------------------------------------------------------ ROUGE


def _japanese_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    words = ("東京 大阪 政府 発表 経済 会社 市場 日本 首相 選挙 問題 今年 調査 結果 影響 増加 対策 国際 "
             "警察 病院 学校 子ども 環境 技術 開発 世界").split()
    parts = ["は", "が", "を", "に", "で", "と", "の", "も"]
    ends = ["した。", "している。", "と発表した。", "だった！", "という？"]
    rng = random.Random(seed)

    def sent():
        return "".join(rng.choice(words) + rng.choice(parts) for _ in range(rng.randint(1, 7))) + \
            rng.choice(words) + rng.choice(ends)

    pairs = []
    for i in range(n):
        gold = "".join(sent() for _ in range(rng.randint(1, 3)))
        pred = "".join(sent() for _ in range(rng.randint(0, 3)))
        if i % 7 == 3:
            pred = pred.replace("。", "。\n")  # a prediction that already has newlines
        if i % 11 == 5:
            pred = gold  # identical
        pairs.append((pred, gold))
    pairs += [("", "東京に行った。"), ("東京", ""), ("", "")]
    return pairs


@pytest.mark.parametrize("profile", [V141, "jleval"])
def test_rouge_equals_rouge_score_on_every_sample(profile):
    from rouge_score.rouge_scorer import RougeScorer

    from jleval.metrics.rouge import add_new_line, rouge_sample

    tok = tk.for_profile(profile)

    class Tok:
        def tokenize(self, text):
            return list(tk.tokens(text, tok))

    scorer = RougeScorer(["rouge1", "rouge2", "rougeLsum"], tokenizer=Tok())
    for pred, gold in _japanese_pairs(80):
        ref = scorer.score(add_new_line(gold), add_new_line(pred))
        for rt in ("rouge1", "rouge2", "rougeLsum"):
            assert rouge_sample(pred, gold, rt, tok) == pytest.approx(ref[rt].fmeasure, abs=1e-12), (rt, pred, gold)


def test_rouge_aggregation_and_scales():
    from rouge_score.scoring import BootstrapAggregator, Score

    pairs = _japanese_pairs(40, seed=1)
    preds, golds = [p for p, _ in pairs], [g for _, g in pairs]
    r2 = compute_result("rouge2", preds, golds)
    assert r2.signature.count("bootstrap-mid") == 1
    vals = np.array(r2.per_sample)
    # the mid of upstream's (unseeded) BootstrapAggregator lands near ours
    agg = BootstrapAggregator()
    for v in vals:
        agg.add_scores({"rouge2": Score(v, v, v)})
    assert r2.score == pytest.approx(agg.aggregate()["rouge2"].mid.fmeasure, abs=1.5)
    assert r2.score == pytest.approx(vals.mean(), abs=1.5)
    assert compute("rouge2", preds, golds) == r2.score  # seeded: reproducible
    assert compute("rouge2_scaling", preds, golds) == pytest.approx(r2.score / 100)
    assert compute("rouge2", preds, golds, profile="jleval") == pytest.approx(
        np.mean(compute_result("rouge2", preds, golds, profile="jleval").per_sample))


def test_rouge_japanese_pair_hand_checked():
    # ipadic: 政府 は 新しい 経済 対策 を 発表 し た 。 / 政府 が 経済 対策 を 発表 し た 。
    pred, gold = "政府が経済対策を発表した。", "政府は新しい経済対策を発表した。"
    # unigrams: 8 common of 9 (pred) and 10 (gold) -> F = 2*8/19
    assert compute("rouge1", [pred], [gold]) == pytest.approx(100 * 16 / 19, abs=1e-9)
    # bigrams: pred 8, gold 9; common: 経済対策 対策を を発表 発表し した た。 = 6 -> F = 12/17
    assert compute("rouge2", [pred], [gold]) == pytest.approx(100 * 12 / 17, abs=1e-9)


# ------------------------------------------------------------------------------------------ optional extras


def test_optional_metrics_report_not_computed_with_reason(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("comet", "bert_score", "math_verify") else real(name, *a))
    for metric in ("comet_wmt22", "bert_score_ja_f1", "mathematical_equivalence"):
        res = compute_result(metric, ["a"], ["a"], inputs=["src"])
        assert res.score is None and "not installed" in res.reason
        with pytest.raises(ScoreError, match="not computed"):
            compute(metric, ["a"], ["a"], inputs=["src"])


def test_every_signature_names_profile_and_versions():
    for metric in ("exact_match", "char_f1", "set_f1", "pearson", "spearman", "bleu_ja", "bleu_en",
                   "rouge1", "rouge2", "rougeLsum", "rouge2_scaling"):
        for profile in (V141, "jleval"):
            sig = compute_result(metric, ["1", "2"], ["1", "2"], profile=profile).signature
            assert f"metric:{metric}" in sig and f"profile:{profile}" in sig and sig.endswith(
                f"jleval:{__import__('jleval').__version__}")


# ----- metadata declared once; task files validated against it -----------------------------------------------

def test_every_declared_metric_registers_and_carries_its_metadata():
    import importlib

    from jleval import metrics as M

    for name, info in M.METRICS.items():
        assert info.scale in ("0-1", "0-100", "-1-1", "rating"), name
        if info.module:
            importlib.import_module(f"jleval.metrics.{info.module}")
            assert name in M._REGISTRY, f"{name} is declared in module {info.module} but not registered there"
    assert set(M._REGISTRY) <= set(M.METRICS)
    assert M.metric_info("bleu_ja").scale == "0-100" and M.metric_info("pearson").scale == "-1-1"
    assert "inputs" in M.metric_info("comet_wmt22").needs and M.metric_info("nope") is None
    with pytest.raises(ValueError, match="not declared"):
        M.register("made_up_metric")


def test_a_task_file_with_an_unknown_metric_is_named(tmp_path):
    from jleval.errors import TaskSpecError
    from jleval.tasks import parse_task

    src = (Path(__file__).parents[1] / "tasks" / "jamp.toml").read_text(encoding="utf-8")
    bad = tmp_path / "jamp.toml"
    bad.write_text(src.replace('metrics = ["exact_match"]', 'metrics = ["exact_macth"]'), encoding="utf-8")
    assert bad.read_text(encoding="utf-8") != src
    with pytest.raises(TaskSpecError, match=r"jamp\.toml: unknown metric 'exact_macth'") as e:
        parse_task(bad)
    assert "exact_match" in e.value.hint
    assert parse_task(Path(__file__).parents[1] / "tasks" / "jamp.toml").metrics == ("exact_match",)


def test_profiles_are_data():
    from jleval.metrics.postprocess import PROFILES
    from jleval.metrics.tokenize import for_profile

    up, fixed = PROFILES["llm-jp-eval-1.4.1"], PROFILES["jleval"]
    assert up.fuzzywuzzy_char_f1 and not fixed.fuzzywuzzy_char_f1
    assert for_profile("llm-jp-eval-1.4.1") == up.tokenizer == "ipadic" and for_profile("jleval") == "unidic-lite"


def test_long_texts_are_tokenized_in_pieces_cut_after_a_sentence():
    text = "今日は良い天気です。\n" * 30_000 + "終わり"
    pieces = tk._pieces(text, limit=1000)
    assert "".join(pieces) == text and all(len(p) <= 1000 for p in pieces)
    assert all(p.endswith(("。", "\n")) for p in pieces[:-1])
    assert tk._pieces("あ" * 2500, limit=1000) == ["あ" * 1000, "あ" * 1000, "あ" * 500]  # no boundary: hard cut
    short = "東京は日本の首都です。"
    assert tk.tokens(short, "unidic-lite") == tk.unidic_tokens(short)  # texts under the limit: tokenized whole


@pytest.mark.slow
def test_a_huge_generation_is_scored_as_one_sample_never_the_whole_task():
    """A 3.2 M-character generation crashed fugashi (SIGSEGV), losing ROUGE for the whole task (or the process)."""
    huge = "今日は良い天気です。" * 320_000
    golds = ["今日は晴れ", "明日は雨"]
    alone = compute_result("rouge2", ["今日は晴れ", "明日は雨"], golds, profile="jleval")
    res = compute_result("rouge2", [huge, "明日は雨"], golds, profile="jleval")
    assert res.score is not None and res.reason is None
    assert res.per_sample[1] == alone.per_sample[1] == 100.0 and res.per_sample[0] < 1.0
    bleu = compute_result("bleu_ja", [huge, "明日は雨"], golds, profile="jleval")
    assert bleu.score is not None and bleu.per_sample[1] == pytest.approx(100.0)


def test_signature_is_an_object_with_ordered_settings():
    from jleval.metrics.signature import Signature

    sig = compute_result("exact_match", ["a"], ["a"]).signature
    assert isinstance(sig, Signature) and sig.get("metric") == "exact_match" and sig.get("cmp") == "string-equality"
    keys = [k for k, _ in sig.items()]
    assert keys[:3] == ["metric", "cmp", "profile"] and keys[-1] == "jleval"  # jleval's version last, as sacrebleu
    new = sig.update(post="cot-extract-2+cut-blank-line+nfkc+nostrip")
    assert [k for k, _ in new.items()] == keys and new.get("post").startswith("cot-extract-2+")
    assert str(new) == str(sig).replace("|post:", "|post:cot-extract-2+") and sig.get("post") != new.get("post")
    assert Signature.of(("eff", True), "tok:13a|smooth:exp", ("n", 1)) == "eff:yes|tok:13a|smooth:exp|n:1"
