"""`jleval export` (llm-jp-eval results layout, JSON Lines) and `jleval import`: real runs on the bundled demo sample
(the oracle and majority baselines; the tiny random-weight Llama through the hf backend), exported, imported back and
tabled."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jleval import table
from jleval.errors import UsageError
from jleval.export import export_runs
from jleval.fsutil import sha256_text
from jleval.importer import ImportFileError, import_results
from jleval.run import RunOptions, run
from jleval.tasks import CATEGORIES
from tests.test_modelinfo import sample_data

TASKS = "jamp,jcommonsenseqa,jemhopqa,mawps"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "jleval.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data = sample_data(root / "data", TASKS)
    out = {}
    for name, backend, model in (("majority", "majority", "majority"), ("oracle", "oracle", "oracle")):
        out[name] = run(RunOptions(model=model, backend=backend, tasks=TASKS, max_num_samples=6, data_dir=data,
                                   out=root / "runs", run_name=name)).run_dir
    return root, data, out


def score_columns(lb: table.Leaderboard) -> list[str]:
    return [c for c in lb.columns if c == "AVG" or c in CATEGORIES or c.startswith(tuple(TASKS.split(",")))
            or (c.endswith(("_ci_low", "_ci_high")) and not c.startswith("diff_"))]


def test_llm_jp_eval_layout(runs):
    root, data, r = runs
    (path,), notes = export_runs([r["oracle"]], root / "exp-layout", data_dir=data)
    assert path.name == "oracle.json" and any("had no scores: scored it first" in n for n in notes)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert set(doc) == {"scores", "outputs", "config"}
    scores = doc["scores"]
    assert list(scores) == sorted(scores)
    assert {"jamp_exact_match", "jemhopqa_char_f1", "jcommonsenseqa_exact_match", "mawps_exact_match", "AVG",
            *CATEGORIES} <= set(scores)
    assert all(isinstance(v, str) and len(v.split(".")[1]) == 4 for v in scores.values())
    assert scores["jamp_exact_match"] == "1.0000" and scores["NLI"] == "1.0000" and scores["CG"] == "0.0000"
    # AVG: upstream's mean over all 11 categories, missing ones as 0 (4 present categories scored 1.0 by the oracle)
    assert float(scores["AVG"]) == pytest.approx(4 / 11, abs=1e-4)
    assert set(doc["outputs"]) == set(TASKS.split(","))
    outputs = {json.loads(line)["id"]: json.loads(line)
               for line in (r["oracle"] / "outputs" / "jamp.jsonl").read_text(encoding="utf-8").splitlines()}
    for i, s in enumerate(doc["outputs"]["jamp"]):
        assert set(s) == {"prompt", "input", "pred", "gold"} and s["pred"] == s["gold"]
        # upstream's prompt is the template with {input} left in: filled in, it is exactly the prompt the run sent
        assert "{input}" in s["prompt"]
        assert sha256_text(s["prompt"].replace("{input}", s["input"])) == outputs[i]["prompt_sha256"]
    meta = doc["config"]["metainfo"]
    assert (meta["data_type"], meta["num_few_shots"], meta["max_num_samples"]) == ("dev", 4, 6)


@pytest.mark.parametrize("fmt", ["llm-jp-eval", "jsonl"])
def test_export_import_table_reproduces_the_scores(runs, fmt):
    root, data, r = runs
    paths, _ = export_runs([r["majority"], r["oracle"]], root / f"exp-{fmt}", fmt=fmt, data_dir=data)
    imported = [import_results(p, root / "imported" / f"{p.stem}-{fmt}", data_dir=data).run_dir for p in paths]
    lb = table.build([r["majority"], r["oracle"], *imported])
    rows = {row["run"]: row for row in lb.rows}
    cols = score_columns(lb)
    assert "AVG" in cols and "jamp_exact_match" in cols and "jemhopqa_char_f1" in cols
    for name in ("majority", "oracle"):
        theirs = rows[f"{name}-{fmt}"]
        assert {c: rows[name][c] for c in cols} == {c: theirs[c] for c in cols}
        assert theirs["imported"] == fmt and rows[name]["imported"] is None
    assert rows["oracle"]["AVG"] == 1.0 and 0 < rows["majority"]["AVG"] < 1
    assert any("imported runs: " in n and f"majority-{fmt} ({fmt})" in n for n in lb.notes)


def test_a_tiny_model_run_round_trips_with_its_model_columns(tiny_model, tmp_path):
    data = sample_data(tmp_path / "data")
    tiny = run(RunOptions(model=str(tiny_model), backend="hf", tasks="jamp", max_num_samples=4, data_dir=data,
                          out=tmp_path / "runs", run_name="tiny")).run_dir
    (path,), _ = export_runs([tiny], tmp_path / "exp", data_dir=data)
    back = import_results(path, tmp_path / "runs" / "tiny-back").run_dir
    rows = {row["run"]: row for row in table.build([tiny, back]).rows}
    assert rows["tiny"]["jamp_exact_match"] == rows["tiny-back"]["jamp_exact_match"] is not None
    assert rows["tiny-back"]["architecture"] == "LlamaForCausalLM" and rows["tiny-back"]["precision"] == "float32"
    assert rows["tiny-back"]["params"] == rows["tiny"]["params"] is not None


def test_jsonl_rows_carry_per_sample_scores(runs):
    root, data, r = runs
    (path,), _ = export_runs([r["oracle"]], root / "exp-rows", fmt="jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 4 * 6 and {row["task"] for row in rows} == set(TASKS.split(","))
    jamp = [row for row in rows if row["task"] == "jamp"]
    assert [row["id"] for row in jamp] == list(range(6))
    assert all(row["scores"] == {"exact_match": 1.0} and row["run"] == "oracle" for row in jamp)


def test_jsonl_of_bare_generations_takes_gold_from_the_sets(runs, tmp_path):
    root, data, r = runs
    gold = json.loads((data / "1.4.1" / "evaluation" / "dev" / "jamp.json").read_text(encoding="utf-8"))["samples"]
    f = tmp_path / "gens.jsonl"
    f.write_text("".join(json.dumps({"task": "jamp", "id": i, "generation": gold[i]["output"] if i % 2 else "x"})
                         + "\n" for i in range(4)), encoding="utf-8")
    res = import_results(f, tmp_path / "runs" / "gens", data_dir=data)
    lb = table.build([res.run_dir])
    assert lb.rows[0]["jamp_exact_match"] == 0.5
    (tmp_path / "bad.jsonl").write_text(json.dumps({"task": "jamp", "id": 99999, "generation": "a"}) + "\n",
                                        encoding="utf-8")
    with pytest.raises(ImportFileError) as e:
        import_results(tmp_path / "bad.jsonl", tmp_path / "runs" / "bad", data_dir=data)
    assert "bad.jsonl:1" in e.value.message and "sample 99999" in e.value.message
    assert not (tmp_path / "runs" / "bad").exists()


def test_not_a_results_file_is_named_with_what_is_missing(tmp_path):
    f = tmp_path / "other.json"
    f.write_text(json.dumps({"scores": {"AVG": "0.1"}}), encoding="utf-8")
    with pytest.raises(ImportFileError) as e:
        import_results(f, tmp_path / "runs" / "x")
    assert "other.json is not an llm-jp-eval results file: missing 'outputs', 'config'" in e.value.message
    f.write_text(json.dumps({"scores": {}, "config": {}, "outputs": {"jamp": [{"input": "a", "gold": "b"}]}}),
                 encoding="utf-8")
    with pytest.raises(ImportFileError) as e:
        import_results(f, tmp_path / "runs" / "x")
    assert "outputs.jamp[0] has no string 'pred'" in e.value.message
    r = cli("import", f, "--out", tmp_path / "runs" / "x")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "has no string 'pred'" in r.stderr
    assert not (tmp_path / "runs" / "x").exists()


def test_import_never_overwrites_a_run(runs, tmp_path):
    root, data, r = runs
    (path,), _ = export_runs([r["oracle"]], tmp_path / "exp")
    with pytest.raises(UsageError) as e:
        import_results(path, r["majority"])
    assert "already exists" in e.value.message


def test_score_differences_name_what_jleval_does_not_reproduce():
    from jleval.importer import score_differences

    scores = {"tasks": {"jamp": {"metrics": {"exact_match": {"value": 0.5}}},
                        "jsts": {"metrics": {"pearson": {"value": None}}}}}
    assert score_differences(scores, {"jamp_exact_match": "0.5000", "jsts_pearson": "0.1"}) == []
    assert score_differences(scores, {"jamp_exact_match": "0.5002"}) == ["jamp_exact_match: file 0.5002, jleval 0.5000"]


@pytest.mark.slow
def test_cli_export_then_import_then_table(runs, tmp_path):
    root, data, r = runs
    res = cli("export", r["oracle"], "--out", tmp_path / "exp", "--data-dir", data)
    assert res.returncode == 0, res.stderr
    res = cli("import", tmp_path / "exp" / "oracle.json", "--out", tmp_path / "runs" / "back")
    assert res.returncode == 0, res.stderr
    assert "imported 24 samples of 4 task(s)" in res.stdout and "differs from the file" not in res.stdout
    res = cli("table", r["oracle"], tmp_path / "runs" / "back", "--out", tmp_path / "lb.csv", "--no-charts")
    assert res.returncode == 0, res.stderr
    assert "imported runs: back (llm-jp-eval)" in (tmp_path / "lb.md").read_text(encoding="utf-8")


def _results(outputs=None, config=None, scores=None) -> dict:
    sample = {"prompt": "p {input}", "input": "a", "pred": "b", "gold": "b"}
    return {"scores": scores or {}, "outputs": outputs if outputs is not None else {"jamp": [sample]},
            "config": config or {}}


def _refused(tmp_path, name: str, content: str, *fragments: str) -> None:
    """`jleval import` of `content` fails on one line naming the file and `fragments`, exit 2, nothing written."""
    f = tmp_path / name
    f.write_text(content, encoding="utf-8")
    out = tmp_path / "runs" / f"{f.stem}-out"
    with pytest.raises(ImportFileError) as e:
        import_results(f, out)
    assert name in e.value.message and all(x in e.value.message for x in fragments), e.value.message
    assert not out.exists()
    before = sorted(p for p in tmp_path.rglob("*"))
    r = cli("import", f, "--out", out)
    assert r.returncode == 2 and "Traceback" not in r.stderr and name in r.stderr, r.stderr
    assert not out.exists() and sorted(p for p in tmp_path.rglob("*")) == before


def test_task_names_that_are_paths_are_refused_and_nothing_written(tmp_path):
    sample = {"input": "a", "pred": "b", "gold": "b"}
    for i, task in enumerate((str(tmp_path / "x" / "ABSOLUTE_WRITE"), "../../x", "", ".", "..", "a/b")):
        _refused(tmp_path, f"paths{i}.json", json.dumps(_results({task: [sample]})), "is not a plain name")
        _refused(tmp_path, f"paths{i}.jsonl", json.dumps({"task": task, "id": 0, "generation": "g", "gold": "g",
                                                          "input": "i"}) + "\n", ":1:", "is not a plain name")
    assert not (tmp_path / "x").exists() and not (tmp_path.parent.parent / "x.jsonl").exists()


def test_broken_values_are_one_line_errors_not_tracebacks(tmp_path):
    line = {"task": "jamp", "id": 0, "generation": "g", "gold": "g", "input": "i"}
    _refused(tmp_path, "sur.json", json.dumps(_results({"jamp": [{"input": "a", "pred": "\ud800", "gold": "b"}]})),
             "outputs.jamp[0].pred", "unpaired surrogate")
    _refused(tmp_path, "sur.jsonl", json.dumps({**line, "generation": "\ud800"}) + "\n", ":1:", "unpaired surrogate")
    _refused(tmp_path, "cfg.json", json.dumps(_results(config={"jleval": {"model_info": {"params": float("nan")}}})),
             "model_info.params")
    _refused(tmp_path, "inf.json", json.dumps(_results(config={"jleval": {"model_info": {"params": 1e999}}})),
             "model_info.params")
    _refused(tmp_path, "dup.jsonl", json.dumps(line) + "\n" + json.dumps(line) + "\n", "dup.jsonl:2:",
             "first on line 1")
    _refused(tmp_path, "split.json", json.dumps(_results(config={"metainfo": {"data_type": "../../x"}})),
             "config.metainfo.data_type")
    _refused(tmp_path, "shots.json", json.dumps(_results(config={"metainfo": {"num_few_shots": -7}})),
             "config.metainfo.num_few_shots must be an integer from 0, found -7")
    _refused(tmp_path, "max.json", json.dumps(_results(config={"metainfo": {"max_num_samples": -99}})),
             "config.metainfo.max_num_samples must be an integer from -1")
    _refused(tmp_path, "model.json", json.dumps(_results(config={"model": {"pretrained_model_name_or_path": ["a"]}})),
             "config.model.pretrained_model_name_or_path must be a string")
    _refused(tmp_path, "model.jsonl", json.dumps({**line, "model": ["a"]}) + "\n", "'model' must be a string")


def test_odd_but_harmless_fields_import(tmp_path):
    line = {"task": "jamp", "id": 0, "generation": "g", "gold": "g", "input": "i"}
    f = tmp_path / "run.jsonl"
    f.write_text(json.dumps({**line, "run": [1]}) + "\n" + json.dumps({**line, "id": 1, "run": [1]}) + "\n",
                 encoding="utf-8")
    assert import_results(f, tmp_path / "runs" / "a").tasks == {"jamp": 2}
    f.write_text(json.dumps({**line, "run": [1]}) + "\n" + json.dumps({**line, "id": 1, "run": [2]}) + "\n",
                 encoding="utf-8")
    with pytest.raises(ImportFileError, match="samples of 2 runs"):
        import_results(f, tmp_path / "runs" / "b")
    g = tmp_path / "cfg.json"
    g.write_text(json.dumps(_results(config={"jleval": [1]}, scores={"jamp_exact_match": "abc"})), encoding="utf-8")
    res = import_results(g, tmp_path / "runs" / "c")
    assert res.tasks == {"jamp": 1}
    assert any("jamp_exact_match='abc'" in n and "not compared" in n for n in res.notes), res.notes
    assert table.build([res.run_dir]).rows[0]["run"] == "c"


def test_import_naming_a_model_folder_with_broken_weights_imports_with_empty_columns(tmp_path):
    import struct

    model = tmp_path / "model"
    model.mkdir()
    header = b"[" * 100000
    (model / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    (model / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}),
                                       encoding="utf-8")
    f = tmp_path / "res.json"
    f.write_text(json.dumps(_results(config={"model": {"pretrained_model_name_or_path": str(model)}})),
                 encoding="utf-8")
    r = cli("import", f, "--out", tmp_path / "runs" / "m", "--no-score")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    info = json.loads((tmp_path / "runs" / "m" / "manifest.json").read_text(encoding="utf-8"))["model_info"]
    assert info["architecture"] == "LlamaForCausalLM" and info["params"] is None
    assert any("not a readable safetensors file" in n for n in info["notes"])
