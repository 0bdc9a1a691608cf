"""jleval.jsonl: the one rule for append-only JSONL files (run outputs, judgments), on real files."""
from __future__ import annotations

import json

import pytest

from jleval import jsonl


def fail(n, reason):
    return ValueError(f"line {n}: {reason}")


@pytest.mark.parametrize("tail", [b'{"key": "c"}', b'{"key": "c', b'\xe6\x9d'])
def test_a_last_line_without_its_newline_is_ignored_and_cut_whether_or_not_it_parses(tmp_path, tail):
    p = tmp_path / "o.jsonl"
    p.write_bytes(b'{"key": "a"}\n\n{"key": "b"}\n' + tail)
    lines = jsonl.read_objects(p, fail, key="key")
    assert [(n, r["key"]) for n, r in lines.records] == [(1, "a"), (3, "b")] and lines.tail == tail
    assert jsonl.repair(p) and p.read_bytes() == b'{"key": "a"}\n\n{"key": "b"}\n'
    assert not jsonl.repair(p)
    with jsonl.Appender(p) as out:
        out.write({"key": "d", "text": "日本語"})
    assert [r["key"] for _, r in jsonl.read(p, fail).records] == ["a", "b", "d"]
    assert p.read_bytes().endswith('"日本語"}\n'.encode())


@pytest.mark.parametrize("line, reason", [
    (b"[1, 2]", "line 2: expected a JSON object, found an array"),
    (b'{"id": 1}', "line 2: 'key' must be a string \\(no such field\\)"),
    (b'{"key": 7}', "line 2: 'key' must be a string \\(an integer\\)"),
    (b'{"key": "\xff"}', "line 2: not valid UTF-8 text"),
    (b'{"key": ', "line 2: not valid JSON"),
])
def test_bad_complete_lines_name_the_line(tmp_path, line, reason):
    p = tmp_path / "o.jsonl"
    p.write_bytes(b'{"key": "a"}\n' + line + b"\n")
    with pytest.raises(ValueError, match=reason):
        jsonl.read_objects(p, fail, key="key")


def test_absent_file_reads_empty_and_appender_creates_it(tmp_path):
    p = tmp_path / "sub" / "o.jsonl"
    assert jsonl.read(p, fail).records == [] and not jsonl.repair(p)
    out = jsonl.Appender(p, fsync_every=1.0)
    out.write([1])
    out.close()
    out.close()  # closing twice is harmless
    assert json.loads(p.read_text()) == [1]


def test_run_outputs_scoring_and_judgments_agree_on_a_complete_record_without_its_newline(tmp_path):
    """The arena's writer used to keep such a line while run's reader dropped it: now every reader ignores it
    and every writer cuts it."""
    from jleval.arena.io import Judgment, JudgmentWriter, read_judgments

    p = tmp_path / "j.jsonl"
    p.write_text('{"model_a": "a", "model_b": "b", "winner": "a"}\n{"model_a": "a", "model_b": "b", "winner": "b"}',
                 encoding="utf-8")
    assert [j.winner for j in read_judgments(p)] == ["a"]
    with JudgmentWriter(p) as w:
        w.write(Judgment("a", "b", "tie"))
    assert [j.winner for j in read_judgments(p)] == ["a", "tie"]
