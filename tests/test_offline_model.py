"""A Hub model id that is not in the local Hugging Face cache and cannot be downloaded (HF_HUB_OFFLINE=1, or no
network) is named in under 5 s, before torch and transformers load and without the Hub's retries (about a minute
before); a model that is in the cache still runs offline."""
from __future__ import annotations

import os
import shutil
import time

import pytest
from own_task_fixtures import jleval, make_task_dir


def _run(tmp_path, model, **env):
    tasks = make_task_dir(tmp_path / "mytasks")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        t0 = time.perf_counter()
        r = jleval("run", model, "--backend", "hf", "--tasks", "tashizan", "--tasks-dir", tasks, "--data-dir",
                   tmp_path / "data", "--out", tmp_path / "runs", "--max-num-samples", "3", "--no-score", cwd=tmp_path,
                   check=None)
        return r, time.perf_counter() - t0
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_offline_missing_model_is_named_at_once(tmp_path):
    r, seconds = _run(tmp_path, "no-such-org/no-such-model", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    err = " ".join(r.stderr.split())
    assert "model 'no-such-org/no-such-model' is not in the Hugging Face cache" in err and "HF_HUB_OFFLINE is set" in err
    assert seconds < 5, f"{seconds:.1f} s"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no empty run folder


def test_unreachable_hub_is_named_at_once(tmp_path):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
    env.update(dict.fromkeys(("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"), ""))
    r, seconds = _run(tmp_path, "no-such-org/no-such-model", **env)
    assert r.returncode == 1 and "127.0.0.1 cannot be reached" in " ".join(r.stderr.split())
    assert seconds < 5, f"{seconds:.1f} s"


@pytest.mark.slow
def test_a_cached_model_runs_offline(tmp_path, tiny_model):
    """The check lets a model through when its files are in the cache: transformers then loads it offline."""
    snap = tmp_path / "hf" / "hub" / "models--someone--tiny" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_model, snap)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("0" * 40, encoding="utf-8")
    r, _ = _run(tmp_path, "someone/tiny", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "runs").is_dir() and any((tmp_path / "runs").rglob("tashizan.jsonl"))
