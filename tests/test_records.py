"""jleval.records: the typed manifest record, read and validated the same way by run, score, table and arena."""
from __future__ import annotations

import json

import pytest

from jleval import records
from jleval.errors import JlevalError, RunError, ScoreError
from jleval.run import RunOptions, run
from jleval.tasks import get_task


@pytest.fixture(scope="module")
def made_run(raw_dir, tmp_path_factory):
    from jleval.jaster.preprocess import preprocess

    d = tmp_path_factory.mktemp("jaster")
    preprocess([get_task("jamp")], d, raw_dir=raw_dir)
    out = tmp_path_factory.mktemp("runs")
    res = run(RunOptions(model="oracle", backend="oracle", tasks="jamp", data_dir=d, out=out, run_name="r",
                         max_num_samples=3))
    return res.run_dir, d


def test_the_manifest_carries_its_format_and_reads_back(made_run):
    run_dir, _ = made_run
    m = records.read_manifest(run_dir / "manifest.json", ValueError, required=("settings", "model.id"))
    assert m["format"] == records.MANIFEST_FORMAT == "jleval.manifest/1"
    assert next(iter(json.loads((run_dir / "manifest.json").read_text(encoding="utf-8")))) == "format"


@pytest.mark.parametrize("path, value, field, expected", [
    (("settings", "num_few_shots"), "4", "settings.num_few_shots", "an integer, found a string"),
    (("model", "id"), 7, "model.id", "a string, found an integer"),
    (("tasks", "jamp", "metrics"), "exact_match", "tasks.jamp.metrics", "an array, found a string"),
    (("tasks", "jamp", "metrics", 0), None, "tasks.jamp.metrics\\[0\\]", "a string, found null"),
    (("tasks", "jamp"), [], "tasks.jamp", "an object, found an array"),
    (("finished_at",), 1, "finished_at", "a string, found an integer"),
    (("settings", "chat_template"), 0, "settings.chat_template", "true or false, found an integer"),
])
def test_a_wrongly_typed_field_is_one_error_naming_file_and_field_in_every_reader(made_run, tmp_path, path, value,
                                                                                   field, expected):
    import shutil

    from jleval.arena.judge import load_answers
    from jleval.scoring import score_run
    from jleval.table import load_run

    src, data_dir = made_run
    rd = tmp_path / "r"
    shutil.copytree(src, rd)
    m = json.loads((rd / "manifest.json").read_text(encoding="utf-8"))
    node = m
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    (rd / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    message = f"manifest.json.*field '{field}' must be {expected}"
    with pytest.raises(RunError, match=message):
        run(RunOptions(model="oracle", backend="oracle", tasks="jamp", data_dir=data_dir, out=tmp_path, run_name="r",
                       max_num_samples=3))
    with pytest.raises(ScoreError, match=message):
        score_run(rd)
    with pytest.raises(ScoreError, match=message):
        load_run(rd)
    with pytest.raises(JlevalError, match=message):
        load_answers([rd], task="jamp")


@pytest.mark.parametrize("content, reason", [
    (b"[]", "must hold a JSON object, found an array"), (b"{", "is not valid JSON"),
    (b'{"a": "\xff"}', "is not UTF-8 text"), (b'{"format": "jleval.manifest/9"}', "has format 'jleval.manifest/9'"),
    (b'{"format": "jleval.manifest/1"}', "has no field 'settings'"),
])
def test_unreadable_manifests(tmp_path, content, reason):
    p = tmp_path / "manifest.json"
    p.write_bytes(content)
    with pytest.raises(ValueError, match=reason):
        records.read_manifest(p, ValueError, required=("settings",))
