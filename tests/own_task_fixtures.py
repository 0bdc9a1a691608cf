"""A small task of your own (`--tasks-dir`): the task file of docs/own-tasks.md with made-up additions, and a
helper that runs the real `jleval` command line in a subprocess (errors are printed by its error boundary)."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASK = """name = "tashizan"
category = "MR"
instruction = "質問に数字で答えてください。"
output_length = 5
metrics = ["exact_match", "char_f1"]
star_metric = "exact_match"
license = "CC0-1.0"
commercial_use = true
[files]
train = "train.jsonl"   # few-shots come from here
dev = "dev.jsonl"
test = "data/test.jsonl"
"""


def rows(n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rnd.randint(1, 50), rnd.randint(1, 50)
        out.append({"input": f"{a}たす{b}は？", "output": str(a + b), "source": "made up"})  # extra keys: ignored
    return out


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def make_task_dir(d: Path, dev: int = 24) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "tashizan.toml").write_text(TASK, encoding="utf-8")
    write_jsonl(d / "train.jsonl", rows(6, 1))
    write_jsonl(d / "dev.jsonl", rows(dev, 2))
    write_jsonl(d / "data" / "test.jsonl", rows(10, 3))
    return d


def jleval(*args, cwd: Path, check: int | None = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-m", "jleval.cli", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, env=env, timeout=600)
    if check is not None:
        assert r.returncode == check, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r
