"""`jleval demo` end to end (offline, bundled sample) and the generated docs being current."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "jleval.cli", "demo", "--out", str(out)], capture_output=True,
                       text=True, timeout=600, env={"COLUMNS": "160", **__import__("os").environ})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "sanity check passed" in r.stdout
    oracle = json.loads((out / "runs" / "oracle" / "scores.json").read_text(encoding="utf-8"))
    exact = {t: e["metrics"]["exact_match"]["value"] for t, e in oracle["tasks"].items() if "exact_match" in e["metrics"]}
    assert set(exact) == {"jamp", "jcommonsenseqa", "jmmlu", "mawps"} and set(exact.values()) == {1.0}
    for name in ("leaderboard.csv", "leaderboard.html", "leaderboard.md", "leaderboard.radar.png", "leaderboard.avg_ci.png"):
        assert (out / name).stat().st_size > 500, name
        assert str(out / name) in r.stdout
    for run in ("tiny-llama", "oracle", "majority"):
        assert (out / "runs" / run / "manifest.json").is_file()
        assert (out / "runs" / run / "scores.json").is_file()
    import pandas as pd

    df = pd.read_csv(out / "leaderboard.csv")
    assert list(df["run"]) [0] == "oracle" and df["AVG"].iloc[0] == 1.0
    assert set(df["run"]) == {"tiny-llama", "oracle", "majority"}


def test_task_reference_is_current():
    from jleval.docgen import render_tasks_md

    current = (REPO / "docs" / "tasks.md").read_text(encoding="utf-8")
    assert current == render_tasks_md(), "docs/tasks.md is stale: run `python -m jleval.docgen`"


def test_sample_checksums_match_the_bundled_files():
    from jleval.demo import SAMPLE_DIR
    from jleval.fsutil import sha256_file, tree_sha256
    from jleval.tasks import all_tasks

    sums = json.loads((SAMPLE_DIR / "checksums.json").read_text(encoding="utf-8"))
    sources = {s.path: s for t in all_tasks().values() for s in t.sources}
    for path, digest in sums.items():
        p = SAMPLE_DIR / "raw" / path
        got = tree_sha256(p, sources[path].glob)[0] if sources[path].kind == "dir" else sha256_file(p)
        assert got == digest, path
    assert (SAMPLE_DIR / "ATTRIBUTION.md").is_file()
    for folder in ("jamp", "jemhopqa", "jcommonsenseqa", "chabsa", "mawps", "jmmlu"):
        assert (SAMPLE_DIR / "raw" / folder / "LICENSE").is_file(), folder
