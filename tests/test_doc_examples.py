"""Every command in the docs' example blocks is executed (issue 17 item 9), in one temporary folder per page, in the
order the page gives them, with the tiny model standing in for the model ids. Each line of a page must have an
entry in that page's table below: the command run for it (the doc's line, with what had to change said in the
substitution) or why it cannot run here; a new example without an entry fails the test, so docs and test stay in
step."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SKIP = "skip"


def doc_commands(page: str) -> list[str]:
    """The shell commands of a page's bash (or unlabelled) blocks: continuation lines joined, comments dropped."""
    text = (DOCS / page).read_text(encoding="utf-8")
    out = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if lang not in ("bash", "") or body.split("\n", 1)[0].rstrip().endswith("/"):  # a folder-tree picture
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = re.split(r"\s+#\s|^#", line)[0].strip()
            if line and re.match(r"[A-Za-z.]", line):
                out.append(" ".join(line.split()))
    return out


def sh(cmd: str, cwd: Path, ok=(0,)) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    bindir = cwd / ".bin"
    if not bindir.is_dir():  # `jleval` on the PATH, as after `source .venv/bin/activate`
        bindir.mkdir()
        (bindir / "jleval").write_text(f"#!/bin/sh\nexec {sys.executable} -m jleval.cli \"$@\"\n", encoding="utf-8")
        (bindir / "jleval").chmod(0o755)
    env["PATH"] = f"{bindir}:{env['PATH']}"
    r = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode in ok, f"`{cmd}` exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def walk(page: str, table: dict[str, object], cwd: Path) -> dict[str, int]:
    """Run the page's commands through `table` (doc line -> command, (command, allowed exit codes), or
    (SKIP, reason)); returns the exit code of each line that was executed."""
    lines = doc_commands(page)
    missing = [line for line in lines if line not in table]
    assert not missing, f"{page}: doc examples without an entry in the test's table:\n" + "\n".join(missing)
    ran = {}
    for line in lines:
        how = table[line]
        cmd, ok = (how, (0,)) if isinstance(how, str) else how
        if cmd == SKIP:
            continue
        ran[line] = sh(cmd, cwd, ok).returncode
    return ran


def _models(cwd: Path, tiny: Path) -> None:
    """The tiny model under the names the docs use, as local folders (so each command keeps its model argument)."""
    for name in ("my-model", "llm-jp/llm-jp-3-1.8b", "MODEL"):
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(tiny, cwd / name)


FEW = "--max-num-samples 1"  # the one change to every `jleval run`: 1 sample per task keeps the tiny model quick


def quickstart_table(raw: Path) -> dict[str, object]:
    return {
        "git clone … jleval && cd jleval": (SKIP, "the test runs in the checkout"),
        "make demo": (SKIP, "the demo: tests/test_demo_docs.py; the install: tests/test_install_torch.py"),
        "source .venv/bin/activate": (SKIP, "the test puts a `jleval` on the PATH instead"),
        "jleval tasks": "jleval tasks",
        "jleval preprocess --tasks all": (SKIP, "downloads from the network"),
        "jleval preprocess --tasks all --raw-dir RAW": (f"jleval preprocess --tasks all --raw-dir {raw}", (0, 3)),
        'pip install "jleval[vllm]"': (SKIP, "a GPU box"),
        "jleval run llm-jp/llm-jp-3-1.8b --tasks leaderboard":
            # the oracle backend stands in for the 1.8B model (the tiny model's 22 tasks take many minutes on CPU)
            (f"jleval run llm-jp/llm-jp-3-1.8b --backend oracle --tasks leaderboard --raw-dir {raw} {FEW} "
             "--run-name llm-jp-3-1.8b_dev_4shot", (0, 3)),
        "jleval run my-model --backend openai --base-url http://127.0.0.1:8000/v1":
            # no server here: the same model through hf, on two short tasks; a 0-shot run, and the CoT run for
            # --compare-styles below
            f"jleval run my-model --tasks jamp,jcommonsenseqa {FEW} --run-name my-model_dev_4shot && "
            f"jleval run my-model --tasks jamp,jcommonsenseqa --num-few-shots 0 {FEW} --run-name my-model_0shot && "
            f"jleval run my-model --tasks jamp --prompt-style cot {FEW} --run-name my-model_cot",
        # the baselines go to their own folder: the table lines below rank runs/* as the page made it
        "jleval run oracle --backend oracle --tasks leaderboard":
            (f"jleval run oracle --backend oracle --tasks leaderboard --raw-dir {raw} {FEW} --out baselines", (0, 3)),
        "jleval run majority --backend majority --tasks leaderboard":
            (f"jleval run majority --backend majority --tasks leaderboard --raw-dir {raw} {FEW} --out baselines",
             (0, 3)),
        "jleval score runs/my-model_dev_4shot": "jleval score runs/my-model_dev_4shot",
        "jleval table runs/* --out leaderboard.csv": "jleval table runs/* --out leaderboard.csv",
        "jleval table runs/* --all-groups": "jleval table runs/* --all-groups",
        "jleval table runs/* --profile jleval --out fixed.csv": "jleval table runs/* --profile jleval --out fixed.csv",
        "jleval table RUN_BASIC RUN_COT --compare-styles":
            "jleval table runs/my-model_dev_4shot runs/my-model_cot --compare-styles",
        "jleval export runs/* --out exported/": "jleval export runs/* --out exported/",
        "jleval import their-llm-jp-eval-results.json --out runs/theirs":
            "jleval import exported/my-model_dev_4shot.json --out runs/theirs",
        "jleval view runs/my-model_dev_4shot --out report/": "jleval view runs/my-model_dev_4shot --out report/",
        "jleval preprocess --tasks rakuda [--raw-dir RAW]": f"jleval preprocess --tasks rakuda --raw-dir {raw}",
        "jleval run MODEL --tasks rakuda --split test":
            # the library's scripted backend answers at once (1024 new tokens of the tiny model take minutes here)
            # (three models: the arena needs distinct ones)
            f"for r in a b c; do jleval run model-$r --backend scripted --tasks rakuda --split test {FEW} --run-name $r "
            "|| exit 1; done",
        "jleval arena judge --judge JUDGE_MODEL runs/a runs/b runs/c --out judgments.jsonl":
            # a random tiny judge gives no [[1]]/[[2]]/[[3]] verdicts: the command runs, every verdict is an error
            ("jleval arena judge --judge MODEL runs/a runs/b runs/c --out judgments.jsonl --n 3 --max-tokens 8",
             (0, 1)),
        "jleval arena rank judgments.jsonl": (SKIP, "needs usable verdicts; ranking through the CLI: "
                                                    "tests/test_arena_cli.py"),
        "jleval table runs/a runs/b runs/c --arena judgments.jsonl": (SKIP, "needs usable verdicts; arena tables: "
                                                                            "tests/test_arena_cli.py"),
    }


@pytest.mark.slow
def test_quickstart(tmp_path, raw_dir, tiny_model):
    """The walk-through of issue 17: every quickstart line into one runs/ folder (a 4-shot run of the leaderboard
    tasks, a 4-shot, a 0-shot and a CoT run of a few tasks, an imported run, rakuda answers), then one
    `jleval table runs/*` that works: it ranks one group and names every other run with the reason."""
    _models(tmp_path, tiny_model)
    walk("quickstart.md", quickstart_table(raw_dir), tmp_path)
    assert (tmp_path / "report" / "index.html").is_file() and (tmp_path / "runs" / "theirs" / "manifest.json").is_file()
    assert (tmp_path / "style-comparison.csv").is_file() and list((tmp_path / "exported").glob("*.json"))
    assert (tmp_path / "leaderboard.csv").is_file() and (tmp_path / "fixed.csv").is_file()
    assert {p.name for p in (tmp_path / "baselines").iterdir()} == {"oracle_dev_4shot", "majority_dev_4shot"}
    r = sh("jleval table runs/* --out final.json --no-charts", tmp_path)
    doc = json.loads((tmp_path / "final.json").read_text(encoding="utf-8"))
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    ranked = [row["run"] for row in doc["rows"]]
    left = {Path(x["run"]).name: x["reason"] for x in doc["left_out"]}
    assert ranked and sorted(ranked + list(left)) == runs  # every run is ranked or named, once
    assert all(name in r.stdout for name in ranked) and all(name in r.stderr for name in left)
    assert set(runs) >= {"llm-jp-3-1.8b_dev_4shot", "my-model_dev_4shot", "my-model_0shot", "my-model_cot",
                         "theirs", "a", "b", "c"}
    assert "num_few_shots 0" in left["my-model_0shot"] and "prompt_style 'cot'" in left["my-model_cot"]


@pytest.mark.slow
def test_own_tasks_and_view_pages(tmp_path, tiny_model):
    from own_task_fixtures import make_task_dir

    _models(tmp_path, tiny_model)
    make_task_dir(tmp_path / "mytasks")
    own = {
        "jleval tasks --tasks-dir mytasks": "jleval tasks --tasks-dir mytasks",
        "jleval preprocess --tasks tashizan --tasks-dir mytasks": "jleval preprocess --tasks tashizan --tasks-dir mytasks",
        "jleval prompts --tasks tashizan --tasks-dir mytasks --out prompts/":
            "jleval prompts --tasks tashizan --tasks-dir mytasks --out prompts/",
        "jleval run MODEL --tasks tashizan,jnli --tasks-dir mytasks":  # jnli's set needs the raw files: left out
            f"jleval run MODEL --tasks tashizan --tasks-dir mytasks {FEW} --run-name MODEL_dev_4shot",
        "jleval score runs/MODEL_dev_4shot --tasks-dir mytasks": "jleval score runs/MODEL_dev_4shot --tasks-dir mytasks",
        "jleval table runs/* --tasks-dir mytasks --out leaderboard.csv":
            "jleval table runs/* --tasks-dir mytasks --out leaderboard.csv",
    }
    walk("own-tasks.md", own, tmp_path)
    assert "tashizan_exact_match" in (tmp_path / "leaderboard.csv").read_text(encoding="utf-8")
    sh(f"jleval run my-model --tasks tashizan --tasks-dir mytasks {FEW} --run-name my-model_dev_4shot && "
       f"jleval run oracle --backend oracle --tasks tashizan --tasks-dir mytasks {FEW} --run-name model-a_dev_4shot && "
       f"jleval run my-model --tasks tashizan --tasks-dir mytasks {FEW} --run-name model-b_dev_4shot", tmp_path)
    view = {line: line for line in doc_commands("view.md")}
    assert walk("view.md", view, tmp_path) == dict.fromkeys(view, 0) and (tmp_path / "ab" / "data" / "meta.js").is_file()


def test_gpu_and_arena_pages_are_accounted_for():
    """Their commands need GPUs, a vLLM server, a Ray cluster or a judge that gives verdicts: none run here. The
    library paths behind them are tested in test_backends_vllm.py (with the fake vLLM), test_backends_openai.py
    (a real HTTP server), test_arena_*.py (the documented `--runs A B C` form: test_arena_cli.py)."""
    gpu = doc_commands("gpu.md")
    assert any(line.startswith("jleval run") and "--tensor-parallel-size" in line for line in gpu)
    assert "jleval arena rank judgments.jsonl --runs runs/A runs/B runs/C --out arena/" in doc_commands("arena.md")
