"""Bradley–Terry ranking: known values, recovery and interval coverage on simulated tournaments, the bootstrap
fast path against a plain refit, the posterior, output files, and bad judgments files."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from jleval.arena import rank_files, write_ranking
from jleval.arena.bt import SCALE, _Problem, bootstrap, encode, fit_map, rank
from jleval.arena.errors import EmptyJudgmentsError, JudgmentsFileError, UnknownModelError
from jleval.arena.io import Judgment, JudgmentWriter, check_models, collect_outcomes, read_judgments
from jleval.arena.simulate import coverage, tournament
from jleval.errors import UsageError


def lines(*triples, **kw):
    return [Judgment(a, b, w, **kw) for a, b, w in triples]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


# ----- known values -------------------------------------------------------------------------------------------

def test_two_models_known_rating_gap():
    """a beats b 3 times as often: odds 3, so the gap is 400*log10(3) = 190.8 points, centred on 1000."""
    js = lines(*[("a", "b", "a")] * 300, *[("a", "b", "b")] * 100)
    r = rank(js, n_bootstrap=0)
    top, bottom = r.rows
    assert (top.model, bottom.model) == ("a", "b")
    assert top.rating - bottom.rating == pytest.approx(400 * math.log10(3), abs=0.5)  # weak prior: tiny shrink
    assert (top.rating + bottom.rating) / 2 == pytest.approx(1000)
    assert top.ci95 is None and r.method == "none" and r.position is None
    assert (top.wins, top.losses, top.ties, top.matches) == (300, 100, 0, 400)


def test_ties_are_half_wins():
    js = lines(*[("a", "b", "a")] * 100, *[("a", "b", "tie")] * 200)  # score 200/300 for a: odds 2
    r = rank(js, n_bootstrap=0)
    assert r.rows[0].rating - r.rows[1].rating == pytest.approx(400 * math.log10(2), abs=0.5)
    assert r.rows[0].ties == 200


def test_position_term_is_fitted_from_single_order_lines():
    # equal models, but whoever is shown first wins 3 times in 4
    js = (lines(*[("a", "b", "a")] * 150, *[("a", "b", "b")] * 50, first="a")
          + lines(*[("a", "b", "b")] * 150, *[("a", "b", "a")] * 50, first="b"))
    r = rank(js, n_bootstrap=200)
    assert r.position["strength"] == pytest.approx(math.log(3), abs=0.02)
    assert r.position["rating_points"] == pytest.approx(SCALE * r.position["strength"])
    assert abs(r.rows[0].rating - 1000) < 1 and r.position["ci95_strength"][0] > 0.8


def test_a_judge_that_always_picks_the_first_answer_is_named():
    js = lines(*[("a", "b", "a")] * 40, first="a") + lines(*[("c", "b", "a")] * 40, first="a")
    r = rank(js, n_bootstrap=0)
    assert any("100% of its single-order verdicts to the first-shown answer" in w for w in r.warnings)
    balanced = (lines(*[("a", "b", "a")] * 150, *[("a", "b", "b")] * 50, first="a")
                + lines(*[("a", "b", "b")] * 150, *[("a", "b", "a")] * 50, first="b"))
    assert not any("first-shown" in w for w in rank(balanced, n_bootstrap=0).warnings)


def test_same_seed_same_result_and_mean_1000():
    _, js = tournament(6, 400, seed=3, alpha=0.3)
    r1, r2 = rank(js, n_bootstrap=300, seed=7), rank(js, n_bootstrap=300, seed=7)
    assert r1.to_json() == r2.to_json()
    assert np.mean([x.rating for x in r1.rows]) == pytest.approx(1000)
    assert rank(js, n_bootstrap=300, seed=8).rows[0].ci95 != r1.rows[0].ci95


# ----- simulations --------------------------------------------------------------------------------------------

def test_fit_recovers_known_strengths():
    truth, js = tournament(20, 5000, seed=11, alpha=0.3)
    r = rank(js, n_bootstrap=200)
    from scipy.stats import spearmanr

    est = {x.model: x.strength for x in r.rows}
    names = sorted(truth)
    assert spearmanr([truth[m] for m in names], [est[m] for m in names]).statistic > 0.97
    assert max(abs(truth[m] - est[m]) for m in names) < 0.4
    assert r.position["strength"] == pytest.approx(0.3, abs=0.1)


@pytest.mark.parametrize("mode", ["single", "both"])
def test_95_intervals_cover_the_truth_about_95_percent(mode):
    """A modest check (30 tournaments x 8 models = 240 intervals); benchmarks/arena.py runs the full study."""
    c = coverage(30, n_models=8, n_matches=600, alpha=0.2, mode=mode, n_bootstrap=300, seed=1)
    assert 0.89 <= c.coverage95 <= 0.99, c
    assert 0.58 <= c.coverage68 <= 0.78, c
    assert c.mean_spearman > 0.9, c


def test_batched_newton_bootstrap_matches_plain_refits():
    _, js = tournament(10, 800, seed=4, alpha=0.25)
    outcomes, _ = collect_outcomes(js)
    data = encode(outcomes)
    prob = _Problem(data, 3.0)
    theta_hat = fit_map(data, 3.0, prob)
    fast, fallbacks = bootstrap(data, theta_hat, 5, seed=9, problem=prob)
    assert fallbacks == 0
    rng = np.random.default_rng(9)  # the same resamples, refitted one by one from zero with L-BFGS-B
    draws = rng.integers(0, len(data.obs_y), size=(5, len(data.obs_y)))
    for k in range(5):
        counts = np.bincount(draws[k], minlength=len(data.obs_y)).astype(float)
        W, Y = data.cell_sums(counts)
        slow, ok = prob.fit_lbfgs(W, Y, np.zeros(data.n_params))
        slow[: data.n_models] -= slow[: data.n_models].mean()
        assert ok and np.allclose(fast[k], slow, atol=2e-5)


def test_posterior_gives_probability_stronger_than_next():
    _, js = tournament(6, 600, seed=2, alpha=0.2)
    post = rank(js, method="posterior", seed=1, draws=1500, burn=300)
    boot = rank(js, n_bootstrap=400, seed=1)
    assert post.method == "posterior" and post.diagnostics["max_split_rhat"] < 1.05
    p = [x.p_stronger_than_next for x in post.rows]
    assert p[-1] is None and all(0.5 <= v <= 1.0 for v in p[:-1])  # sorted by median: each >= 1/2
    for a, b in zip(sorted(post.rows, key=lambda x: x.model), sorted(boot.rows, key=lambda x: x.model)):
        assert a.rating == pytest.approx(b.rating, abs=15)
        assert a.plus_minus_68 == pytest.approx(b.plus_minus_68, rel=0.35)
    assert boot.rows[0].p_stronger_than_next is None


# ----- degenerate data ----------------------------------------------------------------------------------------

def test_model_with_only_wins_gets_a_finite_rating_and_a_warning():
    js = lines(*[("champ", "b", "a")] * 20, *[("champ", "c", "a")] * 20, *[("b", "c", "a")] * 12,
               *[("b", "c", "b")] * 8)
    r = rank(js, n_bootstrap=200)
    assert r.rows[0].model == "champ" and math.isfinite(r.rows[0].rating) and r.rows[0].ci95[1] < 3000
    assert any("champ has only wins" in w and "prior" in w for w in r.warnings)
    assert any("c has only losses" in w for w in r.warnings) is False  # c beat b 8 times


def test_groups_that_never_met_are_reported():
    js = lines(("a", "b", "a"), ("a", "b", "b"), ("c", "d", "a"), ("c", "d", "b"))
    r = rank(js, n_bootstrap=0)
    assert any("never met" in w and "{a, b}" in w and "{c, d}" in w for w in r.warnings)


def test_empty_and_useless_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(EmptyJudgmentsError, match="no judgments"):
        rank_files([empty])
    bad = write_jsonl(tmp_path / "bad.jsonl", [
        {"model_a": "a", "model_b": "b", "winner": None, "error": "no verdict marker", "error_kind": "verdict"}])
    with pytest.raises(EmptyJudgmentsError, match="none of the 1 judgment lines.*verdict 1"):
        rank_files([bad])
    with pytest.raises(JudgmentsFileError, match="does not exist"):
        rank_files([tmp_path / "missing.jsonl"])


@pytest.mark.parametrize("record, message", [
    ({"model_a": "a", "model_b": "a", "winner": "a"}, "line 2: self-match"),
    ({"model_a": "a", "model_b": "b", "winner": "A"}, "line 2: winner must be"),
    ({"model_a": "a", "winner": "a"}, "line 2: missing or empty 'model_b'"),
    ({"model_a": "a", "model_b": "b", "winner": "a", "first": "x"}, "line 2: first must be"),
    (["a", "b"], "line 2: expected a JSON object"),
])
def test_bad_lines_name_file_and_line(tmp_path, record, message):
    p = write_jsonl(tmp_path / "j.jsonl", [{"model_a": "a", "model_b": "b", "winner": "tie"}, record])
    with pytest.raises(JudgmentsFileError, match=message):
        read_judgments(p)


def test_broken_json_mid_file_is_an_error_but_a_cut_last_line_is_not(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text('{"model_a": "a", "model_b": "b", "winner": "a"}\n{"model_a": "a"\n'
                 '{"model_a": "a", "model_b": "b", "winner": "b"}\n', encoding="utf-8")
    with pytest.raises(JudgmentsFileError, match="line 2: not valid JSON"):
        read_judgments(p)
    p.write_text('{"model_a": "a", "model_b": "b", "winner": "a"}\n{"model_a": "a", "mo', encoding="utf-8")
    assert len(read_judgments(p)) == 1
    with JudgmentWriter(p) as w:  # appending first cuts the partial line off
        w.write(Judgment("a", "b", "b"))
    assert [j.winner for j in read_judgments(p)] == ["a", "b"]


def test_rakuda_judgment_lines_are_read(tmp_path):
    p = write_jsonl(tmp_path / "gpt-4_pair.jsonl", [
        {"question_id": "x1", "model1_id": "gpt-4", "model2_id": "rinna", "winner": 1, "judge": ["gpt-4", "pair-ja"]},
        {"question_id": "x2", "model1_id": "rinna", "model2_id": "gpt-4", "winner": 3, "judge": ["gpt-4", "pair-ja"]},
        {"question_id": "x3", "model1_id": "rinna", "model2_id": "gpt-4", "winner": "error", "judge": ["gpt-4", "pair-ja"]},
    ])
    js = read_judgments(p)
    assert [j.winner_model for j in js] == ["gpt-4", "tie", None] and js[0].first == "a" and js[0].judge == "gpt-4"
    r = rank(js, n_bootstrap=0)
    assert r.stats["single_order"] == 2 and r.stats["errors"] == 1 and r.position is not None


def test_unknown_models_are_named():
    with pytest.raises(UnknownModelError, match="ghost") as e:
        check_models(lines(("a", "ghost", "a")), ["a", "b"])
    assert "known models: a, b" in str(e.value)


# ----- outputs ------------------------------------------------------------------------------------------------

def test_written_ranking_csv_json_png(tmp_path):
    _, js = tournament(5, 300, seed=5, alpha=0.1)
    jl = tmp_path / "j.jsonl"
    write_jsonl(jl, [j.to_json() for j in js])
    r = rank_files([jl], n_bootstrap=100, method="posterior", draws=500, burn=100)
    paths = write_ranking(r, tmp_path / "out", title="test")
    rows = list(csv.DictReader(paths["csv"].open(encoding="utf-8")))
    assert [int(x["rank"]) for x in rows] == [1, 2, 3, 4, 5]
    assert float(rows[0]["ci95_low"]) <= float(rows[0]["rating"]) <= float(rows[0]["ci95_high"])
    assert rows[-1]["p_stronger_than_next"] == "" and 0 <= float(rows[0]["p_stronger_than_next"]) <= 1
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert doc["method"] == "posterior" and doc["scale"]["mean_rating"] == 1000 and "prior" in doc["settings"]
    assert len(doc["models"]) == 5 and doc["position"]["ci95_strength"][0] < doc["position"]["ci95_strength"][1]
    png = paths["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_rank_judgments_gives_the_table_its_document(tmp_path):
    from jleval.arena import rank_judgments

    _, js = tournament(4, 200, seed=6)
    jl = write_jsonl(tmp_path / "j.jsonl", [j.to_json() for j in js])
    doc = rank_judgments([jl], seed=3, n_bootstrap=100)
    json.dumps(doc)  # plain JSON
    by_model = {m["model"]: m for m in doc["models"]}
    assert set(by_model) == {f"model-{k:02d}" for k in range(4)}
    assert all(m["ci95"][0] <= m["rating"] <= m["ci95"][1] for m in by_model.values())
    assert doc["settings"]["seed"] == 3


@pytest.mark.parametrize("kwargs, needle", [
    ({"prior_sd": float("nan")}, "--prior-sd must be a number above 0 and at most"),
    ({"prior_sd": float("inf")}, "--prior-sd must be a number above 0 and at most"),
    ({"prior_sd": 0.0}, "--prior-sd must be a number above 0 and at most"),
    ({"prior_sd": 1e9}, "--prior-sd must be a number above 0 and at most"),
    ({"seed": -1}, "--seed must be"),
    ({"n_bootstrap": 10**9}, "--bootstrap must be"),
    ({"method": "posterior", "draws": 0}, "--draws must be"),
])
def test_settings_the_ranking_cannot_honour_are_refused(kwargs, needle):
    _, js = tournament(3, 60, seed=1)
    with pytest.raises(UsageError, match=needle):
        rank(js, **kwargs)


def test_cli_rank_refuses_non_finite_prior_and_negative_seed(tmp_path):
    import os
    import subprocess
    import sys

    _, js = tournament(3, 60, seed=1)
    jl = write_jsonl(tmp_path / "j.jsonl", [j.to_json() for j in js])
    for args, needle in ((["--prior-sd", "nan"], "--prior-sd"), (["--prior-sd", "inf"], "--prior-sd"),
                         (["--seed", "-1"], "--seed")):
        r = subprocess.run([sys.executable, "-m", "jleval.cli", "arena", "rank", str(jl), "--out",
                            str(tmp_path / "out"), *args], capture_output=True, text=True,
                           env={**os.environ, "COLUMNS": "200"})
        assert r.returncode != 0 and "Traceback" not in r.stderr and needle in r.stderr, r.stderr
        assert not (tmp_path / "out").exists()  # no arena.json with NaN in it


def test_arena_json_is_a_typed_record_read_back_by_its_reader(tmp_path):
    from jleval.records import ARENA_FORMAT, read_arena

    _, js = tournament(4, 200, seed=2)
    paths = write_ranking(rank(js, n_bootstrap=50), tmp_path / "out")

    def fail(reason):
        return UsageError(f"{paths['json']} {reason}")

    doc = read_arena(paths["json"], fail)
    assert doc["format"] == ARENA_FORMAT and len(doc["models"]) == 4 and doc["settings"]["prior_sd"] == 3.0
    doc["models"][0]["rating"] = None
    paths["json"].write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(UsageError, match=r"arena\.json field 'models\[0\]\.rating' must be a number, found null"):
        read_arena(paths["json"], fail)
