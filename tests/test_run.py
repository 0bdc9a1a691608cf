"""`jleval run` orchestration with the honest baselines and scripted backends (the model backends have their
own tests): caching, resume after a crash or a truncated line, refusal of mismatched settings, prompts."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jleval.backends.scripted import ScriptedBackend
from jleval.errors import BackendError, RunError
from jleval.run import RunOptions, read_outputs, run, stops_for
from jleval.tasks import get_task
from jleval.types import Completion


@pytest.fixture(scope="module")
def data_dir(raw_dir, tmp_path_factory):
    from jleval.jaster.preprocess import preprocess

    d = tmp_path_factory.mktemp("jaster")
    preprocess([get_task("jamp")], d, raw_dir=raw_dir)
    return d


def opts(data_dir, out, **kw):
    base = dict(model="oracle", backend="oracle", tasks="jamp", data_dir=data_dir, out=out, run_name="r",
                max_num_samples=40)
    base.update(kw)
    return RunOptions(**base)


def lines(run_dir, task="jamp"):
    return read_outputs(Path(run_dir) / "outputs" / f"{task}.jsonl")


def test_oracle_run_writes_outputs_and_manifest(data_dir, tmp_path):
    res = run(opts(data_dir, tmp_path))
    rows = lines(res.run_dir)
    assert len(rows) == 40 and [r["id"] for r in rows] == list(range(40))
    assert all(r["generation"] == r["gold"] and r["error"] is None for r in rows)
    assert len({r["key"] for r in rows}) == 40
    m = json.loads((res.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert m["settings"]["split"] == "dev" and m["settings"]["num_few_shots"] == 4
    assert m["settings"]["add_special_tokens"] is False and m["settings"]["template"] == "v1.4.1"
    assert m["tasks"]["jamp"]["n_samples"] == 40 and m["tasks"]["jamp"]["stop"] == ["\n\n"]
    assert len(m["tasks"]["jamp"]["data_sha256"]) == 64
    assert m["backend"]["backend"] == "oracle" and "packages" in m["environment"]
    assert res.counts["jamp"] == {"total": 40, "cached": 0, "generated": 40, "errors": 0}
    # a re-run is all cache hits and leaves the outputs byte-identical
    before = (res.run_dir / "outputs/jamp.jsonl").read_bytes()
    res2 = run(opts(data_dir, tmp_path))
    assert res2.counts["jamp"]["cached"] == 40 and res2.counts["jamp"]["generated"] == 0
    assert (res.run_dir / "outputs/jamp.jsonl").read_bytes() == before


def test_more_samples_extend_the_cache(data_dir, tmp_path):
    """--max-num-samples may grow a run: the earlier samples come from the cache, only the new ones are
    generated; a smaller number is refused for a named run (a run never shrinks)."""
    first = run(opts(data_dir, tmp_path, max_num_samples=10, run_name="a"))
    before = (first.run_dir / "outputs/jamp.jsonl").read_bytes()
    backend = ScriptedBackend(lambda r: r.gold)
    res = run(opts(data_dir, tmp_path, max_num_samples=20, run_name="a"), backend=backend)
    assert res.counts["jamp"] == {"total": 20, "cached": 10, "generated": 10, "errors": 0}
    assert [r.sample_id for r in backend.requests] == list(range(10, 20))
    assert (res.run_dir / "outputs/jamp.jsonl").read_bytes().startswith(before)
    assert [r["id"] for r in lines(res.run_dir)] == list(range(20))
    m = json.loads((res.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert m["settings"]["max_num_samples"] == 20 and m["tasks"]["jamp"]["n_samples"] == 20
    with pytest.raises(RunError, match="(?s)max_num_samples: 20 there vs 5 now.*a run may grow"):
        run(opts(data_dir, tmp_path, max_num_samples=5, run_name="a"))


def test_engine_crash_keeps_completions_and_resume_finishes(data_dir, tmp_path):
    with pytest.raises(BackendError, match="failed mid-run.*illegal memory access") as e:
        run(opts(data_dir, tmp_path), backend=ScriptedBackend(
            lambda r: r.gold, crash_after=13, crash=RuntimeError("CUDA error: an illegal memory access was encountered")))
    assert "re-run the same command" in str(e.value)
    assert len(lines(tmp_path / "r")) == 13
    res = run(opts(data_dir, tmp_path))
    assert res.counts["jamp"]["cached"] == 13 and res.counts["jamp"]["generated"] == 27
    rows = lines(res.run_dir)
    assert sorted(r["id"] for r in rows) == list(range(40))


def test_truncated_last_line_is_repaired_not_duplicated(data_dir, tmp_path):
    res = run(opts(data_dir, tmp_path))
    path = res.run_dir / "outputs/jamp.jsonl"
    data = path.read_bytes().splitlines(keepends=True)
    # simulate kill -9 in the middle of writing line 31: 30 full lines + half a line
    path.write_bytes(b"".join(data[:30]) + data[30][: len(data[30]) // 2])
    assert len(read_outputs(path)) == 30
    res = run(opts(data_dir, tmp_path))
    assert res.counts["jamp"] == {"total": 40, "cached": 30, "generated": 10, "errors": 0}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 40 and len({r["key"] for r in rows}) == 40


def flaky(r):
    """Every odd sample fails as a server would after its retries."""
    if r.sample_id % 2:
        return Completion(text="", finish_reason="error", error="HTTP 503 after 5 retries")
    return r.gold


def test_failed_requests_are_recorded_and_retried(data_dir, tmp_path):
    res = run(opts(data_dir, tmp_path), backend=ScriptedBackend(flaky))
    assert res.counts["jamp"]["errors"] == 20
    assert sum(1 for r in lines(res.run_dir) if r["error"]) == 20
    res = run(opts(data_dir, tmp_path))
    assert res.counts["jamp"]["cached"] == 20 and res.counts["jamp"]["generated"] == 20


def test_majority_baseline_answers_the_most_frequent_train_label(data_dir, tmp_path):
    res = run(opts(data_dir, tmp_path, model="majority", backend="majority", run_name="m"))
    train = json.loads((data_dir / "1.4.1/evaluation/train/jamp.json").read_text(encoding="utf-8"))["samples"]
    from collections import Counter

    top = Counter(s["output"] for s in train).most_common(1)[0][0]
    assert {r["generation"] for r in lines(res.run_dir)} == {top}


def test_stop_rule_only_where_postprocessing_cuts():
    o = RunOptions(model="m")
    assert stops_for(get_task("jamp"), o) == ("\n\n",)
    assert stops_for(get_task("jamp"), RunOptions(model="m", stop_rule=False)) == ()
    assert stops_for(get_task("jamp"), RunOptions(model="m", prompt_style="cot")) == ()


def test_prompt_is_upstream_alpaca_layout_with_first_train_shots(data_dir, tmp_path):
    from jleval.api import dump_prompts

    [(path, n)] = dump_prompts(tmp_path / "p", tasks="jamp", data_dir=data_dir, max_num_samples=5)
    dump = json.loads(path.read_text(encoding="utf-8"))
    assert n == 5 and path.name == "jamp.eval-prompt.json"
    assert set(dump) >= {"target_dataset", "output_length", "max_num_samples", "metrics", "instruction",
                         "prompt_template", "samples", "config"}
    spec = get_task("jamp")
    train = json.loads((data_dir / "1.4.1/evaluation/train/jamp.json").read_text(encoding="utf-8"))["samples"]
    header = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。"
    shots = "".join(f"\n\n### 入力:\n{s['input']}\n\n### 応答:\n{s['output']}" for s in train[:4])
    first = dump["samples"][0]
    assert first["prompt"] == f"{header}\n\n### 指示:\n{spec.instruction}{shots}\n\n### 入力:\n{first['input']}\n\n### 応答:\n"
    [(path0, _)] = dump_prompts(tmp_path / "p0", tasks="jamp", data_dir=data_dir, max_num_samples=1, num_few_shots=0)
    zero = json.loads(path0.read_text(encoding="utf-8"))["samples"][0]["prompt"]
    assert zero == f"{header}\n\n### 指示:\n{spec.instruction}\n\n### 入力:\n{first['input']}\n\n### 応答:\n"


def test_user_template_and_bad_template(data_dir, tmp_path):
    from jleval.errors import UsageError
    from jleval.prompts import load_template, render

    t = tmp_path / "t.j2"
    t.write_text("{{ instruction[:2] }}|{% for s in few_shots %}{{ s.output }};{% endfor %}|{{ input }}", encoding="utf-8")
    out = render(load_template(str(t)), get_task("jamp"), [{"input": "a", "output": "b"}], "Q")
    assert out == "前提|b;|Q"
    bad = tmp_path / "bad.j2"
    bad.write_text("{{ nope }}", encoding="utf-8")
    with pytest.raises(UsageError, match="'nope' is undefined"):
        render(load_template(str(bad)), get_task("jamp"), [], "Q")
    with pytest.raises(UsageError, match="neither a built-in"):
        load_template("v9")


def test_speed_options_may_change_between_sessions(data_dir, tmp_path):
    """Batch size, concurrency, server URL... change how fast, not what: a resume with other values is allowed
    and each session is recorded; an option that changes outputs (dtype) is refused."""
    run(opts(data_dir, tmp_path, max_num_samples=5, backend_options={"concurrency": 3, "dtype": "bfloat16"}))
    res = run(opts(data_dir, tmp_path, max_num_samples=5, backend_options={"concurrency": 1, "dtype": "bfloat16",
                                                                            "base_url": "http://127.0.0.1:9/v1"}))
    m = json.loads((res.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert [s["backend_options"].get("concurrency") for s in m["sessions"]] == [3, 1]
    assert m["settings"]["backend_options"] == {"dtype": "bfloat16"}
    with pytest.raises(RunError, match="backend_options"):
        run(opts(data_dir, tmp_path, max_num_samples=5, backend_options={"dtype": "float32"}))


@pytest.mark.parametrize("kw, message", [
    (dict(max_num_samples=-5), "positive number or -1"), (dict(max_num_samples=0), "positive number or -1"),
    (dict(num_few_shots=-1), "0 or more"), (dict(split="bogus"), "unknown split"),
    (dict(system_prompt="あなたは…"), "--system-prompt needs --chat-template"),
])
def test_bad_run_options(data_dir, tmp_path, kw, message):
    from jleval.errors import UsageError

    with pytest.raises(UsageError, match=message):
        run(opts(data_dir, tmp_path, **kw))
    assert not (tmp_path / "r").exists()


def test_prompts_command_checks_its_options_and_names_what_it_skipped(data_dir, tmp_path):
    import subprocess
    import sys

    from jleval.api import dump_prompts
    from jleval.errors import RunError, UsageError

    with pytest.raises(UsageError, match="0 or more"):
        dump_prompts(tmp_path / "p", tasks="jamp", data_dir=data_dir, num_few_shots=-3)
    with pytest.raises(RunError, match="jamp: has no train split|no task's prompts"):
        dump_prompts(tmp_path / "p", tasks="mgsm", data_dir=data_dir, split="dev")
    cli = [sys.executable, "-m", "jleval.cli", "prompts", "--data-dir", str(data_dir), "--out", str(tmp_path / "q")]
    r = subprocess.run(cli + ["--tasks", "jamp,jnli", "--max-num-samples", "2"], capture_output=True, text=True)
    assert r.returncode == 3 and "skipped jnli" in r.stderr and (tmp_path / "q" / "jamp.eval-prompt.json").is_file()
    r = subprocess.run(cli + ["--tasks", "jamp", "--split", "bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown split" in r.stderr and "Traceback" not in r.stderr


def test_corrupt_manifest_bad_run_name_and_unknown_backend(data_dir, tmp_path):
    from jleval.errors import UsageError

    res = run(opts(data_dir, tmp_path, max_num_samples=3))
    m = json.loads((res.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert m["backend"]["backend"] == "oracle"
    run(opts(data_dir, tmp_path, max_num_samples=3))  # all cached: the backend record stays
    m2 = json.loads((res.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert m2.get("backend") == m["backend"] and len(m2["sessions"]) == 2
    (res.run_dir / "manifest.json").write_text("[]", encoding="utf-8")
    with pytest.raises(RunError, match="manifest.json is corrupt"):
        run(opts(data_dir, tmp_path, max_num_samples=3))
    with pytest.raises(UsageError, match="not a plain folder name"):
        run(opts(data_dir, tmp_path, run_name="../escaped"))
    with pytest.raises(UsageError, match="unknown backend"):
        run(opts(data_dir, tmp_path, backend="nope", run_name="x"))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bad, message", [
    (b"[1, 2, 3]", "line 3: expected a JSON object, found an array"),
    (b'{"id": 2, "gold": "x"}', "line 3: 'key' must be a string \\(no such field\\)"),
    (b'{"id": 2, "key": 17}', "line 3: 'key' must be a string \\(an integer\\)"),
    (b'{"id": 2, "key": "\xff\xfe"}', "line 3: not valid UTF-8 text"),
])
def test_bad_outputs_rows_on_resume_are_one_line_errors(data_dir, tmp_path, bad, message):
    res = run(opts(data_dir, tmp_path, max_num_samples=4))
    path = res.run_dir / "outputs/jamp.jsonl"
    data = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(data[:2]) + bad + b"\n" + b"".join(data[3:]))
    with pytest.raises(RunError, match=message) as e:
        run(opts(data_dir, tmp_path, max_num_samples=4))
    assert str(path) in str(e.value) and "remove that line" in e.value.hint


def test_disk_full_while_writing_outputs_is_named_as_the_file_not_the_backend(data_dir, tmp_path):
    """/dev/full refuses every write with ENOSPC, as a full disk does."""
    from jleval.errors import OutputError

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    (tmp_path / "r/outputs").mkdir(parents=True)
    (tmp_path / "r/outputs/jamp.jsonl").symlink_to("/dev/full")
    with pytest.raises(OutputError, match="cannot write .*jamp.jsonl: No space left on device") as e:
        run(opts(data_dir, tmp_path, max_num_samples=3))
    assert not isinstance(e.value, BackendError) and "backend" not in str(e.value)
    assert "free space" in e.value.hint


def _cli(*args, **kw):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "jleval.cli", *map(str, args)], capture_output=True, text=True, **kw)


@pytest.mark.parametrize("args, message", [
    (["run", "m", "--backend", "hf", "--device", "foo"], "--device 'foo' is not a device"),
    (["run", "m", "--backend", "openai", "--request-timeout", "nan"], "--request-timeout must be a positive number"),
    (["score", "nowhere", "--seed", "-1"], "--seed"),
    (["arena", "rank", "j.jsonl", "--seed", "-1"], "--seed"),
    (["arena", "judge", "a", "b", "--judge", "j", "--seed", "-1"], "--seed"),
    (["arena", "rank", "j.jsonl", "--prior-sd", "nan"], "--prior-sd above 0"),
])
def test_bad_option_values_are_refused_by_name_before_anything_loads(tmp_path, args, message):
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_arena_judge_checks_the_run_folders_before_loading_the_judge(tmp_path):
    """The judge model (here a folder that does not exist, which the hf backend would fail to load) is never
    reached: the run folders are refused first."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    r = _cli("arena", "judge", tmp_path / "a", tmp_path / "b", "--judge", tmp_path / "no-judge", "--backend", "hf")
    assert r.returncode == 1 and "is not a run folder (no manifest.json)" in r.stderr, r.stderr
    assert "no-judge" not in r.stderr


def test_run_exits_3_and_names_skipped_tasks(data_dir, tmp_path):
    r = _cli("run", "oracle", "--backend", "oracle", "--tasks", "jamp,jnli", "--data-dir", data_dir, "--out", tmp_path,
             "--max-num-samples", "2", "--no-score")
    assert r.returncode == 3, r.stderr
    assert "skipped jnli" in r.stderr and "1 of 2 requested tasks were skipped (jnli)" in r.stderr
    r = _cli("run", "oracle", "--backend", "oracle", "--tasks", "jamp", "--data-dir", data_dir, "--out", tmp_path,
             "--max-num-samples", "2", "--no-score")
    assert r.returncode == 0 and "skipped" not in r.stderr, r.stderr


@pytest.mark.parametrize("content, message", [
    (b"{{ input }}{{ 1 / 0 }}", "failed while rendering: ZeroDivisionError"),
    (b"{{ input | int + few_shots }}", "failed while rendering: TypeError"),
    (b"{% include 'other.j2' %}{{ input }}", "line 1: a template cannot include, import or extend"),
    (b"{% extends 'base.j2' %}", "cannot include, import or extend"),
    ("{{ input }}\n".encode("utf-16"), "is not UTF-8 text"),
])
def test_a_bad_user_template_is_one_usage_error(data_dir, tmp_path, content, message):
    from jleval.errors import UsageError

    t = tmp_path / "t.j2"
    t.write_bytes(content)
    with pytest.raises(UsageError, match=message) as e:
        run(opts(data_dir, tmp_path, template=str(t), max_num_samples=2))
    assert not (tmp_path / "r").exists()
    text = str(e.value)  # one line naming the file, one fix: never an error wrapped in another
    assert text.count("fix:") == (1 if e.value.hint else 0) and "UsageError" not in text
    assert str(t) in text or text.startswith("template")


def test_a_changed_gold_is_generated_and_scored_again(data_dir, tmp_path):
    """A label fixed in the evaluation set under the same --version: the resume must not score the cached row
    against its old gold (issue 16): that sample is generated again, and its new row is the one scored."""
    import shutil

    from jleval.fsutil import sha256_file
    from jleval.scoring import score_run

    d = tmp_path / "jaster"
    shutil.copytree(data_dir, d)
    run(opts(d, tmp_path, max_num_samples=6))
    path = d / "1.4.1/evaluation/dev/jamp.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    old = data["samples"][3]["output"]
    new = next(label for label in get_task("jamp").label_list if label != old)
    data["samples"][3]["output"] = new
    path.write_text(json.dumps(data, ensure_ascii=False, indent=4), encoding="utf-8")
    backend = ScriptedBackend(lambda r: r.gold)
    res = run(opts(d, tmp_path, max_num_samples=6), backend=backend)
    assert res.counts["jamp"] == {"total": 6, "cached": 5, "generated": 1, "errors": 0}
    assert [r.sample_id for r in backend.requests] == [3]
    assert [r["gold"] for r in lines(res.run_dir) if r["id"] == 3] == [old, new]
    m = json.loads((res.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert m["tasks"]["jamp"]["data_sha256"] == sha256_file(path)
    s = score_run(res.run_dir, n_bootstrap=0)
    assert s["tasks"]["jamp"]["n"] == 6 and s["tasks"]["jamp"]["metrics"]["exact_match"]["value"] == 1.0
    assert run(opts(d, tmp_path, max_num_samples=6)).counts["jamp"]["cached"] == 6


def test_a_manifest_copied_from_another_model_is_refused(data_dir, tmp_path):
    import shutil

    a = run(opts(data_dir, tmp_path, model="model-a", run_name="a", max_num_samples=3))
    b = run(opts(data_dir, tmp_path, model="model-b", run_name="b", max_num_samples=3))
    shutil.copy(b.run_dir / "manifest.json", a.run_dir / "manifest.json")
    before = (a.run_dir / "outputs/jamp.jsonl").read_bytes()
    with pytest.raises(RunError, match="row for sample 0 was generated by another model than .*a/manifest.json") as e:
        run(opts(data_dir, tmp_path, model="model-b", run_name="a", max_num_samples=3))
    assert "own folder" in e.value.hint
    assert (a.run_dir / "outputs/jamp.jsonl").read_bytes() == before  # nothing blended in


def test_default_run_names_never_collide(data_dir, tmp_path):
    """Settings that change outputs put a short hash into the default name; fewer samples than the default
    folder holds go to <name>_n<N>, more grow it."""
    base = dict(model="oracle", backend="oracle", tasks="jamp", data_dir=data_dir, out=tmp_path, max_num_samples=3)
    assert run(RunOptions(**base)).run_dir.name == "oracle_dev_4shot"
    t = tmp_path / "t.j2"
    t.write_text("{{ input }}", encoding="utf-8")
    names = {run(RunOptions(**base, **kw)).run_dir.name for kw in (
        dict(stop_rule=False), dict(template=str(t)), dict(add_special_tokens=True), dict(chat_template=True),
        dict(chat_template=True, system_prompt="あなたは誠実です。"))}
    assert len(names) == 5 and all(re.fullmatch(r"oracle_dev_4shot_[0-9a-f]{8}", n) for n in names)
    fewer = run(RunOptions(**{**base, "max_num_samples": 2}))
    assert fewer.run_dir.name == "oracle_dev_4shot_n2" and fewer.counts["jamp"]["generated"] == 2
    more = run(RunOptions(**{**base, "max_num_samples": 5}))
    assert more.run_dir.name == "oracle_dev_4shot" and more.counts["jamp"]["cached"] == 3


def test_baselines_and_the_scripted_backend_load_like_any_backend(data_dir, tmp_path):
    from jleval.backends import load_backend
    from jleval.backends.baselines import MajorityBackend, OracleBackend
    from jleval.types import DataSource, GenParams, Request

    req = Request(task="jamp", sample_id=0, prompt="p", gen=GenParams(max_tokens=3), gold="g",
                  label_list=get_task("jamp").label_list)
    assert isinstance(load_backend("oracle", "oracle", dtype="bfloat16"), OracleBackend)
    majority = load_backend("majority", "m", data=DataSource(data_dir, "1.4.1"))
    assert isinstance(majority, MajorityBackend) and next(majority.generate([req]))[1].text in req.label_list
    scripted = load_backend("scripted", "m")
    assert [c.text for _, c in scripted.generate([req, req])] == ["scripted output"] * 2
    assert scripted.describe()["backend"] == "scripted" and scripted.fingerprint() == "scripted:m"
    scripted.close()
    assert scripted.closed
    res = run(opts(data_dir, tmp_path, model="m", backend="scripted", max_num_samples=2))
    assert [r["generation"] for r in lines(res.run_dir)] == ["scripted output"] * 2


def test_run_summary_says_what_the_name_suffix_stands_for(data_dir, tmp_path):
    """`jleval run` explains a default folder's hash suffix by the settings off their defaults; none without."""
    from typer.testing import CliRunner

    from jleval.cli import app

    args = ["run", "oracle", "--backend", "oracle", "--tasks", "jamp", "--data-dir", str(data_dir), "--out",
            str(tmp_path), "--max-num-samples", "2", "--no-score"]
    plain = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert plain.exit_code == 0 and "suffix" not in plain.output
    r = CliRunner().invoke(app, [*args, "--chat-template", "--no-stop-at-blank-line"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    name = next(p.name for p in tmp_path.iterdir() if p.name != "oracle_dev_4shot")
    digest = name.rsplit("_", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{8}", digest)
    assert (f"run folder {name}: the suffix _{digest} hashes the settings that differ from the defaults: "
            "chat_template=True, stop_rule=False") in " ".join(r.output.split())


@pytest.mark.parametrize("model", ["/nonexist/model", "./nonexist", "../no/such/folder"])
def test_a_model_path_that_does_not_exist_is_named_as_a_folder(data_dir, tmp_path, model):
    """Something plainly a path is a missing folder, never a malformed Hub id (huggingface_hub's "Repo id must
    be in the form ..." text)."""
    r = _cli("run", model, "--backend", "hf", "--tasks", "jamp", "--data-dir", data_dir, "--out", tmp_path,
             "--max-num-samples", "1", "--no-score", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert f"error: model folder {model} does not exist" in r.stderr
    assert "Repo id" not in r.stderr and "Traceback" not in r.stderr and r.stderr.count("fix:") == 1
