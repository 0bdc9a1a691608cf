"""Fuzzing the readers of the files jleval writes (issue 16): outputs JSONL (jleval.jsonl and its readers in run
and scoring), arena judgments, manifest.json and scores.json (jleval.records), on random bytes and on real files
with mutated lines and mutated JSON values; then `jleval score` and `jleval table` over run folders whose files
were mutated. The property: a result, or one JlevalError naming the file; never another exception, never a NaN
or Infinity written."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_cli import invoke, world  # noqa: F401  (the module fixture: real run folders)
from test_fuzz_converters import mutate, mutations

from jleval import jsonl, records, run, scoring
from jleval.arena.io import collect_outcomes, read_judgments
from jleval.errors import JlevalError

FAST = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FEW = settings(FAST, max_examples=4)
SLOW = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@st.composite
def json_edit(draw, doc):
    """`doc` with one value (anywhere, the root included) replaced by a random JSON value, or deleted."""
    doc = json.loads(json.dumps(doc))
    paths = list(_paths(doc))
    path = paths[draw(st.integers(0, len(paths) - 1))]
    new = draw(JSON)
    if not path:
        return new
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return doc


def _fail(*args):
    return JlevalError(f"bad: {args}", "fix")


def _expect_result_or_error(fn, where: str, *args):
    try:
        return fn(*args)
    except JlevalError as e:
        assert "\n" not in e.message, f"{where}: {e.message!r}"
        return None


# ----- bytes-level: the JSONL rule ------------------------------------------------------------------------------

@FAST
@given(data=st.one_of(st.binary(max_size=300), st.lists(JSON, max_size=5).map(
    lambda xs: "".join(json.dumps(x) + "\n" for x in xs).encode())))
def test_jsonl_parse_random_bytes(data):
    lines = _expect_result_or_error(lambda: jsonl.parse(data, _fail), "jsonl.parse")
    if lines is not None:
        body, tail = jsonl.split_tail(data)
        assert body + tail == data and lines.tail == tail


# ----- real files, mutated ---------------------------------------------------------------------------------------

def _mutated_copy(src: Path, edits, tmp: Path) -> Path:
    dst = tmp / src.name
    dst.write_bytes(mutate(src.read_bytes(), edits))
    return dst


@FAST
@given(edits=mutations())
def test_outputs_readers_on_mutated_lines(world, edits):
    src = Path(world["runs"][0]) / "outputs" / "jamp.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        path = _mutated_copy(src, edits, Path(tmp))
        _expect_result_or_error(lambda: run.read_outputs(path), "run.read_outputs")
        _expect_result_or_error(lambda: scoring.read_outputs(path, []), "scoring.read_outputs")


@FAST
@given(edits=mutations(), line=st.integers(0, 8), data=st.data())
def test_judgments_reader_on_mutated_files(world, edits, line, data):
    src = Path(world["judgments"])
    with tempfile.TemporaryDirectory() as tmp:
        path = _mutated_copy(src, edits, Path(tmp))
        rows = src.read_text(encoding="utf-8").splitlines()
        rows[line] = json.dumps(data.draw(json_edit(json.loads(rows[line]))))
        edited = Path(tmp) / "edited.jsonl"
        edited.write_text("\n".join(rows) + "\n", encoding="utf-8")
        for p in (path, edited):
            got = _expect_result_or_error(read_judgments, "read_judgments", p)
            if got is not None:
                _expect_result_or_error(collect_outcomes, "collect_outcomes", got)


READERS = {"manifest.json": lambda p: records.read_manifest(p, _fail),
           "scores.json": lambda p: records.read_scores(p, _fail)}


@FAST
@given(name=st.sampled_from(sorted(READERS)), data=st.data())
def test_record_readers_on_mutated_json(world, name, data):
    src = Path(world["runs"][0]) / name
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(json.dumps(data.draw(json_edit(json.loads(src.read_text(encoding="utf-8"))))),
                        encoding="utf-8")
        _expect_result_or_error(lambda: READERS[name](path), name)
        path.write_bytes(mutate(src.read_bytes(), data.draw(mutations())))
        _expect_result_or_error(lambda: READERS[name](path), name)


# ----- the commands over mutated run folders ----------------------------------------------------------------

def _command_on_mutated_run(world, which: str, command: str, data) -> None:
    with tempfile.TemporaryDirectory(prefix="jleval-fuzz-") as tmp:
        tmp = Path(tmp)
        rd = tmp / "run"
        shutil.copytree(world["runs"][0], rd)
        target = rd / which
        if target.suffix == ".json" and data.draw(st.booleans()):
            doc = json.loads(target.read_text(encoding="utf-8"))
            target.write_text(json.dumps(data.draw(json_edit(doc)), ensure_ascii=False), encoding="utf-8")
        else:
            target.write_bytes(mutate(target.read_bytes(), data.draw(mutations())))
        args = [command, str(rd)] + (["--out", str(tmp / "lb.json"), "--format", "json"] if command == "table" else [])
        invoke(args, tmp, f"jleval {command} on a run with {which} mutated")


@FEW
@given(which=st.sampled_from(["outputs/jamp.jsonl", "manifest.json"]), data=st.data())
def test_score_on_mutated_run_folder(world, which, data):
    _command_on_mutated_run(world, which, "score", data)


@FEW
@given(which=st.sampled_from(["manifest.json", "scores.json"]), data=st.data())
def test_table_on_mutated_run_folder(world, which, data):
    _command_on_mutated_run(world, which, "table", data)


@pytest.mark.slow
@SLOW
@given(which=st.sampled_from(["outputs/jamp.jsonl", "outputs/jcommonsenseqa.jsonl", "manifest.json",
                              "scores.json"]), command=st.sampled_from(["score", "table"]), data=st.data())
def test_commands_on_mutated_run_folders_long_run(world, which, command, data):
    _command_on_mutated_run(world, which, command, data)
