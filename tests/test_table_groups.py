"""`jleval table runs/*` over one runs/ folder as docs/quickstart.md builds it: basic 4-shot runs, a 0-shot run, a
CoT run, rakuda (arena) runs, a run with another --max-num-samples and the empty folder of a failed run. The table
ranks the largest group of comparable runs and names every run it leaves out; --group, --all-groups and arena-only
tables. Real runs of the baselines (and, in the slow walk-through, the tiny model) on the real raw data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASIC = {"tasks": "jamp,jcommonsenseqa", "max_num_samples": 6}


def _runs(root: Path, raw_dir: Path, tiny_model: Path | None = None) -> Path:
    """The quickstart's runs/ folder, built with the library's `run` (what `jleval run` calls)."""
    from jleval.run import RunOptions, run

    common = {"raw_dir": raw_dir, "data_dir": root / "jaster", "out": root / "runs"}
    plan = [("oracle", "oracle", BASIC), ("majority", "majority", BASIC),
            ("oracle_0shot", "oracle", {**BASIC, "num_few_shots": 0}),
            ("majority_cot", "majority", {**BASIC, "prompt_style": "cot"}),
            ("oracle_n3", "oracle", {**BASIC, "max_num_samples": 3}),
            ("oracle_rakuda", "oracle", {"tasks": "rakuda", "split": "test", "max_num_samples": 3}),
            ("majority_rakuda", "majority", {"tasks": "rakuda", "split": "test", "max_num_samples": 3})]
    if tiny_model is not None:
        plan.insert(0, ("tiny", str(tiny_model), {**BASIC, "backend": "hf"}))
    for name, model, opts in plan:
        run(RunOptions(model=model, **{"backend": model, **opts}, run_name=name, **common))
    (root / "runs" / "failed_run").mkdir()  # what a run that failed before it started leaves
    return root / "runs"


def _table(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`jleval table runs/* …` as a user types it (the shell expands the glob)."""
    runs = sorted(str(p.relative_to(cwd)) for p in (cwd / "runs").iterdir())
    return subprocess.run([sys.executable, "-m", "jleval.cli", "table", *runs, *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "200"})


def _judgments(path: Path) -> None:
    """The oracle's answers win 3 of 4 matches against the majority baseline's."""
    path.write_text("".join(json.dumps({"model_a": "oracle", "model_b": "majority", "winner": "a" if i % 4 else "b"})
                            + "\n" for i in range(16)), encoding="utf-8")


def _left_out_lines(stderr: str) -> dict[str, str]:
    return {line.split(": ", 1)[0].strip(): line.split(": ", 1)[1] for line in stderr.splitlines()
            if line.startswith("  runs/")}


def _check_walkthrough(root: Path, ranked: set[str]) -> None:
    r = _table(root, "--out", "lb/leaderboard.csv")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    lb = (root / "lb" / "leaderboard.csv").read_text(encoding="utf-8").splitlines()
    assert {line.split(",")[1] for line in lb[1:]} == ranked
    left = _left_out_lines(r.stderr)
    assert set(left) == {"runs/oracle_0shot", "runs/majority_cot", "runs/oracle_n3", "runs/oracle_rakuda",
                         "runs/majority_rakuda", "runs/failed_run"}, r.stderr
    assert "num_few_shots 0" in left["runs/oracle_0shot"] and "--group dev-0shot-basic-n6-2tasks" in left[
        "runs/oracle_0shot"]
    assert "prompt_style 'cot'" in left["runs/majority_cot"]
    assert "max_num_samples 3" in left["runs/oracle_n3"]
    assert "arena answers only" in left["runs/oracle_rakuda"] and "--arena" in left["runs/oracle_rakuda"]
    assert "empty folder" in left["runs/failed_run"]
    assert "group dev-4shot-basic-n6-2tasks" in " ".join(r.stdout.split())


@pytest.mark.slow
def test_quickstart_runs_folder_tables_with_left_out_runs_named(raw_dir, tmp_path):
    _runs(tmp_path, raw_dir)
    _check_walkthrough(tmp_path, {"oracle", "majority"})
    # the JSON output holds the same: the group, its settings and every run left out with the reason
    r = _table(tmp_path, "--out", "lb.json", "--no-charts")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "lb.json").read_text(encoding="utf-8"))
    assert doc["group"] == "dev-4shot-basic-n6-2tasks" and doc["settings"]["num_few_shots"] == 4
    assert {Path(x["run"]).name: x["group"] for x in doc["left_out"]} == {
        "oracle_0shot": "dev-0shot-basic-n6-2tasks", "majority_cot": "dev-4shot-cot-n6-2tasks",
        "oracle_n3": "dev-4shot-basic-n3-2tasks", "oracle_rakuda": None, "majority_rakuda": None, "failed_run": None}
    assert [row["run"] for row in doc["rows"]] == ["oracle", "majority"]


@pytest.mark.slow
def test_group_all_groups_and_arena_only_tables(raw_dir, tmp_path):
    _runs(tmp_path, raw_dir)
    # --group ranks another group; its left-out lines name the largest group's runs
    r = _table(tmp_path, "--group", "dev-4shot-cot-n6-2tasks", "--out", "cot.json", "--no-charts")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "cot.json").read_text(encoding="utf-8"))
    assert [row["run"] for row in doc["rows"]] == ["majority_cot"] and doc["rows"][0]["prompt_style"] == "cot"
    r = _table(tmp_path, "--group", "nope")
    assert r.returncode == 2 and "--group nope" in r.stderr and "dev-4shot-basic-n6-2tasks (2 runs)" in r.stderr
    # --all-groups: one table per group, named after it; the runs in no group are named once
    r = _table(tmp_path, "--all-groups", "--out", "all/lb.csv")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "all").glob("*.csv")) == [
        "lb.dev-0shot-basic-n6-2tasks.csv", "lb.dev-4shot-basic-n3-2tasks.csv", "lb.dev-4shot-basic-n6-2tasks.csv",
        "lb.dev-4shot-cot-n6-2tasks.csv"]
    assert set(_left_out_lines(r.stderr)) == {"runs/oracle_rakuda", "runs/majority_rakuda", "runs/failed_run"}
    assert (tmp_path / "all" / "lb.dev-4shot-basic-n6-2tasks.html").is_file()
    assert (tmp_path / "all" / "lb.dev-4shot-basic-n6-2tasks.avg_ci.png").is_file()
    # the arena: rakuda runs alone, ranked by arena rating (the default sort when no run has an AVG)
    _judgments(tmp_path / "j.jsonl")
    rakuda = ["runs/oracle_rakuda", "runs/majority_rakuda"]
    cli = [sys.executable, "-m", "jleval.cli", "table", *rakuda, "--arena", "j.jsonl", "--no-charts"]
    r = subprocess.run(cli + ["--out", "arena.json"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "arena.json").read_text(encoding="utf-8"))
    assert doc["sort"] == "arena_rating" and [row["run"] for row in doc["rows"]] == ["oracle_rakuda",
                                                                                      "majority_rakuda"]
    assert doc["rows"][0]["arena_rating"] > 1000 > doc["rows"][1]["arena_rating"] and doc["rows"][0]["AVG"] is None
    # the console shows the ratings as they are (one decimal), not with a "0." cut out of the middle
    shown = " ".join(r.stdout.split())
    assert all(f"{row['run']} {row['arena_rating']:.1f}" in shown for row in doc["rows"]), shown
    r = subprocess.run(cli + ["--sort", "arena_rating", "--out", "arena.md"], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "arena_rating" in (tmp_path / "arena.md").read_text(encoding="utf-8")
    r = subprocess.run(cli + ["--out", "arena.html"], cwd=tmp_path, capture_output=True, text=True)
    page = (tmp_path / "arena.html").read_text(encoding="utf-8")  # the rating with its interval, 1 decimal
    rating = doc["rows"][0]
    assert f"{rating['arena_rating']:.1f}<small>[{rating['arena_ci95_low']:.1f}, " in page
    # over the whole folder, --group picks the arena group; without --arena, --sort arena_rating is refused
    r = _table(tmp_path, "--arena", "j.jsonl", "--group", "test-4shot-basic-n3-arena", "--sort", "arena_rating",
               "--out", "arena2.json", "--no-charts")
    assert r.returncode == 0, r.stderr
    assert [row["run"] for row in json.loads((tmp_path / "arena2.json").read_text(encoding="utf-8"))["rows"]] == [
        "oracle_rakuda", "majority_rakuda"]
    r = _table(tmp_path, "--sort", "arena_rating")
    assert r.returncode == 2 and "cannot sort by 'arena_rating'" in r.stderr and "--arena" in r.stderr
    r = _table(tmp_path, "--group", "x", "--all-groups")
    assert r.returncode == 2 and "exclude each other" in r.stderr


def test_groups_in_memory(tmp_path):
    """The fast version on constructed runs: the largest group is ranked, the rest named; --all-groups; a tie."""
    from test_table import make_run

    from jleval import table
    from jleval.errors import UsageError
    from jleval.render.files import write_leaderboards

    runs = [make_run(tmp_path, n, acc, n=40) for n, acc in (("a", 0.9), ("b", 0.6), ("c", 0.7))]
    runs += [make_run(tmp_path, "z0", 0.5, n=40, shots=0), make_run(tmp_path, "zc", 0.5, n=40, style="cot"),
             make_run(tmp_path, "z20", 0.5, n=20), tmp_path / "failed"]
    (tmp_path / "failed").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    lb = table.build(runs + [tmp_path / "notes.txt"])
    assert [r["run"] for r in lb.rows] == ["a", "c", "b"] and lb.group == "dev-4shot-basic-n40-3tasks"
    why = {Path(x.run).name: x.reason for x in lb.left_out}
    assert set(why) == {"z0", "zc", "z20", "failed", "notes.txt"}
    assert why["z0"].startswith("other settings than the ranked group (num_few_shots 0)")
    assert "--group dev-4shot-cot-n40-3tasks" in why["zc"] and "max_num_samples 20" in why["z20"]
    assert why["failed"].startswith("an empty folder") and why["notes.txt"] == "not a run folder (a file)"
    assert any("5 run(s) left out: " in n for n in lb.notes)
    tables = table.build_tables(runs, all_groups=True)
    assert [t.group for t in tables] == ["dev-4shot-basic-n40-3tasks", "dev-0shot-basic-n40-3tasks",
                                         "dev-4shot-basic-n20-3tasks", "dev-4shot-cot-n40-3tasks"]
    paths = write_leaderboards(tables, tmp_path / "o" / "lb.md", charts=False, per_group=True)
    assert sorted(p.name for p in paths) == sorted(f"lb.{t.group}.md" for t in tables)
    assert table.build(runs, group="dev-0shot-basic-n40-3tasks").rows[0]["run"] == "z0"
    # the JSON document holds the group and the runs left out, and reads back through its typed reader
    from jleval.records import read_leaderboard

    write_leaderboards([lb], tmp_path / "lb.json", charts=False)
    doc = read_leaderboard(tmp_path / "lb.json", lambda why: AssertionError(why))
    assert doc["group"] == lb.group and doc["settings"]["max_num_samples"] == 40
    assert {Path(x["run"]).name: x["group"] for x in doc["left_out"]}["zc"] == "dev-4shot-cot-n40-3tasks"
    # the same settings but another task set: its own group (named with the task count)
    d = make_run(tmp_path, "d", 0.9, n=40, task_labels={"jamp": ["entailment", "contradiction", "neutral"]})
    assert {Path(x.run).name: x.group for x in table.build(runs + [d]).left_out}["d"] == "dev-4shot-basic-n40-1tasks"
    # --tasks: a run without scores for one of them is left out by name; over jamp alone, d joins the group
    why = {Path(x.run).name: x.reason for x in table.build(runs[:3] + [d], tasks=["jamp", "jmmlu"]).left_out}
    assert why == {"d": "has no scores for jmmlu (its scored tasks: jamp)"}
    assert [r["run"] for r in table.build(runs[:3] + [d], tasks=["jamp"]).rows] == ["a", "d", "c", "b"]
    with pytest.raises(UsageError) as e:  # arena ratings need --arena: the fix says so
        table.build(runs[:3], sort="arena_rating")
    assert "--arena" in (e.value.hint or "")


def test_tie_breaks(tmp_path):
    """Groups as large as each other: the leaderboard's default settings, then the most tasks, then the most
    samples, then the group of the run given first; never a refusal."""
    from test_table import make_run

    from jleval import table

    def ranked(*given: Path) -> tuple[str, str]:
        lb = table.build(list(given))
        return lb.rows[0]["run"], lb.notes[0].split("(")[2].split(")")[0]

    one = {"jamp": ["entailment", "contradiction", "neutral"]}
    default = make_run(tmp_path, "default", 0.5, n=20, task_labels=one)
    cot = make_run(tmp_path, "cot", 0.5, n=40, style="cot")
    zero = make_run(tmp_path, "zero", 0.5, n=40, shots=0)
    zero1 = make_run(tmp_path, "zero1", 0.5, n=40, shots=0, task_labels=one)
    zero_n20 = make_run(tmp_path, "zero_n20", 0.5, n=20, shots=0)
    mine = make_run(tmp_path, "mine", 0.5, n=40, template="mine.j2")
    assert ranked(cot, zero, default) == ("default", "the leaderboard's default settings")
    assert ranked(mine, default) == ("default", "the leaderboard's default settings")
    assert ranked(zero1, cot) == ("cot", "the most tasks")
    assert ranked(zero1, zero_n20, zero) == ("zero", "the most samples")  # zero1 fell on tasks, zero_n20 here
    assert ranked(zero_n20, cot) == ("cot", "the most samples")
    assert ranked(zero, cot) == ("zero", "its run given first")
    assert ranked(cot, zero) == ("cot", "its run given first")
    # a larger group still wins over the defaults
    cot2 = make_run(tmp_path, "cot2", 0.6, n=40, style="cot")
    lb = table.build([default, cot, cot2])
    assert lb.group == "dev-4shot-cot-n40-3tasks" and not any("tie" in n for n in lb.notes)


def test_left_out_reason_names_every_setting_that_differs(tmp_path):
    from test_table import make_run

    from jleval import table

    runs = [make_run(tmp_path, n, 0.5, n=6) for n in ("a", "b")]
    chat = make_run(tmp_path, "chat", 0.5, n=3, template="v2",
                    settings={"chat_template": True, "system_prompt": "あなたは誠実です"})
    why = {Path(x.run).name: x.reason for x in table.build(runs + [chat]).left_out}
    assert why["chat"].startswith("other settings than the ranked group (max_num_samples 3, template 'v2', "
                                  "chat_template True, system_prompt 'あなたは誠実です'): rank its group with --group ")


def test_a_run_being_written_is_left_out_untouched(tmp_path):
    """A run whose folder lock a `jleval run` holds (here: another process holding it through the run's own lock)
    is left out as in progress, and nothing is written into it; once the lock is free it is scored."""
    from test_table import make_run

    from jleval import table

    runs = [make_run(tmp_path, n, 0.5, n=6) for n in ("a", "b", "busy")]
    before = sorted(p.name for p in runs[2].iterdir())
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
                               "from jleval.run import _run_lock\nwith _run_lock(Path(sys.argv[1])):\n"
                               "    print('held', flush=True)\n    time.sleep(60)\n", str(runs[2])],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lb = table.build(runs)
        assert [r["run"] for r in lb.rows] == ["a", "b"] or [r["run"] for r in lb.rows] == ["b", "a"]
        assert [(x.run, x.reason) for x in lb.left_out] == [(str(runs[2]), f"in progress ({runs[2] / '.lock'} held)")]
        assert sorted(p.name for p in runs[2].iterdir()) == sorted(before + [".lock"])
        assert not (runs[2] / "scores.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert {r["run"] for r in table.build(runs).rows} == {"a", "b", "busy"}
    assert (runs[2] / "scores.json").is_file()


@pytest.mark.slow
def test_quickstart_walkthrough_with_the_tiny_model(raw_dir, tiny_model, tmp_path):
    """The walk-through of issue 17: the tiny model and the baselines into one runs/ folder, one `jleval table
    runs/*` that works and says what it left out."""
    _runs(tmp_path, raw_dir, tiny_model)
    _check_walkthrough(tmp_path, {"tiny", "oracle", "majority"})
