"""Code-generation converters: MBPP-ja ("mbpp") and JHumanEval ("jhumaneval").

The gold output of both is a Python-literal list of test statements (`str(list)`), which the code_exec
metric runs after the model's code; the input shows the task text followed by the tests.
"""
from __future__ import annotations

import ast
import gzip
import textwrap
from pathlib import Path

from jleval.jaster.base import RawFiles, Sample, Splits, asked, has_fields, jsonl_records, malformed
from jleval.tasks import TaskSpec

MBPP_FILE = "mbpp/mbpp_translation.jsonl"
JHUMANEVAL_FILE = "jhumaneval/data/jhuman-eval.jsonl.gz"
TESTS_HEADER = "### テストケース:"


def _mbpp_sample(path: Path, line: int, row: dict, keys: list[str]) -> Sample:
    # Upstream reads the file with pandas and takes columns by position: 4 = test_list, 6 = the Japanese
    # problem text (the column mbpp-ja appends to MBPP's own six: text, code, task_id, test_setup_code,
    # test_list, challenge_test_list).
    if len(keys) < 7:
        raise malformed(path, line, f"expected at least 7 fields (MBPP's six + the Japanese text), found {len(keys)}")
    tests, text = row.get(keys[4]), row.get(keys[6])
    if not (isinstance(tests, list) and tests and all(isinstance(t, str) for t in tests)):
        raise malformed(path, line, f"field {keys[4]!r} must be a non-empty list of assert strings")
    if not isinstance(text, str):
        raise malformed(path, line, f"field {keys[6]!r} (the Japanese problem text) must be a string")
    return Sample(f"{text}\n\n{TESTS_HEADER}\n" + "\n".join(tests), str(tests))


def mbpp(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    """MBPP's canonical ranges, in file order (task ids 1-974): 1-10 are MBPP's prompt examples (unused),
    11-510 -> test, 511-600 -> dev, 601-974 -> train."""
    path = raw.path(MBPP_FILE)
    rows = list(jsonl_records(path))
    if not rows:
        raise malformed(path, None, "the file holds no problems")
    keys = list(rows[0][1])
    samples = [_mbpp_sample(path, n, row, keys) for n, row in rows]
    out = {"train": samples[600:], "dev": samples[510:600], "test": samples[10:510]}
    return asked(out, splits)


def _check_function(path: Path, line: int, test: str) -> ast.FunctionDef:
    try:
        module = ast.parse(test)
    except SyntaxError as e:
        raise malformed(path, line, f"'test' is not valid Python ({e.msg})") from None
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name == "check":
            return node
    raise malformed(path, line, "'test' defines no check(candidate) function")


def jhumaneval_tests(path: Path, line: int, test: str, entry_point: str) -> tuple[str, list[str]]:
    """(the check function with `candidate` renamed to the entry point, its top-level statements).

    The METADATA block some problems carry is dropped; each statement (an assert, or a loop / helper line)
    is one list item, dedented, in order, so running the items one after another in one namespace runs the
    whole check."""
    check = _check_function(path, line, test)
    source = ast.get_source_segment(test, check)
    if source is None:
        raise malformed(path, line, "could not locate the check function's source")
    statements = []
    for node in check.body:
        segment = ast.get_source_segment(test, node, padded=True)
        statements.append(textwrap.dedent(segment or "").strip().replace("candidate", entry_point))
    return source.replace("candidate", entry_point), [s for s in statements if s]


def jhumaneval(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    """164 problems in file order: the first 32 -> train, the rest halved into dev / test."""
    path = raw.path(JHUMANEVAL_FILE)
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise malformed(path, None, f"not a gzip-compressed UTF-8 JSON Lines file ({e})") from None
    samples = []
    for n, row in jsonl_records(path, text):
        if not has_fields(row, prompt=str, entry_point=str, test=str):
            raise malformed(path, n, "expected string fields 'prompt', 'entry_point' and 'test'")
        check, statements = jhumaneval_tests(path, n, row["test"], row["entry_point"])
        samples.append(Sample(f"{row['prompt']}\n\n{TESTS_HEADER}\n{check}", str(statements)))
    rest = samples[32:]
    half = len(rest) // 2
    out = {"train": samples[:32], "dev": rest[:half], "test": rest[half:]}
    return asked(out, splits)
