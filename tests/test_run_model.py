"""`jleval run` with a real model (the tiny random-weight Llama on CPU through the hf backend): kill -9 and
resume in a subprocess, and the stop rule (same post-processed predictions, fewer generated tokens)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from jleval.run import RunOptions, read_outputs, run


@pytest.fixture(scope="module")
def data_dir(raw_dir, tmp_path_factory):
    from jleval.jaster.preprocess import preprocess
    from jleval.tasks import resolve_tasks

    d = tmp_path_factory.mktemp("jaster")
    preprocess(resolve_tasks("jamp,jemhopqa,niilc"), d, raw_dir=raw_dir)
    return d


def _cli(*args):
    return [sys.executable, "-m", "jleval.cli", "run", *map(str, args)]


@pytest.mark.slow
def test_kill_9_then_resume_loses_nothing_and_duplicates_nothing(tiny_model, data_dir, tmp_path):
    args = [tiny_model, "--backend", "hf", "--tasks", "jemhopqa", "--max-num-samples", "60", "--batch-size", "1",
            "--data-dir", data_dir, "--out", tmp_path / "runs", "--run-name", "r", "--no-score"]
    out = tmp_path / "runs" / "r" / "outputs" / "jemhopqa.jsonl"
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_file() and out.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = read_outputs(out)
    assert 5 <= len(first) < 60
    r = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{60 - len(first)} generated, {len(first)} from cache" in " ".join(r.stdout.split())
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(x["id"] for x in rows) == list(range(60))  # nothing lost, nothing twice, every line whole
    # greedy decoding: the resumed outputs equal an uninterrupted run's
    ref = run(RunOptions(model=str(tiny_model), backend="hf", tasks="jemhopqa", max_num_samples=60,
                         data_dir=data_dir, out=tmp_path / "runs", run_name="ref"))
    ref_rows = {x["id"]: x["generation"] for x in read_outputs(ref.run_dir / "outputs" / "jemhopqa.jsonl")}
    assert {x["id"]: x["generation"] for x in rows} == ref_rows


@pytest.fixture(scope="module")
def chatty_model(tiny_model, tmp_path_factory):
    """The tiny model with its newline logit rewired to fire where its four most frequent greedy tokens would,
    so that its outputs contain blank lines (a random model almost never writes one)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    probe = tok("以下は、タスクを説明する指示です。東京都の県庁所在地は", return_tensors="pt", add_special_tokens=False)
    gen = model.generate(**probe, max_new_tokens=60, do_sample=False)[0][probe.input_ids.shape[1]:].tolist()
    top = [t for t, _ in sorted(((t, gen.count(t)) for t in set(gen)), key=lambda x: (-x[1], x[0]))[:4]]
    [nl] = set(tok.encode("\n\n", add_special_tokens=False))
    with torch.no_grad():
        w = model.lm_head.weight
        w[nl] = sum(w[t] for t in top)
    out = tmp_path_factory.mktemp("chatty")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.slow
def test_stop_rule_same_predictions_fewer_tokens(chatty_model, data_dir, tmp_path):
    from jleval.metrics.postprocess import postprocess

    common = dict(model=str(chatty_model), backend="hf", tasks="jemhopqa,niilc", max_num_samples=16,
                  data_dir=data_dir, out=tmp_path)
    with_stop = run(RunOptions(run_name="stop", **common))
    without = run(RunOptions(run_name="nostop", stop_rule=False, **common))
    tokens = {"stop": 0, "nostop": 0}
    blank_lines = 0
    for task in ("jemhopqa", "niilc"):
        a = {r["id"]: r for r in read_outputs(with_stop.run_dir / "outputs" / f"{task}.jsonl")}
        b = {r["id"]: r for r in read_outputs(without.run_dir / "outputs" / f"{task}.jsonl")}
        assert a.keys() == b.keys()
        for i in a:
            assert postprocess(a[i]["generation"], "llm-jp-eval-1.4.1") == postprocess(b[i]["generation"], "llm-jp-eval-1.4.1")
            blank_lines += "\n\n" in b[i]["generation"]
            tokens["stop"] += a[i]["completion_tokens"]
            tokens["nostop"] += b[i]["completion_tokens"]
    assert blank_lines >= 3, "the probe model should write blank lines for this test to mean something"
    assert tokens["stop"] < tokens["nostop"]
    print(f"stop rule: {tokens['stop']} vs {tokens['nostop']} generated tokens "
          f"({tokens['stop'] / tokens['nostop']:.2f}x) with identical post-processed predictions")


def test_chat_template_is_applied_and_a_model_without_one_is_refused(tiny_model, data_dir, tmp_path):
    """--chat-template renders each prompt with the tokenizer's template (the system prompt included) before
    tokenizing, on the hf backend as on vLLM; a model without a template is refused before anything runs."""
    import shutil

    from jleval.backends.hf import HFBackend
    from jleval.errors import UsageError

    common = dict(model=str(tiny_model), backend="hf", tasks="jamp", max_num_samples=2, data_dir=data_dir,
                  out=tmp_path)
    plain = read_outputs(run(RunOptions(**common, run_name="plain")).run_dir / "outputs" / "jamp.jsonl")
    chat = read_outputs(run(RunOptions(**common, run_name="chat", chat_template=True,
                                       system_prompt="日本語で答えてください。")).run_dir / "outputs" / "jamp.jsonl")
    hf = HFBackend(str(tiny_model), device="cpu")
    tok = hf.tokenizer
    for p, c in zip(plain, chat):
        rendered = tok.apply_chat_template([{"role": "system", "content": "日本語で答えてください。"},
                                            {"role": "user", "content": p["input"]}], tokenize=False,
                                           add_generation_prompt=True)
        assert "日本語で答えてください。" in rendered
        assert c["prompt_tokens"] > p["prompt_tokens"]
    no_chat = tmp_path / "no-chat-model"
    shutil.copytree(tiny_model, no_chat)
    cfg = json.loads((no_chat / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg.pop("chat_template", None)
    (no_chat / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    for extra in no_chat.glob("chat_template.*"):
        extra.unlink()
    with pytest.raises(UsageError, match="has no chat template"):
        run(RunOptions(**{**common, "model": str(no_chat)}, run_name="nochat", chat_template=True))
    assert not (tmp_path / "nochat").exists()


def test_new_weights_in_the_same_folder_are_not_served_from_the_cache(tiny_model, data_dir, tmp_path):
    import shutil

    from jleval.errors import RunError
    from jleval.tiny import build_tiny_model

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    common = dict(model=str(folder), backend="hf", tasks="jamp", max_num_samples=2, data_dir=data_dir,
                  out=tmp_path / "runs", run_name="r")
    run(RunOptions(**common))
    shutil.rmtree(folder)
    build_tiny_model(folder, seed=1)
    with pytest.raises(RunError, match="model_identity"):
        run(RunOptions(**common))
    res = run(RunOptions(**{**common, "run_name": "r2"}))
    assert res.counts["jamp"]["generated"] == 2
    # the same folder spelled another way is the same model: its content digest decides
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        again = run(RunOptions(**{**common, "model": "./model", "run_name": "r2", "out": tmp_path / "runs"}))
    finally:
        os.chdir(cwd)
    assert again.counts["jamp"] == {"total": 2, "cached": 2, "generated": 0, "errors": 0}


def test_a_model_that_fails_to_load_leaves_no_run_folder(data_dir, tmp_path):
    from jleval.errors import RunError

    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "README.md").write_text("no weights here")
    with pytest.raises(RunError, match="not-a-model"):
        run(RunOptions(model=str(bad), backend="hf", tasks="jamp", max_num_samples=2, data_dir=data_dir,
                       out=tmp_path / "runs", run_name="r"))
    assert not (tmp_path / "runs" / "r").exists()
