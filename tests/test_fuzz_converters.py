"""Fuzzing the converters (issue 16): raw files truncated and mutated (bytes cut, inserted, flipped; lines
dropped, duplicated, replaced by random text), then converted. The property: the task's splits, every sample
a pair of strings (and a label-list task's golds in its list), or a one-line MalformedDataError naming the raw
file; never another exception.

The fast run mutates the bundled sample (small excerpts of six real sets); the slow one adds real raw files of
the other NLI, QA and MC sets."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jleval.demo import DEMO_TASKS, SAMPLE_DIR
from jleval.errors import JlevalError
from jleval.jaster.base import RawFiles
from jleval.jaster.preprocess import load_converter
from jleval.tasks import get_task

FAST = settings(max_examples=15, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=80, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
#: Real raw sets small enough to copy per example (the slow run): task -> sources are read from its task file.
REAL_TASKS = ("jamp", "jsick", "jnli", "jcommonsenseqa", "commonsensemoralja", "jemhopqa", "niilc", "mawps",
              "mgsm", "jsts", "jsem")


def _files(root: Path, task: str) -> list[Path]:
    spec = get_task(task)
    out = []
    for src in spec.sources:
        p = root / src.path
        out += sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p] if p.is_file() else []
    return out


@st.composite
def mutations(draw):
    """A list of (kind, position fraction, payload) edits applied in order to one file's bytes."""
    kinds = st.sampled_from(["truncate", "cut", "insert", "flip", "drop_line", "dup_line", "replace_line"])
    payload = st.one_of(st.binary(max_size=20), st.text(max_size=20).map(lambda t: t.encode("utf-8", "replace")),
                        st.sampled_from([b"\t", b"\n", b'"', b"{", b"}", b"<", b"\xff\xfe", b",", b"null"]))
    return draw(st.lists(st.tuples(kinds, st.floats(0, 1), payload), min_size=1, max_size=3))


def mutate(data: bytes, edits) -> bytes:
    for kind, frac, payload in edits:
        pos = int(frac * len(data))
        lines = data.split(b"\n")
        k = min(int(frac * len(lines)), len(lines) - 1)
        if kind == "truncate":
            data = data[:pos]
        elif kind == "cut":
            data = data[:pos] + data[pos + 1 + len(payload):]
        elif kind == "insert":
            data = data[:pos] + payload + data[pos:]
        elif kind == "flip" and data:
            data = data[:pos] + bytes([data[min(pos, len(data) - 1)] ^ 0xFF]) + data[pos + 1:]
        elif kind == "drop_line":
            data = b"\n".join(lines[:k] + lines[k + 1:])
        elif kind == "dup_line":
            data = b"\n".join(lines[:k + 1] + lines[k:])
        elif kind == "replace_line":
            data = b"\n".join(lines[:k] + [payload] + lines[k + 1:])
    return data


def convert_mutated(raw_root: Path, task: str, which: float, edits) -> None:
    spec = get_task(task)
    with tempfile.TemporaryDirectory(prefix="jleval-fuzz-raw-") as tmp:
        tmp = Path(tmp)
        for src in spec.sources:
            p = raw_root / src.path
            if p.is_dir():
                shutil.copytree(p, tmp / src.path, copy_function=shutil.copyfile)
            elif p.is_file():
                (tmp / src.path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, tmp / src.path)
        files = _files(tmp, task)
        target = files[min(int(which * len(files)), len(files) - 1)]
        target.write_bytes(mutate(target.read_bytes(), edits))
        raw = RawFiles({src.path: tmp / src.path for src in spec.sources if (tmp / src.path).exists()})
        where = f"{task}: {target.relative_to(tmp)} mutated by {edits!r:.300}"
        try:
            splits = load_converter(spec)(spec, raw, spec.splits)
        except JlevalError as e:
            assert "\n" not in e.message, f"{where}: {e.message!r}"
            return
        for split, samples in splits.items():
            for s in samples:
                assert isinstance(s.input, str) and isinstance(s.output, str), f"{where}: {split} {s!r:.200}"
                if spec.label_list:
                    assert s.output in spec.label_list, f"{where}: {split} gold {s.output!r}"


@FAST
@given(task=st.sampled_from(DEMO_TASKS), which=st.floats(0, 1), edits=mutations())
def test_converters_on_mutated_sample_files(task, which, edits):
    convert_mutated(SAMPLE_DIR / "raw", task, which, edits)


@pytest.mark.slow
@SLOW
@given(task=st.sampled_from(REAL_TASKS), which=st.floats(0, 1), edits=mutations())
def test_converters_on_mutated_real_files(raw_dir, task, which, edits):
    convert_mutated(raw_dir, task, which, edits)
