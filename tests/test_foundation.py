"""The project's frame: CLI basics, task-file schema, preprocess on real jamp files, bad input, the wheel."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jleval.cli import app
from jleval.errors import TaskSpecError, UnknownTaskError
from jleval.jaster.preprocess import preprocess
from jleval.tasks import get_task, parse_task, resolve_tasks

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def invoke(args, **kw):
    """Run the CLI through main()'s error boundary, the way the console script does."""
    return subprocess.run([sys.executable, "-m", "jleval.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, **kw)


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and "jleval 0.1.0" in r.output


def test_cli_help_imports_no_heavy_module():
    code = ("import sys; from jleval.cli import app\n"
            "from typer.testing import CliRunner\n"
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output\n"
            "r = CliRunner().invoke(app, ['tasks']); assert r.exit_code == 0, r.output\n"
            "heavy = [m for m in ('torch', 'transformers', 'vllm', 'scipy', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tasks_table_lists_columns():
    r = invoke(["tasks"])
    assert r.returncode == 0, r.stderr
    for word in ("jamp", "NLI", "exact_match", "CC BY-SA 4.0", "comm.", "commercial use", "output_length"):
        assert word in r.stdout


def _write_task(tmp_path, text, name="t"):
    p = tmp_path / f"{name}.toml"
    p.write_text(text, encoding="utf-8")
    return p


GOOD = (REPO / "tasks" / "jamp.toml").read_text(encoding="utf-8")


def test_task_schema_is_closed(tmp_path):
    p = _write_task(tmp_path, GOOD + '\nfewshots = 3\n', "jamp")
    with pytest.raises(TaskSpecError, match="unknown key 'fewshots'"):
        parse_task(p)
    p = _write_task(tmp_path, GOOD.replace('output_length = 3\n', ''), "jamp")
    with pytest.raises(TaskSpecError, match="missing required key 'output_length'"):
        parse_task(p)
    p = _write_task(tmp_path, GOOD.replace('output_length = 3', 'output_length = "3"'), "jamp")
    with pytest.raises(TaskSpecError, match="'output_length' must be a int"):
        parse_task(p)
    p = _write_task(tmp_path, GOOD, "other")
    with pytest.raises(TaskSpecError, match="differs from the file name"):
        parse_task(p)
    p = _write_task(tmp_path, GOOD.replace('path = "jamp/dataset/test_2.tsv"', 'path = "x"\nmirror = "y"'), "jamp")
    with pytest.raises(TaskSpecError, match=r"sources\[1\]: unknown key 'mirror'"):
        parse_task(p)


def test_every_task_file_parses_and_has_a_converter():
    from jleval.jaster.preprocess import load_converter
    from jleval.tasks import all_tasks

    tasks = all_tasks()
    assert "jamp" in tasks
    for spec in tasks.values():
        assert callable(load_converter(spec)), spec.name
        assert spec.sources, spec.name


def test_unknown_task():
    with pytest.raises(UnknownTaskError, match="unknown task 'jampp'.*"):
        resolve_tasks("jampp")
    r = invoke(["preprocess", "--tasks", "jampp", "--raw-dir", "."])
    assert r.returncode == 2
    assert "unknown task 'jampp'" in r.stderr and "did you mean jamp" in r.stderr
    assert "Traceback" not in r.stderr
    with pytest.raises(UnknownTaskError) as e:
        resolve_tasks("JAMP")
    assert e.value.hint == "did you mean jamp?"


def test_preprocess_jamp_real(raw_dir, tmp_path):
    report = preprocess([get_task("jamp")], tmp_path / "a", raw_dir=raw_dir)
    assert [r.status for r in report.results] == ["built"]
    assert report.results[0].sizes == {"train": 8955, "dev": 995, "test": 348}
    import json

    root = tmp_path / "a" / "1.4.1"
    train = json.loads((root / "evaluation/train/jamp.json").read_text(encoding="utf-8"))
    assert list(train) == ["instruction", "output_length", "metrics", "few_shots", "samples", "label_list"]
    assert train["output_length"] == 3 and train["metrics"] == ["exact_match"] and train["few_shots"] == []
    assert train["label_list"] == ["entailment", "contradiction", "neutral"]
    # the first train samples are the few-shots every prompt carries: pinned
    assert train["samples"][:2] == [
        {"input": "前提：8月以来、ゾーイは雑誌に発表している。現在、10月である。\n仮説：ゾーイは9月には雑誌に発表していた。",
         "output": "entailment"},
        {"input": "前提：アイザックは6ヶ月間動画に撮った。\n仮説：アイザックは1ヶ月間動画に撮った。", "output": "entailment"},
    ]
    test = json.loads((root / "evaluation/test/jamp.json").read_text(encoding="utf-8"))
    assert test["samples"][0] == {"input": "前提：ボブは選挙に撤回を表明している。\n仮説：ボブは現在選挙に撤回を表明している。",
                                  "output": "entailment"}
    assert {s["output"] for s in train["samples"]} == {"entailment", "contradiction", "neutral"}
    tuning = json.loads((root / "tuning/dev/jamp.json").read_text(encoding="utf-8"))
    assert len(tuning) == 995 and tuning[0]["ID"] == "jamp-0"
    assert tuning[0]["text"].startswith("以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。")
    assert tuning[0]["text"].endswith(f"### 応答:\n{tuning[0]['output']}")
    assert len(json.loads((root / "tuning/dev_first100/jamp.json").read_text(encoding="utf-8"))) == 100
    # determinism: a second build elsewhere is byte-identical, file by file
    preprocess([get_task("jamp")], tmp_path / "b", raw_dir=raw_dir)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.json"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.json"))
    assert files_a == files_b and len(files_a) == 7
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_jamp_first_train_sample_pinned(raw_dir, tmp_path):
    from jleval.jaster.base import RawFiles
    from jleval.jaster.nli import JAMP_TEST, JAMP_TRAIN, jamp

    raw = RawFiles({JAMP_TRAIN: raw_dir / JAMP_TRAIN, JAMP_TEST: raw_dir / JAMP_TEST})
    out = jamp(get_task("jamp"), raw, ("train", "dev", "test"))
    # upstream: random.seed(42); random.shuffle(rows of train_all.tsv); first int(0.9 n) are train
    import random

    rows = [line.split("\t") for line in (raw_dir / JAMP_TRAIN).read_text(encoding="utf-8").splitlines()[1:]]
    random.seed(42)
    random.shuffle(rows)
    assert [(s.input, s.output) for s in out["train"][:4]] == [
        (f"前提：{r[1]}\n仮説：{r[2]}", r[3]) for r in rows[:4]]
    assert len(out["test"]) == 348


def _copy_raw(raw_dir, tmp_path, folders=("jamp",)):
    dst = tmp_path / "raw"
    for f in folders:
        shutil.copytree(raw_dir / f, dst / f)
    return dst


def test_missing_raw_file_is_named(raw_dir, tmp_path):
    raw = _copy_raw(raw_dir, tmp_path)
    (raw / "jamp/dataset/test_2.tsv").unlink()
    r = invoke(["preprocess", "--tasks", "jamp", "--raw-dir", str(raw), "--out", str(tmp_path / "out")])
    assert r.returncode == 3  # documented: some requested sets or splits could not be built
    assert "jamp/dataset/test_2.tsv" in r.stderr and "--raw-dir" in r.stderr
    assert "Traceback" not in r.stderr
    # train/dev could still be built from train_all.tsv: a partial build, test reported missing
    assert (tmp_path / "out/1.4.1/evaluation/train/jamp.json").is_file()
    assert not (tmp_path / "out/1.4.1/evaluation/test/jamp.json").exists()


def test_checksum_mismatch_keeps_earlier_outputs(raw_dir, tmp_path):
    raw = _copy_raw(raw_dir, tmp_path)
    out = tmp_path / "out"
    assert invoke(["preprocess", "--tasks", "jamp", "--raw-dir", str(raw), "--out", str(out)]).returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*.json")}
    with open(raw / "jamp/dataset/train_all.tsv", "a", encoding="utf-8") as f:
        f.write("99999\tx\ty\tneutral\t0\tNone\tNone\tz\n")
    r = invoke(["preprocess", "--tasks", "jamp", "--raw-dir", str(raw), "--out", str(out), "--force"])
    assert r.returncode == 1
    assert "checksum mismatch" in r.stderr and "train_all.tsv" in r.stderr and "fix:" in r.stderr
    assert "Traceback" not in r.stderr
    assert {p: p.read_bytes() for p in out.rglob("*.json")} == before


def test_malformed_row_names_file_and_line(raw_dir, tmp_path):
    from jleval.errors import MalformedDataError
    from jleval.jaster.base import RawFiles
    from jleval.jaster.nli import JAMP_TEST, JAMP_TRAIN, jamp

    bad = tmp_path / "test_2.tsv"
    bad.write_text("num\tpremise\thypothesis\tgold_label\n1\tonly-two-columns\n", encoding="utf-8")
    raw = RawFiles({JAMP_TRAIN: raw_dir / JAMP_TRAIN, JAMP_TEST: bad})
    with pytest.raises(MalformedDataError, match=r"test_2.tsv, line 2: expected at least 4"):
        jamp(get_task("jamp"), raw, ("test",))


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = invoke(["preprocess", "--tasks", "jamp", "--raw-dir", str(tmp_path), "--out", str(blocker / "sub")])
    assert r.returncode == 1 and "not writable" in r.stderr and "--out" in r.stderr
    assert "Traceback" not in r.stderr


def test_no_raw_dir_and_no_network_reports_missing(tmp_path, monkeypatch):
    """Without --raw-dir jleval downloads; a download that fails names the file, the URL and the fix."""
    from jleval.errors import MissingRawFileError
    from jleval.jaster import sources

    def fail(src, dest, reporter=None, timeout=60.0):
        raise MissingRawFileError(f"could not download {src.path} from {src.url}: offline", "check the network")

    monkeypatch.setattr(sources, "download", fail)
    report = preprocess([get_task("jamp")], tmp_path / "out")
    r = report.results[0]
    assert r.status == "missing" and not report.ok
    assert any("train_all.tsv" in m and "raw.githubusercontent.com" in m for m in r.missing)


@pytest.mark.slow
def test_wheel_carries_tasks_and_prompts(tmp_path):
    """Build the wheel, install it into a fresh venv (dependencies borrowed from this environment through a
    .pth file, since the network may be off) and run `jleval tasks` from it, outside the checkout."""
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist")],
                   cwd=REPO, check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("jleval-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "jleval/_resources/tasks/jamp.toml" in names
    assert any(n.startswith("jleval/_resources/prompts/") for n in names)
    assert {"jleval/templates/view/index.html.j2", "jleval/templates/view/view.js"} <= set(names)  # jleval view
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run([str(env_dir / "bin" / "jleval"), "tasks"], capture_output=True, text=True, cwd=tmp_path,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "jamp" in r.stdout
    clean_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a checkout on the path would win
    where = subprocess.run([str(py), "-c", "import jleval; print(jleval.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path, check=True, env=clean_env).stdout
    assert str(env_dir) in where


def test_bad_output_paths_and_options_are_one_line_errors(raw_dir, tmp_path):
    """A folder where a set file should go, a corrupt output manifest, a bad --version or --raw-dir: one clear
    message (or a warning and a rebuild), never a traceback."""
    raw = _copy_raw(raw_dir, tmp_path)
    out = tmp_path / "out"
    base = ["preprocess", "--tasks", "jamp", "--raw-dir", str(raw), "--out", str(out)]
    assert invoke(base).returncode == 0
    (out / "1.4.1" / "manifest.json").write_text('{"jamp": {', encoding="utf-8")
    r = invoke(base)
    assert r.returncode == 0 and "manifest.json is unreadable" in r.stderr and "built" in r.stdout
    target = out / "1.4.1" / "evaluation" / "test" / "jamp.json"
    target.unlink()
    target.mkdir()
    r = invoke(base + ["--force"])
    assert r.returncode == 1 and "jamp.json" in r.stderr and "fix:" in r.stderr and "Traceback" not in r.stderr
    r = invoke(base + ["--version", "../../elsewhere"])
    assert r.returncode == 2 and "not a dataset version name" in r.stderr
    r = invoke(["preprocess", "--tasks", "jamp", "--raw-dir", str(tmp_path / "nope"), "--out", str(out)])
    assert r.returncode == 2 and "is not a folder" in r.stderr


def test_partial_rebuild_drops_stale_splits_and_is_not_cached(raw_dir, tmp_path):
    raw = _copy_raw(raw_dir, tmp_path)
    out = tmp_path / "out"
    base = ["preprocess", "--tasks", "jamp", "--raw-dir", str(raw), "--out", str(out)]
    assert invoke(base).returncode == 0
    (raw / "jamp/dataset/test_2.tsv").unlink()
    assert invoke(base + ["--force"]).returncode == 3
    assert not (out / "1.4.1/evaluation/test/jamp.json").exists()  # not left over from the first build
    r = invoke(base)
    assert r.returncode == 3 and "cached" not in r.stdout


def test_a_missing_file_in_a_folder_source_is_named(raw_dir, tmp_path):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(raw_dir / "jmmlu", raw / "jmmlu")
    (raw / "jmmlu/JMMLU/anatomy.csv").unlink()
    with open(raw / "jmmlu/JMMLU/astronomy.csv", "a", encoding="utf-8") as f:
        f.write("x\n")
    r = invoke(["preprocess", "--tasks", "jmmlu", "--raw-dir", str(raw), "--out", str(tmp_path / "out")])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "1 missing (anatomy.csv)" in r.stderr and "1 changed (astronomy.csv)" in r.stderr


def test_leaderboard_preset_leaves_non_commercial_out_unless_asked():
    names = {t.name for t in resolve_tasks("leaderboard")}
    assert "xlsum_ja" not in names and "jamp" in names
    assert "xlsum_ja" in {t.name for t in resolve_tasks("leaderboard", include_non_commercial=True)}
    from jleval.tasks import left_out_non_commercial

    assert left_out_non_commercial("leaderboard") == ["xlsum_ja"]
    assert left_out_non_commercial("leaderboard,xlsum_ja") == []
    r = invoke(["tasks", "-t", "leaderboard", "--commercial-only"])
    assert r.returncode == 0 and "xlsum_ja" not in r.stdout


def test_partial_xlsum_folder_builds_what_it_can(tmp_path):
    """Made-up XL-Sum fixture with only the test file: the test split is built, train/dev named as missing."""
    import shutil

    raw = tmp_path / "raw"
    (raw / "xlsum_ja").mkdir(parents=True)
    shutil.copy(REPO / "tests/fixtures/madeup_xlsum/xlsum_ja/japanese_test.jsonl", raw / "xlsum_ja")
    r = invoke(["preprocess", "--tasks", "jamp,xlsum_ja", "--raw-dir", str(raw), "--out", str(tmp_path / "out")])
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "japanese_train.jsonl (needed for train)" in r.stderr.replace("\n", "")
    assert (tmp_path / "out/1.4.1/evaluation/test/xlsum_ja.json").is_file()


def test_truncated_knp_file_is_named(raw_dir, tmp_path):
    from jleval.errors import MalformedDataError
    from jleval.jaster.wiki import parse_knp

    src = next((raw_dir / "wiki/knp").rglob("*.knp"))
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    bad = tmp_path / src.name  # cut before the final EOS, on a line boundary: rhoknp alone would accept it
    bad.write_text("".join(lines[:-1]), encoding="utf-8")
    with pytest.raises(MalformedDataError, match=rf"{src.name}, line \d+: the file does not end with EOS"):
        parse_knp(bad)


def test_task_source_checks_stop_at_the_first_problem(tmp_path):
    """A source with a bad kind is refused for its kind even when needed_for is also wrong (a list of lists
    cannot be read as split names): one line naming the file, never a TypeError."""
    bad = GOOD.replace('needed_for = ["test"]', 'kind = "url"\nneeded_for = [["test"]]')
    assert bad != GOOD
    p = _write_task(tmp_path, bad, "jamp")
    with pytest.raises(TaskSpecError, match=r"sources\[1\]: kind must be 'file' or 'dir'"):
        parse_task(p)
