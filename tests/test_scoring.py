"""score_run on small synthetic run folders: aggregation, CIs, files written, and every bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jleval.errors import ScoreError
from jleval.scoring import TaskInfo, score_run, score_task

NLI_LABELS = ["entailment", "contradiction", "neutral"]


def _write_run(root: Path, tasks: dict[str, dict], outputs: dict[str, list[dict]], manifest_extra=None) -> Path:
    (root / "outputs").mkdir(parents=True, exist_ok=True)
    manifest = {"tasks": tasks, "split": "dev", "num_few_shots": 4, "max_num_samples": 100,
                "model": {"id": "test/model", "revision": "abc"}, "prompt_style": "basic", **(manifest_extra or {})}
    (root / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    for task, rows in outputs.items():
        with open(root / "outputs" / f"{task}.jsonl", "w", encoding="utf-8") as f:
            for i, row in enumerate(rows):
                rec = {"id": i, "key": f"k{i}", "input": "入力", "finish_reason": "stop", "prompt_tokens": 10,
                       "completion_tokens": 2, "latency_s": 0.1, "error": None, **row}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return root


def _rows(pairs):
    return [{"gold": g, "generation": p} for p, g in pairs]


def _nli(n_right: int, n: int) -> list[dict]:
    return _rows([("entailment" if i < n_right else "neutral", "entailment") for i in range(n)])


def _task(category, star, metrics, labels=(), n=None):
    t = {"category": category, "star_metric": star, "metrics": list(metrics), "label_list": list(labels)}
    if n is not None:
        t["n_samples"] = n
    return t


@pytest.fixture
def small_run(tmp_path):
    tasks = {
        "nli_a": _task("NLI", "exact_match", ["exact_match"], NLI_LABELS, 10),
        "nli_b": _task("NLI", "exact_match", ["exact_match"], NLI_LABELS, 10),
        "qa_a": _task("QA", "char_f1", ["char_f1"], (), 4),
        "sts_a": _task("STS", None, ["pearson", "spearman"], (), 5),
    }
    outputs = {
        "nli_a": _nli(8, 10),
        "nli_b": _nli(4, 10),
        "qa_a": _rows([("東京", "東京都"), ("ダイ・ハード", "ダイハード"), ("YES", "yes"), ("", "x")]),
        "sts_a": _rows([("1", "1.0"), ("2", "2.2"), ("3", "2.8"), ("4", "4.1"), ("5", "4.9")]),
    }
    return _write_run(tmp_path / "run", tasks, outputs)


def test_scores_and_aggregation(small_run):
    s = score_run(small_run, n_bootstrap=200, seed=0)
    assert s["tasks"]["nli_a"]["metrics"]["exact_match"]["value"] == 0.8
    assert s["tasks"]["nli_b"]["metrics"]["exact_match"]["value"] == 0.4
    qa = s["tasks"]["qa_a"]["metrics"]["char_f1"]["value"]
    assert qa == pytest.approx((0.80 + 0.91 + 1.0 + 0.0) / 4)
    assert s["categories"]["NLI"]["value"] == pytest.approx(0.6)
    assert s["categories"]["QA"]["value"] == pytest.approx(qa)
    assert s["avg"]["value"] == pytest.approx((0.6 + qa) / 2)
    assert s["avg"]["complete"] is False and set(s["avg"]["categories"]) == {"NLI", "QA"}
    # partial run: the missing categories are named, and the upstream-style AVG counts them as 0, labelled
    assert {"RC", "MC", "EL", "FA", "MR", "MT", "HE", "CG", "SUM"} <= set(s["missing_categories"])
    assert s["avg_upstream"]["value"] == pytest.approx((0.6 + qa) / 11)
    assert "counted as 0" in s["avg_upstream"]["note"]
    # STS (no ⭐ metric) is scored per task but stays outside the categories and AVG
    assert "STS" not in s["categories"] and "STS" not in s["avg"]["categories"]
    assert s["tasks"]["sts_a"]["metrics"]["pearson"]["value"] > 0.95
    # out-of-label rate for tasks with labels only
    assert s["tasks"]["nli_a"]["out_of_label"]["rate"] == 0.0
    assert "out_of_label" not in s["tasks"]["qa_a"]
    # every metric has n, a CI around its value and a signature
    for t in s["tasks"].values():
        for m in t["metrics"].values():
            assert m["n"] > 0 and m["signature"].startswith("metric:")
            lo, hi = m["ci95"]
            assert lo <= m["value"] + 1e-9 and m["value"] - 1e-9 <= hi
    lo, hi = s["avg"]["ci95"]
    assert lo < s["avg"]["value"] < hi


def test_files_written(small_run):
    s = score_run(small_run, n_bootstrap=50)
    on_disk = json.loads((small_run / "scores.json").read_text(encoding="utf-8"))
    assert on_disk["tasks"].keys() == s["tasks"].keys() and on_disk["profile"] == "llm-jp-eval-1.4.1"
    lines = (small_run / "scores" / "qa_a.jsonl").read_text(encoding="utf-8").splitlines()
    recs = [json.loads(x) for x in lines]
    assert [r["id"] for r in recs] == [0, 1, 2, 3]
    assert [r["scores"]["char_f1"] for r in recs] == [0.8, 0.91, 1.0, 0.0]
    sts = [json.loads(x) for x in (small_run / "scores" / "sts_a.jsonl").read_text().splitlines()]
    assert sts[0]["scores"]["pearson"] is None  # corpus-level metric: no per-sample value
    assert not list(small_run.glob("**/*.tmp"))


def test_bootstrap_is_seeded_and_paired_across_runs(small_run, tmp_path):
    a = score_run(small_run, n_bootstrap=200, seed=7, write=False)
    b = score_run(small_run, n_bootstrap=200, seed=7, write=False)
    c = score_run(small_run, n_bootstrap=200, seed=8, write=False)
    assert a["avg"]["ci95"] == b["avg"]["ci95"]
    assert a["avg"]["ci95"] != c["avg"]["ci95"]
    # the same task in another run folder is resampled with the same indices (paired comparisons)
    other = _write_run(tmp_path / "other", {"nli_a": _task("NLI", "exact_match", ["exact_match"], NLI_LABELS)},
                       {"nli_a": _nli(8, 10)})
    d = score_run(other, n_bootstrap=200, seed=7, write=False)
    assert d["tasks"]["nli_a"]["metrics"]["exact_match"]["ci95"] == \
        a["tasks"]["nli_a"]["metrics"]["exact_match"]["ci95"]


def test_ci_coverage_on_simulated_data():
    """95% intervals of a mean-of-samples metric cover the true accuracy in about 95% of simulated runs."""
    rng = np.random.default_rng(123)
    true_p, n, trials, covered = 0.6, 100, 300, 0
    info = TaskInfo("sim", "NLI", "exact_match", ("exact_match",), (), None, None)
    from jleval.scoring import Sample

    for t in range(trials):
        hits = rng.random(n) < true_p
        samples = [Sample(i, None, "", "a", "a" if h else "b", None) for i, h in enumerate(hits)]
        entry, _, _ = score_task(info, samples, "llm-jp-eval-1.4.1", 400, t, [])
        lo, hi = entry["metrics"]["exact_match"]["ci95"]
        covered += lo <= true_p <= hi
    assert 0.90 <= covered / trials <= 0.99


def test_avg_ci_uses_the_same_replicate_across_tasks(small_run):
    """AVG's interval comes from per-replicate category means; it is narrower than the categories' own."""
    s = score_run(small_run, n_bootstrap=500, seed=1, write=False)

    def w(ci):
        return ci[1] - ci[0]

    assert w(s["avg"]["ci95"]) < max(w(s["categories"]["NLI"]["ci95"]), w(s["categories"]["QA"]["ci95"]))


def test_truncated_last_line_is_skipped_with_a_warning(small_run):
    with open(small_run / "outputs" / "nli_a.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": 10, "gold": "entailment", "gener')
    s = score_run(small_run, n_bootstrap=20)
    assert s["tasks"]["nli_a"]["n"] == 10
    assert any("truncated" in w for w in s["warnings"])


def test_truncated_multibyte_last_line_is_skipped(small_run):
    path = small_run / "outputs" / "qa_a.jsonl"
    data = path.read_bytes() + '{"id": 4, "gold": "東'.encode()[:-1]  # cut inside a UTF-8 character
    path.write_bytes(data)
    s = score_run(small_run, n_bootstrap=20)
    assert s["tasks"]["qa_a"]["n"] == 4


def test_corrupt_middle_line_is_a_clear_error(small_run):
    path = small_run / "outputs" / "nli_a.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] = "{not json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ScoreError, match=r"nli_a\.jsonl:4: corrupt line"):
        score_run(small_run)


def test_run_folder_without_outputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScoreError, match="has no outputs"):
        score_run(tmp_path / "empty")
    with pytest.raises(ScoreError, match="does not exist"):
        score_run(tmp_path / "nowhere")


def test_bad_manifest_is_a_clear_error(small_run):
    (small_run / "manifest.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(ScoreError, match="manifest.json is not valid JSON"):
        score_run(small_run)


def test_task_missing_from_manifest(small_run):
    # a known task (tasks/jamp.toml) with outputs but no manifest entry: scored from its task file, with a warning
    _write_run(small_run, json.loads((small_run / "manifest.json").read_text())["tasks"],
               {"jamp": _nli(3, 4), "mystery_task": _nli(1, 2)})
    s = score_run(small_run, n_bootstrap=20)
    assert s["tasks"]["jamp"]["metrics"]["exact_match"]["value"] == 0.75
    assert s["tasks"]["jamp"]["category"] == "NLI"
    assert any("not in the manifest" in w for w in s["warnings"])
    # an unknown task with no manifest entry is skipped, not a crash
    assert "mystery_task" in s["skipped_tasks"]


def test_manifest_task_without_outputs_is_reported(small_run):
    m = json.loads((small_run / "manifest.json").read_text())
    m["tasks"]["never_ran"] = _task("RC", "char_f1", ["char_f1"])
    (small_run / "manifest.json").write_text(json.dumps(m))
    s = score_run(small_run, n_bootstrap=20)
    assert "never_ran" in s["skipped_tasks"]
    assert "RC" in s["missing_categories"]


def test_error_samples_are_excluded_and_counted(tmp_path):
    rows = _nli(3, 4) + [{"gold": "entailment", "generation": None, "error": "backend timeout"}]
    run = _write_run(tmp_path / "r", {"t": _task("NLI", "exact_match", ["exact_match"], NLI_LABELS, 5)},
                     {"t": rows})
    s = score_run(run, n_bootstrap=20)
    t = s["tasks"]["t"]
    assert (t["n"], t["n_errors"]) == (4, 1)
    assert t["metrics"]["exact_match"]["value"] == 0.75
    assert any("generation error" in w for w in s["warnings"])
    recs = [json.loads(x) for x in (run / "scores" / "t.jsonl").read_text().splitlines()]
    assert recs[-1]["error"] == "backend timeout"


def test_all_samples_errored(tmp_path):
    rows = [{"gold": "a", "generation": "", "error": "oom"}] * 3
    run = _write_run(tmp_path / "r", {"t": _task("NLI", "exact_match", ["exact_match"], NLI_LABELS)}, {"t": rows})
    s = score_run(run, n_bootstrap=20)
    m = s["tasks"]["t"]["metrics"]["exact_match"]
    assert m["value"] is None and "no samples" in m["reason"]
    assert "NLI" in s["missing_categories"] and s["avg"] is None


def test_empty_generations_and_constant_pearson(tmp_path):
    tasks = {"qa": _task("QA", "char_f1", ["char_f1", "exact_match"]),
             "sts": _task("STS", None, ["pearson", "spearman"])}
    outputs = {"qa": _rows([("", "東京"), ("", "大阪")]),
               "sts": _rows([("3", "1.0"), ("3", "2.0"), ("3", "4.5")])}
    s = score_run(_write_run(tmp_path / "r", tasks, outputs), n_bootstrap=50)
    assert s["tasks"]["qa"]["metrics"]["char_f1"]["value"] == 0.0
    assert s["tasks"]["qa"]["n_empty"] == 2
    assert s["tasks"]["sts"]["metrics"]["pearson"]["value"] == 0.0  # NaN -> 0, as upstream
    assert s["tasks"]["sts"]["metrics"]["spearman"]["value"] == 0.0
    assert "undefined when every prediction is the same" in s["tasks"]["sts"]["metrics"]["pearson"]["note"]
    assert any("sts: pearson is undefined" in w for w in s["warnings"])


def test_non_string_gold_or_generation_is_named(tmp_path):
    run = _write_run(tmp_path / "r", {"t": _task("NLI", "exact_match", ["exact_match"], NLI_LABELS)},
                     {"t": [{"gold": None, "generation": "entailment"}]})
    with pytest.raises(ScoreError, match=r"t.jsonl:1: 'gold' and 'generation' must be strings"):
        score_run(run, n_bootstrap=10)


def test_absent_optional_dependency_is_not_computed_never_zero(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "comet" else real(name, *a))
    tasks = {"mt": _task("MT", "comet_wmt22", ["bleu_ja", "comet_wmt22"]),
             "nli": _task("NLI", "exact_match", ["exact_match"], NLI_LABELS)}
    outputs = {"mt": _rows([("東京に行った。", "東京へ行った。")] * 3), "nli": _nli(1, 2)}
    s = score_run(_write_run(tmp_path / "r", tasks, outputs), n_bootstrap=20)
    comet = s["tasks"]["mt"]["metrics"]["comet_wmt22"]
    assert comet["value"] is None and "not installed" in comet["reason"]
    assert s["tasks"]["mt"]["metrics"]["bleu_ja"]["value"] > 0
    assert "comet_wmt22 not computed" in s["missing_categories"]["MT"]
    assert s["avg"]["categories"] == ["NLI"]


def test_code_metric_without_its_module_is_not_computed(tmp_path):
    tasks = {"mbpp": _task("CG", "code_exec", ["code_exec", "pylint_check"])}
    run = _write_run(tmp_path / "r", tasks, {"mbpp": _rows([("def f():\n    return 1", "['assert f() == 1']")])})
    s = score_run(run, n_bootstrap=10)  # whether or not the code-execution module exists yet: no traceback
    for m in s["tasks"]["mbpp"]["metrics"].values():
        assert (m["value"] is None) == ("reason" in m)


def test_jleval_profile_and_unknown_profile(small_run):
    from jleval.errors import UsageError

    s = score_run(small_run, profile="jleval", n_bootstrap=20)
    assert s["profile"] == "jleval"
    assert "profile:jleval" in s["tasks"]["qa_a"]["metrics"]["char_f1"]["signature"]
    with pytest.raises(UsageError):
        score_run(small_run, profile="v9")


def test_duplicate_ids_keep_the_last_line(tmp_path):
    run = _write_run(tmp_path / "r", {"t": _task("NLI", "exact_match", ["exact_match"], NLI_LABELS)},
                     {"t": _nli(1, 2)})
    with open(run / "outputs" / "t.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": 1, "gold": "entailment", "generation": "entailment", "error": None}) + "\n")
    s = score_run(run, n_bootstrap=10)
    assert s["tasks"]["t"]["metrics"]["exact_match"]["value"] == 1.0
    assert any("more than once" in w for w in s["warnings"])


def test_print_summary_renders(small_run):
    from rich.console import Console

    from jleval.render.console import print_scores

    console = Console(record=True, width=120)
    s = score_run(small_run, n_bootstrap=20, write=False)
    print_scores(s, small_run, console=console)
    text = console.export_text()
    assert "AVG" in text and "NLI" in text and "missing" in text and "qa_a" in text


@pytest.mark.rawdata
def test_scores_a_run_made_by_jleval_run(raw_dir, tmp_path):
    """End to end: `jleval run` (oracle and majority baselines) on jamp, then score_run on its folder."""
    from jleval.jaster.preprocess import preprocess
    from jleval.run import RunOptions, run
    from jleval.tasks import get_task

    data = tmp_path / "jaster"
    preprocess([get_task("jamp")], data, raw_dir=raw_dir)
    common = dict(tasks="jamp", data_dir=data, out=tmp_path / "runs", max_num_samples=30)
    oracle = run(RunOptions(model="oracle", backend="oracle", run_name="oracle", **common)).run_dir
    s = score_run(oracle, n_bootstrap=100)
    jamp = s["tasks"]["jamp"]
    assert jamp["n"] == 30 and jamp["metrics"]["exact_match"]["value"] == 1.0
    assert jamp["out_of_label"]["rate"] == 0.0
    assert s["categories"]["NLI"]["tasks"] == ["jamp"]
    majority = run(RunOptions(model="majority", backend="majority", run_name="majority", **common)).run_dir
    m = score_run(majority, n_bootstrap=100)["tasks"]["jamp"]["metrics"]["exact_match"]
    assert 0.0 < m["value"] < 1.0 and m["ci95"][0] <= m["value"] <= m["ci95"][1]


def test_star_metric_not_among_metrics_is_a_warning_not_a_crash(tmp_path):
    # manifest lists only bleu_ja; the task file (if any) would name comet_wmt22 as ⭐
    tasks = {"t": {"category": "MT", "metrics": ["bleu_ja"], "star_metric": "comet_wmt22"}}
    s = score_run(_write_run(tmp_path / "r", tasks, {"t": _rows([("東京", "東京")] * 2)}), n_bootstrap=10)
    assert s["tasks"]["t"]["metrics"]["bleu_ja"]["value"] is not None
    assert "MT" in s["missing_categories"]
    assert any("not among the metrics" in w for w in s["warnings"])


def test_signatures_name_the_extraction_that_ran(tmp_path):
    """A task's own extraction pattern (jleval profile) and a CoT run's answer extraction change the numbers, so
    they are part of every signature; a task only the manifest defines is scored in a CoT run too."""
    from jleval.cot import EXTRACTION_VERSION

    t = {**_task("NLI", "exact_match", ["exact_match"], NLI_LABELS), "options": {"answer_extract_pattern": "<a>(.*?)</a>"}}
    run = _write_run(tmp_path / "pat", {"mytask": t}, {"mytask": _rows([("理由<a>entailment</a>", "entailment")])})
    sig = score_run(run, profile="jleval", n_bootstrap=10)["tasks"]["mytask"]["metrics"]["exact_match"]
    assert sig["value"] == 1.0 and "post:extract:re:<a>(.*?)</a>+nfkc+strip" in sig["signature"]

    cot_run = _write_run(tmp_path / "cot", {"mytask": _task("NLI", "exact_match", ["exact_match"], NLI_LABELS)},
                         {"mytask": _rows([("考える。\n答え：entailment", "entailment"), ("わからない", "neutral")])},
                         {"prompt_style": "cot"})
    s = score_run(cot_run, n_bootstrap=10)["tasks"]["mytask"]
    assert s["metrics"]["exact_match"]["value"] == 0.5 and s["cot_extraction"]["failed"] == 1
    assert f"post:cot-extract-{EXTRACTION_VERSION}+cut-blank-line" in s["metrics"]["exact_match"]["signature"]
    basic = score_run(_write_run(tmp_path / "basic", {"mytask": _task("NLI", "exact_match", ["exact_match"],
                                                                          NLI_LABELS)},
                                 {"mytask": _nli(1, 2)}), n_bootstrap=10)
    assert "cot-extract" not in basic["tasks"]["mytask"]["metrics"]["exact_match"]["signature"]


# ----- scores.json and scores/ replaced as one unit; merge by task; options refused up front (issues 16, 17) ------

def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()
            and p.parts[len(run.parts)] in ("scores", "scores.json")}


def test_every_per_sample_line_names_its_profile_and_scores_json_names_each_file(small_run):
    from jleval.fsutil import sha256_file
    from jleval.scoring import per_sample_consistent

    s = score_run(small_run, profile="jleval", n_bootstrap=20)
    for task, entry in s["tasks"].items():
        path = small_run / "scores" / f"{task}.jsonl"
        assert {json.loads(x)["profile"] for x in path.read_text(encoding="utf-8").splitlines()} == {"jleval"}
        assert entry["per_sample_sha256"] == sha256_file(path)
    assert per_sample_consistent(small_run, s)


def test_a_failure_mid_scoring_never_leaves_a_mix_a_reader_would_use(small_run, monkeypatch):
    """A disk-full after scores/ was swapped but before scores.json was replaced (the kill -9 window), and a
    disk-full after half of the per-sample files: the previous scores stay or the reader sees the mismatch."""
    import os

    from jleval import scoring, table
    from jleval.errors import OutputError

    score_run(small_run, n_bootstrap=30)  # llm-jp-eval-1.4.1
    before = _files(small_run)

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:  # 1. fails writing scores.json: scores/ is already the jleval profile's
        m.setattr(scoring, "atomic_write_json", full)
        with pytest.raises(OutputError, match="No space left"):
            score_run(small_run, profile="jleval", n_bootstrap=30)
    stored = json.loads((small_run / "scores.json").read_bytes())
    assert stored["profile"] == "llm-jp-eval-1.4.1"
    assert '"profile": "jleval"' in (small_run / "scores" / "qa_a.jsonl").read_text(encoding="utf-8")  # the mix
    assert not scoring.per_sample_consistent(small_run, stored)
    run = table.load_run(small_run)  # the reader notices and scores in memory with the stored profile
    assert run.scores["profile"] == "llm-jp-eval-1.4.1"
    assert run.per_sample["qa_a"][1]["char_f1"] == 0.91  # llm-jp-eval-1.4.1's rounded char_f1, not jleval's
    assert (small_run / "scores.json").read_bytes() == before["scores.json"]  # the reader wrote nothing

    score_run(small_run, n_bootstrap=30)
    before = _files(small_run)
    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync_then_full(fd):
        calls["n"] += 1
        if calls["n"] == 3:  # the third per-sample file of four
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    with monkeypatch.context() as m:  # 2. fails after half the per-sample files: nothing changes
        m.setattr(os, "fsync", fsync_then_full)
        with pytest.raises(OutputError, match="No space left"):
            score_run(small_run, profile="jleval", n_bootstrap=30)
    assert _files(small_run) == before
    assert not list(small_run.glob(".scores.new-*")) and not list(small_run.glob(".scores.old-*"))


def test_two_writers_at_once_leave_one_consistent_scoring(small_run):
    """Two scorings of one run at the same moment (two `jleval table` on an unscored run): the writers take
    turns, and what is left is one whole scoring, never halves of both."""
    import threading

    from jleval.scoring import per_sample_consistent

    errors = []

    def go(profile):
        try:
            score_run(small_run, profile=profile, n_bootstrap=20)
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=go, args=(p,)) for p in ("jleval", "llm-jp-eval-1.4.1", "jleval")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stored = json.loads((small_run / "scores.json").read_text(encoding="utf-8"))
    assert per_sample_consistent(small_run, stored)
    lines = (small_run / "scores" / "qa_a.jsonl").read_text(encoding="utf-8").splitlines()
    assert {json.loads(x)["profile"] for x in lines} == {stored["profile"]}


def test_score_tasks_merges_into_scores_json_by_task(small_run):
    full = score_run(small_run, n_bootstrap=40, seed=3)
    part = score_run(small_run, n_bootstrap=40, seed=3, tasks=["nli_a"])
    assert set(part["tasks"]) == set(full["tasks"])  # never narrows what `table` needs
    on_disk = json.loads((small_run / "scores.json").read_text(encoding="utf-8"))
    for key in ("tasks", "categories", "avg", "avg_upstream"):
        assert on_disk[key] == full[key], key  # kept tasks and the rebuilt replicates give the same CIs
    assert set(on_disk["tasks"]) == {"nli_a", "nli_b", "qa_a", "sts_a"}
    view = score_run(small_run, n_bootstrap=40, seed=3, tasks=["nli_a"], write=False)  # an in-memory subset
    assert set(view["tasks"]) == {"nli_a"}


def test_a_kept_task_whose_answers_hold_a_unicode_line_separator_is_read_back(tmp_path):
    # U+2028 is written as it is (ensure_ascii=False): only "\n" ends a line of scores/<task>.jsonl
    tasks = {"qa_a": _task("QA", "char_f1", ["char_f1"], (), 2), "qa_b": _task("QA", "char_f1", ["char_f1"], (), 2)}
    run = _write_run(tmp_path / "run", tasks, {"qa_a": _rows([("東\u2028京", "東京"), ("x", "x")]),
                                               "qa_b": _rows([("a", "a"), ("b", "c")])})
    full = score_run(run, n_bootstrap=20, seed=1)
    part = score_run(run, n_bootstrap=20, seed=1, tasks=["qa_b"])  # qa_a is kept from the first scoring
    assert part["tasks"]["qa_a"] == full["tasks"]["qa_a"]
    assert part["categories"] == full["categories"]
    kept = (run / "scores" / "qa_a.jsonl").read_text(encoding="utf-8").split("\n")
    assert json.loads(kept[0])["pred"] == "東\u2028京"


@pytest.mark.parametrize("kwargs, needle", [({"n_bootstrap": 10**9}, "--bootstrap must be"),
                                            ({"n_bootstrap": -1}, "--bootstrap must be"),
                                            ({"seed": -1}, "--seed must be")])
def test_options_scoring_cannot_honour_are_refused(small_run, kwargs, needle):
    from jleval.errors import UsageError

    with pytest.raises(UsageError, match=needle):
        score_run(small_run, **kwargs)
    assert not (small_run / "scores.json").exists()


def _jleval(*args) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jleval.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})


def test_cli_score_bad_options_are_one_line_errors(small_run):
    for args, needle in ((["--bootstrap", "1000000000"], "--bootstrap"), (["--seed", "-1"], "--seed")):
        r = _jleval("score", small_run, *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr  # a usage error (ours or the CLI's)
        assert needle in r.stderr and not (small_run / "scores.json").exists()


def test_wrongly_typed_scores_json_is_one_line_error_naming_the_field(small_run):
    score_run(small_run, n_bootstrap=10)
    s = json.loads((small_run / "scores.json").read_text(encoding="utf-8"))
    s["tasks"]["nli_a"]["metrics"]["exact_match"]["value"] = "0.8"
    (small_run / "scores.json").write_text(json.dumps(s), encoding="utf-8")
    r = _jleval("table", small_run, "--out", small_run.parent / "lb.csv")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr  # the run is left out, named with why
    assert "tasks.nli_a.metrics.exact_match.value" in r.stderr and "scores.json" in r.stderr
    assert not (small_run.parent / "lb.csv").exists()
    r = _jleval("score", small_run, "--tasks", "qa_a", "--bootstrap", "10")  # replaces it: every task scored again
    assert r.returncode == 0, r.stderr
    s = json.loads((small_run / "scores.json").read_text(encoding="utf-8"))
    assert s["tasks"]["nli_a"]["metrics"]["exact_match"]["value"] == 0.8 and set(s["tasks"]) >= {"nli_a", "qa_a"}
