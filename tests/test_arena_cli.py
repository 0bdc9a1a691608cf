"""The arena commands through the CLI: ranking plain judgment lines, and arena columns in the leaderboard."""
from __future__ import annotations

import json
import random
import subprocess
import sys


def _judgments(path, strengths, n=600, seed=0):
    import math

    rng = random.Random(seed)
    models = list(strengths)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            a, b = rng.sample(models, 2)
            p = 1 / (1 + math.exp(strengths[b] - strengths[a]))
            winner = "a" if rng.random() < p else "b"
            f.write(json.dumps({"model_a": a, "model_b": b, "winner": winner}) + "\n")


def test_arena_rank_cli_orders_models_and_writes_files(tmp_path):
    _judgments(tmp_path / "j.jsonl", {"strong": 1.5, "mid": 0.0, "weak": -1.5})
    r = subprocess.run([sys.executable, "-m", "jleval.cli", "arena", "rank", str(tmp_path / "j.jsonl"), "--out",
                        str(tmp_path / "arena"), "--bootstrap", "200"], capture_output=True, text=True,
                       env={**__import__("os").environ, "COLUMNS": "160"})
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "arena" / "arena.json").read_text(encoding="utf-8"))
    ranked = [m["model"] for m in doc["models"]]
    assert ranked == ["strong", "mid", "weak"]
    assert (tmp_path / "arena" / "arena.png").stat().st_size > 5000
    assert (tmp_path / "arena" / "arena.csv").is_file()


def test_arena_rank_cli_bad_input(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = subprocess.run([sys.executable, "-m", "jleval.cli", "arena", "rank", str(empty)], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "error:" in r.stderr
    selfmatch = tmp_path / "self.jsonl"
    selfmatch.write_text(json.dumps({"model_a": "x", "model_b": "x", "winner": "a"}) + "\n")
    r = subprocess.run([sys.executable, "-m", "jleval.cli", "arena", "rank", str(selfmatch)], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "line 1" in r.stderr
    # a ranking passed where judgments are expected, and impossible sampler settings
    _judgments(tmp_path / "j.jsonl", {"a": 1.0, "b": 0.0}, n=40)
    subprocess.run([sys.executable, "-m", "jleval.cli", "arena", "rank", str(tmp_path / "j.jsonl"), "--out",
                    str(tmp_path / "arena"), "--bootstrap", "20"], capture_output=True, text=True, check=True)
    r = subprocess.run([sys.executable, "-m", "jleval.cli", "arena", "rank", str(tmp_path / "arena" / "arena.json")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "looks like a ranking" in r.stderr
    r = subprocess.run([sys.executable, "-m", "jleval.cli", "arena", "rank", str(tmp_path / "j.jsonl"), "--posterior",
                        "--draws", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "--draws" in r.stderr and "Traceback" not in r.stderr


def test_leaderboard_gets_arena_columns(tmp_path):
    from test_table import make_run

    from jleval import table

    a = make_run(tmp_path, "a", 0.9)
    b = make_run(tmp_path, "b", 0.5)
    _judgments(tmp_path / "j.jsonl", {"a": 1.0, "b": -1.0})
    lb = table.build([a, b], arena_judgments=[tmp_path / "j.jsonl"])
    assert "arena_rating" in lb.columns
    rows = {r["run"]: r for r in lb.rows}
    assert rows["a"]["arena_rating"] > rows["b"]["arena_rating"]
    assert rows["a"]["arena_ci95_low"] < rows["a"]["arena_rating"] < rows["a"]["arena_ci95_high"]


def test_arena_rank_runs_as_documented(tmp_path):
    """docs/arena.md's form, `--runs A B C`: B and C are run folders, not judgments files."""
    from test_arena_judge import make_run

    runs = [make_run(tmp_path / "runs", m) for m in ("alpha-7b", "beta-13b", "gamma-1b")]
    _judgments(tmp_path / "j.jsonl", {"alpha-7b": 1.0, "beta-13b": 0.0, "gamma-1b": -1.0}, n=120)
    cmd = [sys.executable, "-m", "jleval.cli", "arena", "rank", str(tmp_path / "j.jsonl"), "--out",
           str(tmp_path / "arena"), "--bootstrap", "20", "--runs"]
    r = subprocess.run(cmd + [str(p) for p in runs], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "arena" / "arena.json").read_text(encoding="utf-8"))
    assert [m["model"] for m in doc["models"]] == ["alpha-7b", "beta-13b", "gamma-1b"]
    r = subprocess.run(cmd + [str(p) for p in runs[:2]], capture_output=True, text=True)  # gamma is not among them
    assert r.returncode != 0 and "gamma-1b" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(cmd[:5] + [str(runs[0]), "--runs", str(runs[1])], capture_output=True, text=True)
    assert r.returncode == 2 and "no judgments file given" in r.stderr
