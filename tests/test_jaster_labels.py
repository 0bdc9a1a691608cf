"""A gold label outside the task's label list is refused by every NLI/MC converter, naming the raw file and the
line (kuci and the MMLU sets already did): such a sample would be scored against an answer the prompt never
offers. The files are real raw files with one label changed (the JNLI train file, absent from the raw mirror,
is made from its valid file)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jleval.cli import app
from jleval.errors import MalformedDataError
from jleval.jaster import jglue, nli
from jleval.jaster.base import RawFiles
from jleval.tasks import get_task

JNLI_TRAIN = "jnli/datasets/jnli-v1.1/train-v1.1.json"
JNLI_VALID = "jnli/datasets/jnli-v1.1/valid-v1.1.json"


def _copy(raw_dir: Path, rel: str, dst_root: Path, keep_lines: int = 40, as_rel: str | None = None) -> Path:
    dst = dst_root / (as_rel or rel)
    dst.parent.mkdir(parents=True, exist_ok=True)
    lines = (raw_dir / rel).read_text(encoding="utf-8").splitlines(keepends=True)
    dst.write_text("".join(lines[:keep_lines]), encoding="utf-8")
    return dst


def _jnli_train_with_bad_label(raw_dir: Path, tmp_path: Path) -> Path:
    train = _copy(raw_dir, JNLI_VALID, tmp_path, as_rel=JNLI_TRAIN)
    lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
    rec = json.loads(lines[6])
    rec["label"] = "maybe"
    lines[6] = json.dumps(rec, ensure_ascii=False) + "\n"
    train.write_text("".join(lines), encoding="utf-8")
    return train


def test_jnli_train_label_outside_the_list_is_refused(raw_dir, tmp_path):
    train = _jnli_train_with_bad_label(raw_dir, tmp_path)
    raw = RawFiles({JNLI_TRAIN: train, JNLI_VALID: raw_dir / JNLI_VALID})
    with pytest.raises(MalformedDataError) as e:
        jglue.jnli(get_task("jnli"), raw, ("train", "dev"))
    assert f"{train}, line 7" in str(e.value) and "'maybe'" in str(e.value)
    # the valid file's labels are all in the list: the test split still builds
    assert len(jglue.jnli(get_task("jnli"), raw, ("test",))["test"]) > 0


def test_jnli_bad_label_through_the_cli_is_one_line(raw_dir, tmp_path):
    from typer.testing import CliRunner

    raw = tmp_path / "raw"
    train = _jnli_train_with_bad_label(raw_dir, raw)
    shutil.copytree(raw_dir / "jnli", raw / "jnli", dirs_exist_ok=True, copy_function=shutil.copyfile)
    result = CliRunner().invoke(app, ["preprocess", "--tasks", "jnli", "--raw-dir", str(raw),
                                      "--out", str(tmp_path / "out")])
    # the CLI's error boundary (jleval.cli.main) prints a JlevalError as one line and its fix
    assert isinstance(result.exception, MalformedDataError), result.output
    assert f"{train}, line 7: label 'maybe'" in result.exception.message and "\n" not in result.exception.message
    assert not (tmp_path / "out" / "1.4.1" / "evaluation" / "train" / "jnli.json").exists()


@pytest.mark.parametrize("task,rel,line,mutate", [
    ("jamp", nli.JAMP_TRAIN, 5, lambda cols: cols.__setitem__(3, "unsure")),
    ("janli", nli.JANLI, 5, lambda cols: cols.__setitem__(3, "unsure")),
    ("jsick", nli.JSICK_TRAIN, 5, lambda cols: cols.__setitem__(10, "unsure")),
])
def test_tsv_nli_label_outside_the_list_is_refused(task, rel, line, mutate, raw_dir, tmp_path):
    dst = _copy(raw_dir, rel, tmp_path)
    lines = dst.read_text(encoding="utf-8").splitlines(keepends=True)
    cols = lines[line - 1].rstrip("\n").split("\t")
    mutate(cols)
    lines[line - 1] = "\t".join(cols) + "\n"
    dst.write_text("".join(lines), encoding="utf-8")
    converter = getattr(nli, task)
    with pytest.raises(MalformedDataError) as e:
        converter(get_task(task), RawFiles({rel: dst}), ("train", "dev"))
    assert f"{dst}, line {line}" in str(e.value) and "'unsure'" in str(e.value)


def test_jcommonsenseqa_label_outside_the_list_is_refused(raw_dir, tmp_path):
    rel = "jcommonsenseqa/datasets/jcommonsenseqa-v1.1/valid-v1.1.json"
    dst = _copy(raw_dir, rel, tmp_path)
    lines = dst.read_text(encoding="utf-8").splitlines(keepends=True)
    rec = json.loads(lines[2])
    rec["label"] = 7
    lines[2] = json.dumps(rec, ensure_ascii=False) + "\n"
    dst.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(MalformedDataError) as e:
        jglue.jcommonsenseqa(get_task("jcommonsenseqa"), RawFiles({rel: dst}), ("test",))
    assert f"{dst}, line 3" in str(e.value) and "'7'" in str(e.value)


def test_jsem_answer_outside_the_list_is_refused(raw_dir, tmp_path):
    raw = {}
    for name in nli.JSEM_FILES:
        raw[nli.jsem_path(name)] = _copy(raw_dir, nli.jsem_path(name), tmp_path, keep_lines=10**6)
    bad = raw[nli.jsem_path("Plurals")]
    bad.write_text(bad.read_text(encoding="utf-8").replace('answer="yes"', 'answer="maybe"', 1), encoding="utf-8")
    with pytest.raises(MalformedDataError) as e:
        nli.jsem(get_task("jsem"), RawFiles(raw), ("test",))
    assert str(bad) in str(e.value) and "jsem_id=" in str(e.value) and "'maybe'" in str(e.value)
