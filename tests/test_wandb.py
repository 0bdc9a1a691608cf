"""Optional W&B logging (`--wandb PROJECT`), in W&B's offline mode: the run folder W&B writes under WANDB_DIR is
read back (its media/table/*.table.json files hold the logged tables)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jleval import table
from jleval.errors import UsageError
from jleval.run import RunOptions, run
from jleval.tasks import CATEGORIES
from tests.test_modelinfo import sample_data

TASKS = "jamp,jcommonsenseqa,mawps"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("wandb")
    data = sample_data(root / "data", TASKS)
    return root, data, {name: run(RunOptions(model=name, backend=name, tasks=TASKS, max_num_samples=5, data_dir=data,
                                             out=root / "runs", run_name=name)).run_dir
                        for name in ("oracle", "majority")}


def offline_env(wandb_dir: Path) -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir), "WANDB_SILENT": "true",
            "WANDB_CONSOLE": "off", "WANDB_DISABLE_GIT": "true", "COLUMNS": "200"}


def logged_tables(wandb_dir: Path) -> tuple[Path, dict[str, dict]]:
    (run_dir,) = sorted((wandb_dir / "wandb").glob("offline-run-*"))
    assert list(run_dir.glob("run-*.wandb")), "W&B wrote no run file"
    tables = {}
    for f in (run_dir / "files" / "media" / "table").glob("*.table.json"):
        tables[f.name.rsplit("_", 2)[0]] = json.loads(f.read_text(encoding="utf-8"))
    return run_dir, tables


def test_leaderboard_and_radar_rows_use_llm_jp_evals_keys(runs):
    from jleval.wandb_log import leaderboard_rows, radar_rows

    root, data, r = runs
    lb = table.build([r["oracle"], r["majority"]])
    columns, rows = leaderboard_rows(lb)
    assert columns[0] == "run_name" and {"AVG", "jamp_exact_match", *CATEGORIES} <= set(columns)
    by_run = {row[0]: dict(zip(columns, row)) for row in rows}
    assert by_run["oracle"]["jamp_exact_match"] == 1.0 and by_run["oracle"]["AVG_present_categories"] == 1.0
    assert by_run["oracle"]["AVG"] == pytest.approx(round(3 / 11, 4))  # upstream's AVG: 3 of 11 categories
    expected = [[row["run"], c, row[c]] for row in lb.rows for c in ("NLI", "MC", "MR")]
    assert sorted(radar_rows(lb)) == sorted(expected) and len(expected) == 6


def test_without_wandb_installed_the_option_says_how_to_get_it(monkeypatch):
    from jleval.wandb_log import _wandb

    monkeypatch.setitem(sys.modules, "wandb", None)  # what Python does when the package is absent
    with pytest.raises(UsageError) as e:
        _wandb()
    assert "jleval[wandb]" in e.value.hint


@pytest.mark.slow
def test_table_wandb_offline_writes_the_run_folder(runs, tmp_path):
    root, data, r = runs
    res = subprocess.run([sys.executable, "-m", "jleval.cli", "table", r["oracle"], r["majority"], "--out",
                          tmp_path / "lb.csv", "--no-charts", "--wandb", "jleval-test"], capture_output=True, text=True,
                         env=offline_env(tmp_path / "wb"), timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    run_dir, tables = logged_tables(tmp_path / "wb")
    assert f"W&B: logged to {run_dir}" in " ".join(res.stderr.split())
    lead = tables["leaderboard_table"]
    rows = {row[0]: dict(zip(lead["columns"], row)) for row in lead["data"]}
    assert set(rows) == {"oracle", "majority"} and rows["oracle"]["NLI"] == 1.0
    majority = table.build([r["majority"]]).rows[0]["jamp_exact_match"]
    assert 0 < majority < 1 and rows["majority"]["jamp_exact_match"] == float(f"{majority:.4f}")
    radar = tables["radar_table"]
    assert radar["columns"] == ["run_name", "category", "score"] and ["oracle", "MC", 1.0] in radar["data"]
    out = tables["output_table"]
    assert len(out["data"]) == 2 * 3 * 5
    sample = dict(zip(out["columns"], out["data"][0]))
    assert sample["target_dataset"] in TASKS.split(",") and json.loads(sample["scores"])
    assert list((run_dir / "files" / "media" / "images").glob("radar_chart_*.png"))


@pytest.mark.slow
def test_run_wandb_offline_logs_the_run(runs, tmp_path):
    root, data, r = runs
    res = subprocess.run([sys.executable, "-m", "jleval.cli", "run", "oracle", "--backend", "oracle", "--tasks", "jamp",
                          "--max-num-samples", "3", "--data-dir", data, "--out", tmp_path / "runs", "--run-name", "o",
                          "--wandb", "jleval-test"], capture_output=True, text=True, env=offline_env(tmp_path / "wb"),
                         timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    _, tables = logged_tables(tmp_path / "wb")
    (row,) = tables["leaderboard_table"]["data"]
    assert row[0] == "o" and len(tables["output_table"]["data"]) == 3


@pytest.mark.parametrize(("project", "why"), [("my/proj", "contains '/'"), ("a:b#c", "contains '#' ':'"),
                                              ("p" * 129, "is longer than 128 characters"), (" ", "is empty")])
def test_a_bad_project_name_is_refused_before_anything_is_written(runs, tmp_path, project, why):
    root, data, r = runs
    res = subprocess.run([sys.executable, "-m", "jleval.cli", "table", r["oracle"], "--out", tmp_path / "lb.csv",
                          "--no-charts", "--wandb", project], capture_output=True, text=True,
                         env=offline_env(tmp_path / "wb"), timeout=300, check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"the W&B project name {why}" in " ".join(res.stderr.split()) and "login" not in res.stderr
    assert list(tmp_path.iterdir()) == []  # no table, no W&B folder
