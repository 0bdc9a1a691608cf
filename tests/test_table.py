"""`jleval table` and `--compare-styles` on constructed runs with known differences, plus one real tiny-model
run on CPU: columns, values against scores.json, refusal of mixed runs, significance marks, HTML and PNGs."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from jleval.errors import UsageError
from jleval.render.files import write_leaderboard
from jleval.tasks import get_task

TASKS = {"jamp": ["entailment", "contradiction", "neutral"], "jcommonsenseqa": ["0", "1", "2", "3", "4"],
         "jmmlu": ["A", "B", "C", "D"]}


def make_run(root: Path, name: str, accuracy: float, n: int = 200, seed: int = 0, model: str | None = None,
             style: str = "basic", shots: int = 4, split: str = "dev", task_labels: dict | None = None,
             template: str = "v1.4.1", settings: dict | None = None) -> Path:
    """A run folder whose outputs are right on a known share of samples (the same samples for the same seed)."""
    run = root / name
    (run / "outputs").mkdir(parents=True)
    tasks = {}
    for task, labels in (task_labels or TASKS).items():
        spec = get_task(task)
        rng = random.Random(f"{seed}-{task}")
        golds = [rng.choice(labels) for _ in range(n)]
        right = set(random.Random(f"right-{task}").sample(range(n), int(round(accuracy * n))))
        lines = []
        for i, g in enumerate(golds):
            wrong = labels[(labels.index(g) + 1) % len(labels)]
            text = g if i in right else wrong
            if style == "cot":
                text = ("まず考えます。\n" + (f"答え：{text}" if i % 10 else "わかりません"))
            lines.append(json.dumps({"id": i, "key": f"{task}-{i}", "input": f"q{i}", "gold": g, "generation": text,
                                     "finish_reason": "stop", "error": None}, ensure_ascii=False))
        (run / "outputs" / f"{task}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        tasks[task] = {"category": spec.category, "metrics": list(spec.metrics), "star_metric": spec.star_metric,
                       "label_list": list(spec.label_list), "n_samples": n}
    manifest = {"jleval_version": "0.1.0", "created_at": "2026-11-23T00:00:00+00:00",
                "model": {"id": model or name, "revision": None}, "split": split, "num_few_shots": shots,
                "max_num_samples": n, "prompt_style": style, "template": template, "tasks": tasks,
                "settings": {"backend": "synthetic", **(settings or {})}, "backend": {"backend": "synthetic", "engine_version": "0"}}
    (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return run


def test_leaderboard_columns_values_and_significance(tmp_path):
    import pandas as pd

    from jleval import table

    strong = make_run(tmp_path, "strong", 0.9)
    weak = make_run(tmp_path, "weak", 0.5)
    twin = make_run(tmp_path, "strong-twin", 0.9)
    lb = table.build([weak, twin, strong])
    paths = write_leaderboard(lb, tmp_path / "out" / "leaderboard.csv")
    df = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert list(df.columns[:7]) == ["rank", "run", "model", "revision", "AVG", "AVG_ci_low", "AVG_ci_high"]
    assert list(df.columns[7:10]) == ["NLI", "NLI_ci_low", "NLI_ci_high"]
    assert "jamp_exact_match" in df.columns and "jamp_out_of_label" in df.columns
    assert df.columns.get_loc("jamp_exact_match") < df.columns.get_loc("jamp_out_of_label")
    assert list(df["rank"]) == [1, 2, 3] and df["run"].iloc[2] == "weak"
    # values equal scores.json
    scores = json.loads((strong / "scores.json").read_text(encoding="utf-8"))
    row = df[df["run"] == "strong"].iloc[0]
    assert row["AVG"] == pytest.approx(scores["avg"]["value"], abs=1e-4)
    assert row["NLI"] == pytest.approx(scores["categories"]["NLI"]["value"], abs=1e-4)
    assert row["jamp_exact_match"] == pytest.approx(0.9, abs=1e-4)
    assert row["AVG_ci_low"] < row["AVG"] < row["AVG_ci_high"]
    # missing categories are empty cells, never 0
    assert pd.isna(row["RC"]) and pd.isna(row["CG"])
    # identical models: not better beyond noise; strong vs weak: better
    by_run = {r["run"]: r for r in lb.rows}
    first = lb.rows[0]["run"]
    assert by_run[first]["better_than_next"] == "no"
    assert by_run[lb.rows[1]["run"]]["better_than_next"] == "yes"
    assert by_run["weak"]["better_than_next"] is None
    # the HTML page and the charts
    html = (tmp_path / "out" / "leaderboard.html").read_text(encoding="utf-8")
    assert "<table" in html and "sortBy" in html and "http" not in html.split("<body>")[1]
    from PIL import Image

    for name in ("leaderboard.radar.png", "leaderboard.avg_ci.png"):
        p = tmp_path / "out" / name
        assert p in paths
        with Image.open(p) as im:
            assert im.size[0] > 300 and im.size[1] > 200
        assert p.stat().st_size > 5000
    md = (tmp_path / "out" / "leaderboard.md").read_text(encoding="utf-8")
    assert md.count("\n| ") >= 3
    # every drawing of the table names the scoring profile (the CSV in its profile column)
    assert "Profile: llm-jp-eval-1.4.1." in md and "Profile: llm-jp-eval-1.4.1." in html
    assert set(df["profile"]) == {"llm-jp-eval-1.4.1"}


def test_a_tie_ranks_the_default_group_and_mixed_ranks_all(tmp_path):
    from jleval import table

    a = make_run(tmp_path, "a", 0.8, shots=4)
    b = make_run(tmp_path, "b", 0.8, shots=0)
    # two groups of one run each: the one with the leaderboard's default settings (4 shots) is ranked, whatever
    # the order given, and the table says why and names the other run
    for given in ([a, b], [b, a]):
        lb = table.build(given)
        assert [r["run"] for r in lb.rows] == ["a"] and lb.group == "dev-4shot-basic-n200-3tasks"
        assert lb.notes[0].startswith("2 groups tie for the largest (1 run each): ranked dev-4shot-basic-n200-3tasks "
                                      "(the leaderboard's default settings); the others differ in num_few_shots")
        assert [(x.run, x.reason.split(":")[0]) for x in lb.left_out] == [
            (str(b), "other settings than the ranked group (num_few_shots 0)")]
    lb = table.build([a, b], allow_mixed=True)
    assert lb.mixed == ["num_few_shots"] and any("MIXED" in n for n in lb.notes)
    assert all(r["mixed"] == "num_few_shots" for r in lb.rows)


def test_bad_inputs(tmp_path):
    from typer.testing import CliRunner

    from jleval import table
    from jleval.cli import app

    not_run = tmp_path / "empty"
    not_run.mkdir()
    with pytest.raises(UsageError, match="no run to rank: .*empty: an empty folder"):
        table.build([not_run])
    a = make_run(tmp_path / "x", "same", 0.8)
    b = make_run(tmp_path / "y", "same", 0.7)
    with pytest.raises(UsageError, match="same name: same"):
        table.build([a, b])
    with pytest.raises(UsageError, match="cannot sort by"):
        table.build([a], sort="nope")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    r = CliRunner().invoke(app, ["table", str(a), "--out", str(blocker / "lb.csv")])
    assert r.exit_code != 0 and "cannot write" in str(r.exception) and str(blocker) in str(r.exception)
    # nothing of the table was written anywhere (no half set of csv/md/html/png), the blocker is untouched
    after = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.parent.name not in ("scores",)
                   and p.name != "scores.json")
    assert [p for p in after if p not in before] == [] and blocker.read_text() == "x"


def test_cli_table_writes_files(tmp_path):
    import subprocess
    import sys

    a = make_run(tmp_path, "a", 0.8)
    b = make_run(tmp_path, "b", 0.6)
    r = subprocess.run([sys.executable, "-m", "jleval.cli", "table", str(a), str(b), "--out",
                        str(tmp_path / "lb" / "leaderboard.csv")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "lb" / "leaderboard.csv").is_file() and (tmp_path / "lb" / "leaderboard.html").is_file()
    r = subprocess.run([sys.executable, "-m", "jleval.cli", "table", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "a folder of runs, not a run" in r.stderr and "/* to table" in r.stderr and "Traceback" not in r.stderr


def test_compare_styles_shows_the_known_difference(tmp_path):
    from jleval.compare import compare_styles

    basic = make_run(tmp_path, "basic", 0.5, model="m")
    cot = make_run(tmp_path, "cot", 0.9, model="m", style="cot")
    res = compare_styles(basic, cot)
    rows = {(r["level"], r["name"]): r for r in res["rows"]}
    jamp = rows[("task", "jamp")]
    # CoT is right on 90% of the samples but every 10th output has no answer marker: 0.9 - 0.1 extraction misses
    assert jamp["basic"] == pytest.approx(0.5)
    assert jamp["extraction_failure_rate"] == pytest.approx(0.1)
    assert jamp["cot"] == pytest.approx(jamp["basic"] + jamp["diff"])
    assert jamp["diff"] > 0 and jamp["significant"] and jamp["diff_ci_low"] > 0
    nli = rows[("category", "NLI")]
    assert (nli["diff"], nli["diff_ci_low"], nli["diff_ci_high"]) == (jamp["diff"], jamp["diff_ci_low"],
                                                                      jamp["diff_ci_high"])
    with pytest.raises(UsageError, match="basic run then a cot run"):
        compare_styles(cot, basic)
    other = make_run(tmp_path, "other", 0.5, model="m2", style="cot")
    with pytest.raises(UsageError, match="more than the prompt style: model"):
        compare_styles(basic, other)


def test_compare_styles_uses_only_what_both_runs_have(tmp_path):
    """A category's basic and CoT values are taken over the same tasks and samples as its diff (a task without a
    CoT prompt is left out), and a task without a ⭐ metric (mgsm) still gets its row."""
    from jleval.compare import compare_styles

    both = {"jamp": TASKS["jamp"], "mgsm": ["12", "7", "30"]}
    basic = make_run(tmp_path, "basic", 0.5, model="m", task_labels={**both, "janli": ["entailment", "non-entailment"]})
    cot = make_run(tmp_path, "cot", 0.5, model="m", style="cot", task_labels=both)
    rows = {(r["level"], r["name"]): r for r in compare_styles(basic, cot)["rows"]}
    jamp, nli = rows[("task", "jamp")], rows[("category", "NLI")]
    assert nli["tasks"] == "jamp" and ("task", "janli") not in rows
    assert (nli["basic"], nli["cot"], nli["diff"]) == (jamp["basic"], jamp["cot"], jamp["diff"])
    assert nli["cot"] - nli["basic"] == pytest.approx(nli["diff"])
    mgsm = rows[("task", "mgsm")]
    assert mgsm["metric"] == "exact_match (no ⭐)" and mgsm["basic"] == pytest.approx(0.5)
    assert ("category", "MR") not in rows


def test_table_never_mixes_styles(tmp_path):
    from jleval import table

    basic = make_run(tmp_path, "basic", 0.5, model="m")
    cot = make_run(tmp_path, "cot", 0.9, model="m", style="cot")
    lb = table.build([cot, basic])  # a tie: the basic (default) style is ranked, the CoT run left out by name
    assert [r["run"] for r in lb.rows] == ["basic"] and not lb.mixed
    assert "prompt_style 'cot'" in lb.left_out[0].reason


def test_tiny_model_and_baselines_end_to_end(raw_dir, tiny_model, tmp_path):
    """Real runs on CPU: the tiny model, the oracle and the majority baseline, scored and tabled."""
    from jleval import table
    from jleval.run import RunOptions, run

    common = dict(tasks="jamp,jcommonsenseqa", raw_dir=raw_dir, data_dir=tmp_path / "jaster", out=tmp_path / "runs",
                  max_num_samples=8)
    dirs = [run(RunOptions(model=str(tiny_model), backend="hf", run_name="tiny", **common)).run_dir,
            run(RunOptions(model="oracle", backend="oracle", run_name="oracle", **common)).run_dir,
            run(RunOptions(model="majority", backend="majority", run_name="majority", **common)).run_dir]
    lb = table.build(dirs)
    assert lb.rows[0]["run"] == "oracle" and lb.rows[0]["AVG"] == pytest.approx(1.0)
    assert {r["run"] for r in lb.rows} == {"tiny", "oracle", "majority"}
    assert all(r["backend"] for r in lb.rows)


def _backend_like_hf(run: Path) -> None:
    """Make a run's manifest look like a real model run: settings.backend plus the backend's self-description."""
    m = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    m["settings"]["backend"] = "hf"
    m["backend"] = {"engine": "transformers", "engine_version": "5.0", "model": "x"}
    (run / "manifest.json").write_text(json.dumps(m), encoding="utf-8")


def test_backend_column_sorting_and_task_subsets(tmp_path):
    from jleval import table

    a, b = make_run(tmp_path, "a", 0.9), make_run(tmp_path, "b", 0.6)
    _backend_like_hf(a)
    _backend_like_hf(b)
    lb = table.build([a, b])
    assert {r["backend"] for r in lb.rows} == {"hf"} and {r["engine_version"] for r in lb.rows} == {"5.0"}
    # out-of-label rates: lower is better, so the run with fewer non-labels ranks first
    bad = make_run(tmp_path, "bad-labels", 0.9)
    path = bad / "outputs" / "jamp.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for r in rows[:50]:
        r["generation"] = "わからない"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    lb = table.build([bad, a], sort="jamp_out_of_label")
    assert [r["run"] for r in lb.rows] == ["a", "bad-labels"]
    with pytest.raises(UsageError, match="no run has a value in column 'RC'"):
        table.build([a, b], sort="RC")
    # --tasks: AVG, categories and ranks over those tasks only
    sub = table.build([a, b], tasks=["jamp"])
    assert sub.rows[0]["AVG"] == pytest.approx(sub.rows[0]["jamp_exact_match"])
    assert sub.rows[0]["MC"] is None and not any(c.startswith("jmmlu") for c in sub.columns)


def test_corrupt_and_empty_runs(tmp_path):
    from jleval import table
    from jleval.errors import ScoreError

    a, b = make_run(tmp_path, "a", 0.9), make_run(tmp_path, "b", 0.6)
    table.build([a, b])  # scores them
    (a / "scores.json").write_text("[]", encoding="utf-8")  # corrupt: re-scored
    assert table.build([a, b]).rows[0]["run"] == "a"
    (b / "manifest.json").write_text("{bad", encoding="utf-8")
    with pytest.raises(ScoreError, match="manifest.json is corrupt"):
        table.load_run(b)
    lb = table.build([a, b])  # a corrupt run is left out by name, the others are ranked
    assert [r["run"] for r in lb.rows] == ["a"]
    assert [(x.run, x.reason.split(" (")[0]) for x in lb.left_out] == [(str(b), f"{b / 'manifest.json'} is corrupt")]
    empty = make_run(tmp_path, "empty", 0.5)
    for f in (empty / "outputs").iterdir():
        f.write_text("", encoding="utf-8")
    lb = table.build([a, empty])
    assert [r["run"] for r in lb.rows] == ["a"] and "no task has scores" in lb.left_out[0].reason
    with pytest.raises(UsageError, match="no run to rank: .*empty: no task has scores"):
        table.build([empty])


def test_outputs_are_all_or_nothing_and_follow_the_extension(tmp_path):
    from jleval import table
    from jleval.errors import OutputError

    lb = table.build([make_run(tmp_path, "a", 0.9), make_run(tmp_path, "b", 0.6)])
    out = tmp_path / "o"
    (out / "lb.html").mkdir(parents=True)
    with pytest.raises(OutputError, match="lb.html: a folder of that name is in the way"):
        write_leaderboard(lb, out / "lb.csv")
    assert sorted(p.name for p in out.iterdir()) == ["lb.html"]  # no CSV, no chart, no temp file left
    paths = write_leaderboard(lb, tmp_path / "p" / "lb.md")
    assert "| rank | run |" in (tmp_path / "p" / "lb.md").read_text(encoding="utf-8")
    assert not (tmp_path / "p" / "lb.csv").exists() and tmp_path / "p" / "lb.radar.png" in paths


def test_arena_models_that_match_no_run_are_named(tmp_path):
    from jleval import table

    a, b = make_run(tmp_path, "a", 0.9), make_run(tmp_path, "b", 0.6)
    judgments = tmp_path / "j.jsonl"
    judgments.write_text("".join(json.dumps({"model_a": x, "model_b": y, "winner": w}) + "\n"
                                 for x, y, w in [("a", "zz", "a"), ("zz", "a", "b"), ("a", "zz", "tie")] * 3),
                         encoding="utf-8")
    lb = table.build([a, b], arena_judgments=[judgments])
    assert any("match no run" in n and "zz" in n for n in lb.notes)
    assert lb.rows[0]["arena_rating"] is not None


def test_compare_styles_cli_writes_the_asked_format_and_refuses_ignored_options(tmp_path):
    import subprocess
    import sys

    basic = make_run(tmp_path, "basic", 0.5, model="m")
    cot = make_run(tmp_path, "cot", 0.9, model="m", style="cot")
    cli = [sys.executable, "-m", "jleval.cli", "table", "--compare-styles", str(basic), str(cot)]
    r = subprocess.run(cli + ["--out", str(tmp_path / "cmp.md")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "| level | name |" in (tmp_path / "cmp.md").read_text(encoding="utf-8")
    r = subprocess.run(cli + ["--out", str(tmp_path / "cmp.json")], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads((tmp_path / "cmp.json").read_text(encoding="utf-8"))["rows"]
    r = subprocess.run(cli + ["--sort", "NLI"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "--sort do(es) not apply" in r.stderr


def test_table_profile_scores_in_memory_and_never_rewrites_scores_json(tmp_path):
    from jleval import table
    from jleval.render.console import print_leaderboard

    a, b = make_run(tmp_path, "a", 0.9), make_run(tmp_path, "b", 0.6)
    table.build([a, b])  # scores both with the default profile, written
    stored = {r: ((r / "scores.json").read_bytes(), (r / "scores" / "jamp.jsonl").read_bytes()) for r in (a, b)}
    lb = table.build([a, b], profile="jleval")
    assert {row["profile"] for row in lb.rows} == {"jleval"} and lb.profiles == "jleval"
    assert all(((r / "scores.json").read_bytes(), (r / "scores" / "jamp.jsonl").read_bytes()) == stored[r]
               for r in (a, b))
    plain = table.build([a, b])  # a later plain table: still the stored profile, and it says so
    assert plain.profiles == "llm-jp-eval-1.4.1"
    from rich.console import Console

    console = Console(record=True, width=200)
    print_leaderboard(plain, console=console)
    assert "(profile llm-jp-eval-1.4.1; sorted by AVG" in " ".join(console.export_text().split())


def test_leaderboard_json_is_a_typed_record_read_back_by_its_reader(tmp_path):
    from jleval import table
    from jleval.records import LEADERBOARD_FORMAT, read_leaderboard

    lb = table.build([make_run(tmp_path, "a", 0.9), make_run(tmp_path, "b", 0.6)])
    out = tmp_path / "lb.json"
    write_leaderboard(lb, out, charts=False)

    def fail(reason):
        return UsageError(f"{out} {reason}")

    doc = read_leaderboard(out, fail)
    assert doc["format"] == LEADERBOARD_FORMAT and [r["run"] for r in doc["rows"]] == ["a", "b"]
    assert doc["columns"] == lb.columns
    bad = json.loads(out.read_text(encoding="utf-8"))
    bad["rows"][1]["rank"] = "2"
    out.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(UsageError, match=r"lb\.json field 'rows\[1\]\.rank' must be an integer, found a string"):
        read_leaderboard(out, fail)


def test_table_without_out_says_where_it_wrote(tmp_path, monkeypatch):
    """No --out: the files go to leaderboard.* in the current folder (docs/leaderboard.md), each path printed in
    full, and a line says so."""
    from typer.testing import CliRunner

    from jleval.cli import app

    a, b = make_run(tmp_path, "a", 0.8, n=20), make_run(tmp_path, "b", 0.5, n=20)
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    r = CliRunner().invoke(app, ["table", str(a), str(b), "--group", "dev-4shot-basic-n20-3tasks", "--no-charts"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "here").iterdir()) == ["leaderboard.csv", "leaderboard.html",
                                                                     "leaderboard.md"]
    for name in ("leaderboard.csv", "leaderboard.md", "leaderboard.html"):
        assert f"wrote {tmp_path / 'here' / name}" in r.output.replace("\n", "")
    assert "no --out: wrote leaderboard.csv (and its companions) into the current folder" in r.output


def test_stored_per_sample_scores_with_a_line_separator_in_an_answer_are_read_back(tmp_path):
    """jleval writes U+2028 and U+0085 inside answers as they are (only "\\n" ends a line of scores/<task>.jsonl):
    a run scored earlier is read back whole, not left out as corrupt."""
    from jleval.table import load_run

    run = make_run(tmp_path, "a", 0.5, n=20, task_labels={"jamp": TASKS["jamp"]})
    path = run / "outputs" / "jamp.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows[0]["generation"], rows[1]["generation"] = "entail\u2028ment", "neu\x85tral"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    scored = load_run(run)  # scores the run and writes scores/
    assert "\u2028" in (run / "scores" / "jamp.jsonl").read_text(encoding="utf-8")
    stored = load_run(run, score_if_needed=False)  # reads scores/ back
    assert sorted(stored.per_sample["jamp"]) == list(range(20))
    assert stored.per_sample == scored.per_sample
