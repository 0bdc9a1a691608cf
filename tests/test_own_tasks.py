"""Your own tasks (`--tasks-dir DIR`): task files with `[files]` naming local JSON Lines, through the real CLI
(preprocess -> prompts -> run with the tiny model and the oracle -> score -> table), and the errors a user meets:
a bad row named by file and line, a name clashing with a built-in task, a missing file, an edited file."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from own_task_fixtures import TASK, jleval, make_task_dir, rows, write_jsonl

from jleval.errors import MalformedDataError, TaskSpecError, UnknownTaskError, UsageError
from jleval.jaster.preprocess import preprocess
from jleval.tasks import catalogue, get_task, own_tasks, resolve_tasks


@pytest.fixture
def task_dir(tmp_path) -> Path:
    return make_task_dir(tmp_path / "mytasks")


def test_schema_lookup_and_selection(task_dir):
    spec = get_task("tashizan", task_dir)
    assert spec.files == (("train", task_dir / "train.jsonl"), ("dev", task_dir / "dev.jsonl"),
                          ("test", task_dir / "data" / "test.jsonl"))
    assert spec.splits == ("train", "dev", "test") and spec.converter == "own:jsonl" and spec.description == ""
    assert list(own_tasks(task_dir)) == ["tashizan"]
    cat = catalogue(task_dir)
    assert "jnli" in cat and "tashizan" in cat and list(cat).index("tashizan") > list(cat).index("mawps")  # MR
    assert [t.name for t in resolve_tasks("tashizan,jnli", tasks_dir=task_dir)] == ["tashizan", "jnli"]
    assert "tashizan" in [t.name for t in resolve_tasks("all", tasks_dir=task_dir)]
    assert "tashizan" not in [t.name for t in resolve_tasks("all")]
    with pytest.raises(UnknownTaskError, match="tashizan") as e:
        get_task("tashizan")
    assert "--tasks-dir" in e.value.hint


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('name = "tashizan"', 'name = "jnli"'), "is already a built-in task"),
    (lambda t: t.replace('dev = "dev.jsonl"', 'valid = "dev.jsonl"'), "unknown split 'valid'"),
    (lambda t: t.replace('output_length = 5', 'output_length = 5\nconverter = "qa:jemhopqa"'), "unknown key 'converter'"),
    (lambda t: t.replace('metrics = ["exact_match", "char_f1"]', 'metrics = ["exact_match", "char_f1"]\nsplits = ["train", "dev", "test"]').replace('dev = "dev.jsonl"\n', ''), "have no file in [files]"),
    (lambda t: t.replace('train = "train.jsonl"', 'train = 3'), "must be a file name"),
])
def test_bad_task_files_are_named(task_dir, edit, message):
    path = task_dir / "tashizan.toml"
    text = edit(TASK)
    if 'name = "jnli"' in text:
        path.unlink()
        path = task_dir / "jnli.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TaskSpecError) as e:
        own_tasks(task_dir)
    assert message in e.value.message and str(path) in e.value.message


def test_a_tasks_dir_without_task_files_is_refused(tmp_path):
    with pytest.raises(UsageError, match="holds no task file"):
        own_tasks(tmp_path)
    with pytest.raises(UsageError, match="is not a folder"):
        own_tasks(tmp_path / "nope")


def test_preprocess_builds_rebuilds_on_edit_and_names_bad_rows(task_dir, tmp_path):
    out = tmp_path / "data"
    spec = get_task("tashizan", task_dir)
    rep = preprocess([spec], out)
    assert [(r.status, r.sizes) for r in rep.results] == [("built", {"train": 6, "dev": 24, "test": 10})]
    built = json.loads((out / "1.4.1" / "evaluation" / "dev" / "tashizan.json").read_text(encoding="utf-8"))
    assert built["samples"] == [{"input": r["input"], "output": r["output"]} for r in rows(24, 2)]  # file order
    assert built["instruction"] == "質問に数字で答えてください。" and built["metrics"] == ["exact_match", "char_f1"]
    manifest = json.loads((out / "1.4.1" / "manifest.json").read_text(encoding="utf-8"))["tashizan"]
    assert set(manifest["sources"]) == {"train.jsonl", "dev.jsonl", "data/test.jsonl"}
    assert preprocess([spec], out).results[0].status == "cached"
    write_jsonl(task_dir / "dev.jsonl", rows(5, 9))  # the user edits a file: it is rebuilt, not served stale
    assert preprocess([spec], out).results[0].sizes["dev"] == 5
    with (task_dir / "dev.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"input": "1たす1は？", "output": 2}\n')
    with pytest.raises(MalformedDataError) as e:
        preprocess([spec], out)
    assert e.value.message == f'{task_dir / "dev.jsonl"}, line 6: "output" is of type int, not a string'
    (task_dir / "dev.jsonl").write_text('{"input": "a", "output": "b"}\nnot json\n', encoding="utf-8")
    with pytest.raises(MalformedDataError, match=r"dev.jsonl, line 2: not valid JSON"):
        preprocess([spec], out)


def test_a_task_without_train_runs_zero_shot_only(task_dir, tmp_path):
    from jleval.run import RunOptions, run

    (task_dir / "tashizan.toml").write_text(TASK.replace('train = "train.jsonl"   # few-shots come from here\n', ""),
                                            encoding="utf-8")
    common = dict(model="oracle", backend="oracle", tasks="tashizan", tasks_dir=task_dir, data_dir=tmp_path / "d",
                  out=tmp_path / "runs")
    with pytest.raises(UsageError, match="no train split") as e:
        run(RunOptions(**common))
    assert "--num-few-shots 0" in e.value.hint and "[files]" in e.value.hint
    res = run(RunOptions(**common, num_few_shots=0))
    assert res.counts["tashizan"]["generated"] == 24


def test_cli_errors_are_one_line_with_file_and_line(task_dir, tmp_path):
    with (task_dir / "data" / "test.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"question": "1たす1は？", "output": "2"}\n')
    r = jleval("preprocess", "--tasks", "tashizan", "--tasks-dir", task_dir, "--out", tmp_path / "d", cwd=tmp_path,
               check=1)
    assert "Traceback" not in r.stderr
    assert f'{task_dir / "data" / "test.jsonl"}, line 11: "input" is missing' in " ".join(r.stderr.split())
    (task_dir / "data" / "test.jsonl").unlink()
    r = jleval("preprocess", "--tasks", "tashizan", "--tasks-dir", task_dir, "--out", tmp_path / "d", cwd=tmp_path,
               check=3)
    err = " ".join(r.stderr.split())
    assert "tashizan: missing data/test.jsonl" in err and "[files] test" in err and "raw" not in err.lower()
    r = jleval("run", "x", "--backend", "oracle", "--tasks", "tashizan", cwd=tmp_path, check=2)
    assert "unknown task 'tashizan'" in r.stderr and "--tasks-dir" in r.stderr


@pytest.mark.slow
def test_own_task_end_to_end_with_tiny_model_and_oracle(task_dir, tmp_path, tiny_model):
    data = tmp_path / "data"
    common = ["--tasks", "tashizan", "--tasks-dir", task_dir]
    r = jleval("tasks", "--tasks-dir", task_dir, cwd=tmp_path)
    assert "tashizan" in r.stdout and "CC0-1.0" in r.stdout
    r = jleval("preprocess", *common, "--out", data, cwd=tmp_path)
    assert "built" in r.stdout
    jleval("prompts", *common, "--data-dir", data, "--num-few-shots", "2", "--out", tmp_path / "prompts", cwd=tmp_path)
    dump = json.loads((tmp_path / "prompts" / "tashizan.eval-prompt.json").read_text(encoding="utf-8"))
    first = dump["samples"][0]["prompt"]
    shots = rows(6, 1)
    assert "質問に数字で答えてください。" in first and shots[0]["input"] in first and shots[1]["output"] in first
    assert shots[2]["input"] not in first and first.endswith("### 応答:\n")  # 2 shots, the v1.4.1 layout
    runs = tmp_path / "runs"
    for name, extra in (("oracle", ["--backend", "oracle"]), ("tiny", [tiny_model, "--backend", "hf"])):
        args = ["run", *(extra if name == "tiny" else ["oracle", *extra]), *common, "--data-dir", data,
                "--out", runs, "--run-name", name]
        jleval(*args, cwd=tmp_path)
    jleval("score", runs / "tiny", "--tasks-dir", task_dir, cwd=tmp_path)
    scores = json.loads((runs / "tiny" / "scores.json").read_text(encoding="utf-8"))
    task = scores["tasks"]["tashizan"]
    assert set(task["metrics"]) == {"exact_match", "char_f1"} and task["metrics"]["char_f1"]["ci95"] is not None
    oracle = json.loads((runs / "oracle" / "scores.json").read_text(encoding="utf-8"))
    assert oracle["tasks"]["tashizan"]["metrics"]["exact_match"]["value"] == 1.0
    assert oracle["categories"]["MR"]["value"] == 1.0  # star_metric: the task counts in its category
    manifest = json.loads((runs / "tiny" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["tasks"]["tashizan"]["n_samples"] == 24 and manifest["tasks"]["tashizan"]["task_file_sha256"]
    jleval("table", runs / "oracle", runs / "tiny", "--tasks-dir", task_dir, "--out", tmp_path / "lb.csv",
           "--no-charts", cwd=tmp_path)
    lb_rows = list(csv.DictReader((tmp_path / "lb.csv").open(encoding="utf-8")))
    assert [r["run"] for r in lb_rows][0] == "oracle" and float(lb_rows[0]["tashizan_exact_match"]) == 1.0
    assert float(lb_rows[1]["tashizan_char_f1"]) == pytest.approx(task["metrics"]["char_f1"]["value"], abs=1e-4)
