"""`jleval sweep`: a closed schema (one-line errors naming the file and key), a plan for --dry-run, and a real
sweep (the tiny model on CPU, the oracle, a model folder that does not exist) that goes on past the broken model,
exits 3, writes one leaderboard, and resumes as a whole from the caches."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from jleval import sweep
from jleval.errors import UsageError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ('[[model]]\nid = "m"\nflavour = "x"\n', "unknown key 'flavour' in [[model]] number 1"),
    ('speed = 1\n[[model]]\nid = "m"\n', "unknown key 'speed' in the top level"),
    ('[run]\ntask = "jamp"\n[[model]]\nid = "m"\n', "unknown key 'task' in [run]"),
    ('[[model]]\nid = "m"\ntasks = "jamp"\n', "unknown key 'tasks' in [[model]] number 1"),
    ('[[model]]\nid = "m"\ntensor_parallel_size = "2"\n', "tensor_parallel_size must be a int, not '2'"),
    ('[[model]]\nid = "m"\nchat_template = 1\n', "chat_template must be a bool, not 1"),
    ('[[model]]\nname = "m"\n', "[[model]] number 1 has no id"),
    ('[run]\ntasks = "jamp"\n', "no [[model]] tables"),
    ('[[model]]\nid = "a/m"\n[[model]]\nid = "a/m"\n', "two models would write the same run folder"),
    ('parallel = 0\n[[model]]\nid = "m"\n', "parallel must be 1 or more"),
    ('[[model]\nid = "m"\n', "not valid TOML"),
])
def test_a_bad_sweep_file_is_one_error_naming_the_file_and_the_key(tmp_path, text, message):
    path = _write(tmp_path / "s.toml", text)
    with pytest.raises(UsageError) as err:
        sweep.load(path)
    assert str(path) in err.value.message and message in err.value.message
    if "'tasks'" in message:
        assert "set it in [run]" in err.value.hint


def test_the_plan_merges_run_defaults_with_each_model(tmp_path):
    path = _write(tmp_path / "s.toml", """
out = "o"
parallel = 2
[run]
tasks = "jamp"
max_num_samples = 3
backend = "hf"
dtype = "float32"
stop_at_blank_line = false
[[model]]
id = "org/a"
name = "a"
[[model]]
id = "org/b"
backend = "vllm"
tensor_parallel_size = 2
ray = "10.0.0.1:6379"
replicas = "auto"
request_timeout = 30
""")
    s = sweep.load(path)
    assert s.parallel == 2 and s.out == tmp_path / "o" and s.leaderboard == tmp_path / "leaderboard.csv"
    a, b = s.models
    assert (a.name, a.options.backend, a.options.tasks, a.options.max_num_samples) == ("a", "hf", "jamp", 3)
    assert a.options.backend_options == {"dtype": "float32"} and a.options.stop_rule is False
    assert b.name == "org_b_dev_4shot" and b.options.run_name == b.name
    assert b.options.backend_options == {"dtype": "float32", "tensor_parallel_size": 2, "ray": "10.0.0.1:6379",
                                         "replicas": "auto", "timeout": 30}
    rows = sweep.plan_rows(s)
    assert [r["state"] for r in rows] == ["new", "new"] and rows[1]["backend"] == "vllm"


def _cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jleval.cli", "sweep", *map(str, args)], capture_output=True,
                          text=True, timeout=900, cwd=cwd)


def _leaderboard(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        return {row["run"]: row["AVG"] for row in csv.DictReader(f)}


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [1, 2])
def test_a_sweep_goes_on_past_a_broken_model_and_resumes_as_a_whole(tiny_model, raw_dir, tmp_path, parallel):
    path = _write(tmp_path / "sweep.toml", f"""
parallel = {parallel}
[run]
tasks = "jamp,jemhopqa"
max_num_samples = 5
raw_dir = "{raw_dir}"
data_dir = "jaster"
[[model]]
id = "{tiny_model}"
name = "tiny"
backend = "hf"
[[model]]
id = "oracle"
name = "oracle"
backend = "oracle"
[[model]]
id = "{tmp_path}/no-such-folder"
name = "broken"
backend = "hf"
""")
    r = _cli(path, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "tiny: " in r.stdout and "broken: " in r.stdout and "(new)" in r.stdout
    assert not (tmp_path / "runs").exists()  # the plan runs nothing

    r = _cli(path, "--no-charts")
    assert r.returncode == 3, r.stderr
    assert "broken failed:" in r.stderr and "no-such-folder" in r.stderr
    board = _leaderboard(tmp_path / "leaderboard.csv")
    assert sorted(board) == ["oracle", "tiny"]
    assert float(board["oracle"]) == 1.0
    outputs = tmp_path / "runs" / "tiny" / "outputs" / "jemhopqa.jsonl"
    before = outputs.read_text(encoding="utf-8")
    assert before.count("\n") == 5

    r = _cli(path, "--dry-run")
    assert "tiny: " in r.stdout and "(resume)" in r.stdout
    r = _cli(path, "--no-charts")  # the same command again: everything from the caches
    assert r.returncode == 3
    assert outputs.read_text(encoding="utf-8") == before
    assert _leaderboard(tmp_path / "leaderboard.csv") == board


def test_a_sweep_where_no_model_can_run_fails_with_one_line(tmp_path, raw_dir):
    path = _write(tmp_path / "sweep.toml", f"""
[run]
tasks = "jamp"
max_num_samples = 2
raw_dir = "{raw_dir}"
data_dir = "jaster"
[[model]]
id = "m1"
backend = "nonsense"
""")
    r = _cli(path)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "m1_dev_4shot failed: unknown backend 'nonsense'" in " ".join(r.stderr.split())
    assert [line for line in r.stderr.splitlines() if line.startswith("error:")] == [
        f"error: no model of {path} could run (1 failed, reasons above)"]


def test_an_unknown_key_stops_the_sweep_before_anything_runs(tmp_path):
    path = _write(tmp_path / "sweep.toml", '[[model]]\nid = "oracle"\nbackend = "oracle"\ntemprature = 0.5\n')
    r = _cli(path)
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == f"error: {path}: unknown key 'temprature' in [[model]] number 1"
    assert not (tmp_path / "runs").exists()


def test_the_plan_masks_a_base_url_password(tmp_path):
    path = _write(tmp_path / "s.toml", """
out = "o"
[run]
tasks = "jamp"
[[model]]
id = "served"
backend = "openai"
base_url = "http://user:hunter2@127.0.0.1:8000/v1"
""")
    (row,) = sweep.plan_rows(sweep.load(path))
    assert row["options"]["base_url"] == "http://user:***@127.0.0.1:8000/v1"
