"""`jleval run` on the real vLLM engine, each command in its own process: --backend auto, prompts longer than the
context, data parallelism (identical outputs, a clean exit), kill -9 then resume, a model vLLM cannot run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import cli, session_processes

from jleval.run import RunOptions, read_outputs, run


def _rows(run_dir):
    out = {}
    for path in sorted((run_dir / "outputs").glob("*.jsonl")):
        for row in read_outputs(path):
            out[(path.stem, row["id"])] = row
    return out


def _reference(engine, tiny_model, data_dir, out, tasks, n):
    """What one in-process engine writes for these tasks (the texts a command must reproduce)."""
    res = run(RunOptions(model=str(tiny_model), backend="vllm", tasks=tasks, max_num_samples=n, data_dir=data_dir,
                         out=out, run_name="reference"), backend=engine)
    return {k: r["generation"] for k, r in _rows(res.run_dir).items()}


def test_auto_picks_vllm_and_over_long_prompts_become_error_rows(tiny_model, data_dir, tmp_path):
    """chabsa's prompts (about 1,500 tokens with this tokenizer) do not fit --max-model-len 1024: they are
    named before generation, written as error rows with their length and the limit, and the run exits 3 with
    jamp's answers all there."""
    r = cli("run", tiny_model, "--backend", "auto", "--tasks", "jamp,chabsa", "--max-num-samples", 4,
            "--max-model-len", 1024, "--dtype", "float32", "--data-dir", data_dir, "--out", tmp_path,
            "--run-name", "r", "--no-score")
    assert r.returncode == 3, r.stderr[-3000:]
    assert "--backend auto: vllm" in r.stderr
    assert "exceed the model's context of 1024 tokens (chabsa 4)" in r.stderr
    assert "Traceback" not in r.stderr
    rows = _rows(tmp_path / "r")
    errors = {k: row["error"] for k, row in rows.items() if row["error"]}
    assert set(errors) == {("chabsa", i) for i in range(4)}
    for (_, i), error in errors.items():
        n = rows[("chabsa", i)]["prompt_tokens"]
        assert f"the prompt is {n} tokens" in error and "context of 1024 tokens" in error and n + 191 > 1024
    assert all(rows[("jamp", i)]["generation"] is not None and not rows[("jamp", i)]["error"] for i in range(4))
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["backend"] == "vllm" and manifest["backend"]["max_model_len_resolved"] == 1024


def _gone_within(sid: int, seconds: float) -> list[int]:
    """The processes of session `sid` still alive after up to `seconds` (an engine process may take a moment to
    finish exiting after the command's own exit on a loaded machine; one that lingers longer is a leak)."""
    deadline = time.monotonic() + seconds
    while (alive := session_processes(sid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return alive


def test_data_parallel_gives_one_engines_outputs_and_exits_cleanly(engine, tiny_model, data_dir, tmp_path):
    tasks, n = "jamp,jemhopqa,mawps", 8
    want = _reference(engine, tiny_model, data_dir, tmp_path, tasks, n)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "jleval.cli", "run", str(tiny_model), "--backend", "vllm",
                             "--tasks", tasks, "--max-num-samples", str(n), "--data-parallel-size", "2",
                             "--dtype", "float32", "--data-dir", str(data_dir), "--out", str(tmp_path),
                             "--run-name", "dp2", "--no-score"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=600)
    finally:
        leftover = _gone_within(proc.pid, seconds=30 if proc.poll() is not None else 0)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-3000:]
    assert leftover == [], "engine processes outlived the command"
    got = {k: r["generation"] for k, r in _rows(tmp_path / "dp2").items()}
    assert got == want and len(got) == 3 * n
    manifest = json.loads((tmp_path / "dp2" / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["backend"]["data_parallel_workers"]) == 2
    assert time.monotonic() - started < 600


def test_data_parallel_beyond_the_devices_is_one_line(tiny_model, data_dir, tmp_path):
    r = cli("run", tiny_model, "--backend", "vllm", "--tasks", "jamp", "--max-num-samples", 2,
            "--data-parallel-size", 4096, "--data-dir", data_dir, "--out", tmp_path, "--run-name", "r", "--no-score")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "--data-parallel-size 4096" in r.stderr or "data parallelism 4096" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "r").exists()


def test_kill_9_mid_run_then_resume_loses_and_duplicates_nothing(engine, tiny_model, data_dir, tmp_path):
    """jamp's answers (3 tokens) finish long before niilc's and chabsa's (about 180): the command is killed with
    SIGKILL, engine and all, once some are on disk, and the re-run completes exactly the rest."""
    tasks, n = "jamp,niilc,chabsa", 12
    args = [tiny_model, "--backend", "vllm", "--tasks", tasks, "--max-num-samples", n, "--dtype", "float32",
            "--data-dir", data_dir, "--out", tmp_path, "--run-name", "r", "--no-score"]
    proc = subprocess.Popen([sys.executable, "-m", "jleval.cli", "run", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    outputs = tmp_path / "r" / "outputs"
    deadline = time.monotonic() + 540
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(p.read_bytes().count(b"\n") for p in outputs.glob("*.jsonl")) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = _rows(tmp_path / "r")
    assert 3 <= len(first) < 3 * n
    time.sleep(1)
    assert session_processes(proc.pid) == [], "engine processes outlived kill -9 of their process group"
    r = cli(*(["run"] + args))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{3 * n - len(first)} generated, {len(first)} from cache" in " ".join(r.stdout.split())
    lines = [json.loads(line) for p in sorted(outputs.glob("*.jsonl"))
             for line in p.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 3 * n  # every line whole, none twice
    got = {k: row["generation"] for k, row in _rows(tmp_path / "r").items()}
    assert got == _reference(engine, tiny_model, data_dir, tmp_path, tasks, n)


def test_a_model_vllm_cannot_run_is_one_line_suggesting_hf(tmp_path, data_dir):
    from jleval.tiny import build_tiny_model

    narrow = build_tiny_model(tmp_path / "narrow", head_dim=16)  # 4 heads of 16: below vLLM's attention sizes
    r = cli("run", narrow, "--backend", "vllm", "--tasks", "jamp", "--max-num-samples", 2, "--dtype", "float32",
            "--data-dir", data_dir, "--out", tmp_path, "--run-name", "r", "--no-score")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    ours = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1 and "head" in ours[0] and "16" in ours[0], r.stderr[-3000:]
    assert "--backend hf" in r.stderr
    assert not (tmp_path / "r").exists()
