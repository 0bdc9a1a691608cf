"""Mathematical reasoning converters: MAWPS (Japanese) and MGSM (Japanese)."""
from __future__ import annotations

import ast
import json
from pathlib import Path

from jleval.jaster.base import RawFiles, Sample, Splits, asked, has_fields, malformed, read_text, shuffled, tsv_rows
from jleval.tasks import TaskSpec

MAWPS_DIR = "mawps/dataset/mawps"
MAWPS_ZERO_SHOT = f"{MAWPS_DIR}/zero_shot_example.json"
MAWPS_SHOT = f"{MAWPS_DIR}/shot_example.json"
MAWPS_TEST = f"{MAWPS_DIR}/test.json"
QA_DELIMITER = "\n解答："

MGSM_TEST = "mgsm/mgsm/mgsm_ja.tsv"
MGSM_EXEMPLARS = "mgsm/mgsm/exemplars.py"


def _load_json(path: Path):
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise malformed(path, e.lineno, f"not valid JSON ({e.msg})") from None


def _mawps_example(path: Path, i: int, item) -> Sample:
    """One worked example: "問題：…\\n解答：…答えはNです。" -> (question, N)."""
    text = item["shot_example"] if has_fields(item, shot_example=str) else ""
    if text.count(QA_DELIMITER) != 1 or "答えは" not in text:
        raise malformed(path, None, f"item {i}: expected a 'shot_example' text 'question\\n解答：…答えは…です。'")
    question, answer = text.split(QA_DELIMITER)
    number = answer.split("答えは")[1].split("です。")[0]
    return Sample(question, number)


def _mawps_train(raw: RawFiles) -> list[Sample]:
    # Upstream keeps the files' order (zero-shot examples first, then the worked ones) and does not shuffle.
    out = []
    for rel in (MAWPS_ZERO_SHOT, MAWPS_SHOT):
        path = raw.path(rel)
        data = _load_json(path)
        if not isinstance(data, list):
            raise malformed(path, None, "expected a JSON array of examples")
        out += [_mawps_example(path, i, item) for i, item in enumerate(data)]
    return out


def _mawps_test(raw: RawFiles) -> list[Sample]:
    path = raw.path(MAWPS_TEST)
    data = _load_json(path)
    if not isinstance(data, list):
        raise malformed(path, None, "expected a JSON array of problems")
    out = []
    for i, item in enumerate(data):
        if not has_fields(item, question=str, answer=str):
            raise malformed(path, None, f"item {i}: expected string fields 'question' and 'answer'")
        out.append(Sample(item["question"].split(QA_DELIMITER)[0], item["answer"]))
    return out


def mawps(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    """train = the 16 example texts; test.json shuffled (seed 42), first half -> dev, second half -> test."""
    out: Splits = {}
    if "train" in splits:
        out["train"] = _mawps_train(raw)
    if "dev" in splits or "test" in splits:
        pool = shuffled(_mawps_test(raw))
        half = int(len(pool) / 2)
        out["dev"], out["test"] = pool[:half], pool[half:]
    return asked(out, splits)


def _number(path: Path, line: int | None, text: str) -> str:
    """MGSM answers as the HF dataset's integer `answer_number` (thousands separators removed)."""
    try:
        return str(int(text.strip().replace(",", "")))
    except ValueError:
        raise malformed(path, line, f"answer {text!r} is not an integer") from None


def _mgsm_test(path: Path) -> list[Sample]:
    # No header; two columns question<TAB>answer.
    return [Sample(row[0], _number(path, n, row[1])) for n, row in tsv_rows(path, min_cols=2, skip_header=False)]


def _mgsm_exemplars(path: Path) -> list[Sample]:
    """The 8 Japanese exemplars (the HF `train` split) from url-nlp's mgsm/exemplars.py.

    The file is Python source holding only literals; it is read with `ast`, never executed. The HF dataset's
    train question is the exemplar's `q` text (with its 問題： prefix) and answer_number the shared
    EXEMPLAR_NUMBER_ANSWERS entry."""
    try:
        module = ast.parse(read_text(path), filename=str(path))
    except SyntaxError as e:
        raise malformed(path, e.lineno, "not valid Python source") from None
    values = {}
    for node in module.body:
        match node:  # a top-level `NAME = ...` of one of the two names
            case ast.Assign(targets=[ast.Name(id=("EXEMPLAR_NUMBER_ANSWERS" | "MGSM_EXEMPLARS") as name)]):
                try:
                    values[name] = ast.literal_eval(node.value)
                except ValueError:
                    raise malformed(path, node.lineno, f"{name} is not a literal") from None
    numbers, exemplars = values.get("EXEMPLAR_NUMBER_ANSWERS"), values.get("MGSM_EXEMPLARS")
    if not isinstance(numbers, list) or not has_fields(exemplars, ja=dict):
        raise malformed(path, None, "expected EXEMPLAR_NUMBER_ANSWERS and MGSM_EXEMPLARS with a 'ja' entry")
    ja = exemplars["ja"]
    out = []
    for i, number in enumerate(numbers):
        item = ja.get(str(i + 1))
        if not has_fields(item, q=str):
            raise malformed(path, None, f"MGSM_EXEMPLARS['ja'][{str(i + 1)!r}] has no question 'q'")
        out.append(Sample(item["q"], str(number)))
    return out


def mgsm(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    """Upstream keeps MGSM's own splits: train = the 8 exemplars, test = the 250 problems; no dev split."""
    out: Splits = {}
    if "train" in splits:
        out["train"] = _mgsm_exemplars(raw.path(MGSM_EXEMPLARS))
    if "test" in splits:
        out["test"] = _mgsm_test(raw.path(MGSM_TEST))
    return out
