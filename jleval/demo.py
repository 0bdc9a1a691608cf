"""`jleval demo`: the whole pipeline offline in about a minute — preprocess the bundled sample, run a tiny local
model (random weights, tokenizer trained on the fly) and two honest baselines (the oracle and the majority
label), score them and print the leaderboard. The oracle must score 1.0 on every exact-match task: a built-in
sanity check of the prompt -> cache -> score path."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jleval.errors import JlevalError

if TYPE_CHECKING:
    from jleval.table import Leaderboard

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
DEMO_TASKS = ("jamp", "jemhopqa", "jcommonsenseqa", "chabsa", "mawps", "jmmlu")


@dataclass
class DemoResult:
    out_dir: Path
    run_dirs: dict[str, Path]
    leaderboard: Leaderboard
    files: list[Path]
    oracle_exact_match: dict[str, float]
    seconds: float


def run_demo(out_dir: Path, max_num_samples: int = 20, say: Callable[[str], None] = lambda s: None) -> DemoResult:
    from jleval import table
    from jleval.jaster.preprocess import preprocess
    from jleval.render.files import write_leaderboard
    from jleval.run import RunOptions, run
    from jleval.scoring import score_run
    from jleval.tasks import resolve_tasks
    from jleval.tiny import build_tiny_model

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    tasks = ",".join(DEMO_TASKS)
    checksums = json.loads((SAMPLE_DIR / "checksums.json").read_text(encoding="utf-8"))
    data_dir = out_dir / "jaster"
    say(f"1/4 preprocess the bundled sample ({', '.join(DEMO_TASKS)}) -> {data_dir}")
    report = preprocess(resolve_tasks(tasks), data_dir, raw_dir=SAMPLE_DIR / "raw", checksums=checksums)
    if not report.ok:
        bad = [r.task for r in report.results if r.status not in ("built", "cached")]
        raise JlevalError(f"the bundled sample did not build: {', '.join(bad)}", "reinstall jleval")
    say("2/4 build a tiny random-weight Llama with a locally trained tokenizer")
    model = build_tiny_model(out_dir / "tiny-model")
    common: dict[str, Any] = dict(tasks=tasks, data_dir=data_dir, out=out_dir / "runs", max_num_samples=max_num_samples)
    runs = {}
    for name, backend, model_id in (("tiny-llama", "hf", str(model)), ("oracle", "oracle", "oracle"),
                                     ("majority", "majority", "majority")):
        say(f"3/4 run {name} ({backend} backend) over {len(DEMO_TASKS)} tasks x {max_num_samples} samples")
        runs[name] = run(RunOptions(model=model_id, backend=backend, run_name=name, **common)).run_dir
    say("4/4 score and build the leaderboard")
    scores = {name: score_run(d) for name, d in runs.items()}
    oracle = {t: e["metrics"]["exact_match"]["value"] for t, e in scores["oracle"]["tasks"].items()
              if "exact_match" in e["metrics"]}
    wrong = {t: v for t, v in oracle.items() if v != 1.0}
    if wrong:
        raise JlevalError(f"sanity check failed: the oracle scored {wrong} on exact-match tasks (must be 1.0)",
                          "this is a bug in jleval's prompt/cache/score path: please report it")
    lb = table.build(list(runs.values()))
    files = write_leaderboard(lb, out_dir / "leaderboard.csv")
    return DemoResult(out_dir, runs, lb, files, oracle, time.perf_counter() - t0)
