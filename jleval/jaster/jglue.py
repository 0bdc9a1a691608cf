"""JGLUE converters (v1.1.0 files): JCommonsenseQA, JNLI, JSQuAD, JSTS.

All four follow llm-jp-eval v1.4.1: the original train file is shuffled with seed 42 and cut 90/10 into
train/dev; the original valid file is the test split, in file order. JCommonsenseQA, JNLI and JSTS files
are JSON Lines (despite the .json name); JSQuAD is one SQuAD-v1.1 JSON document.

Which raw file feeds which split comes from the task file (`needed_for`), so the task file stays the only
place that names paths.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jleval.jaster.base import (
    RawFiles,
    Sample,
    Splits,
    check_label,
    has_fields,
    jsonl_records,
    malformed,
    read_text,
    split_9_1,
)
from jleval.tasks import TaskSpec

# --- shared readers (also used by qa.py) ----------------------------------------------------------------

def source_for(spec: TaskSpec, split: str) -> str:
    """The raw path (as written in the task file) of the source that `split` is built from."""
    for src in spec.sources:
        if split in src.needed_for:
            return src.path
    raise malformed(spec.file or spec.name, None, f"no source is marked as needed for the {split} split")


def json_document(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise malformed(path, e.lineno, f"not valid JSON ({e.msg})") from None


def field(obj: dict, key: str, path: Path, line: int | None, types: type | tuple[type, ...] = str) -> Any:
    """obj[key], or a MalformedDataError naming the file, line and the missing/mistyped field."""
    if not isinstance(obj, dict) or key not in obj:
        raise malformed(path, line, f"missing field {key!r}")
    value = obj[key]
    if not isinstance(value, types) or isinstance(value, bool):
        names = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise malformed(path, line, f"field {key!r} should be {names}, found {type(value).__name__}")
    return value


def train_dev_test(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...], read) -> Splits:
    """llm-jp-eval's common scheme: `read(train file)` shuffled (seed 42) and cut 90/10 into train/dev,
    `read(test file)` kept in order as test. Only the splits asked for are read."""
    out: Splits = {}
    if "train" in splits or "dev" in splits:
        out["train"], out["dev"] = split_9_1(read(raw.path(source_for(spec, "train"))))
    if "test" in splits:
        out["test"] = read(raw.path(source_for(spec, "test")))
    return out


# --- JCommonsenseQA ----------------------------------------------------------------------------------------

def _jcommonsenseqa_rows(path: Path, labels: Sequence[str]) -> list[Sample]:
    samples = []
    for n, rec in jsonl_records(path):
        question = field(rec, "question", path, n)
        choices = [field(rec, f"choice{i}", path, n) for i in range(5)]
        label = check_label(labels, str(field(rec, "label", path, n, int)), path, n)
        listed = ",".join(f"{i}.{c}" for i, c in enumerate(choices))
        samples.append(Sample(f"質問：{question}\n選択肢：{listed}", label))
    return samples


def jcommonsenseqa(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    return train_dev_test(spec, raw, splits, functools.partial(_jcommonsenseqa_rows, labels=spec.label_list))


# --- JNLI ----------------------------------------------------------------------------------------------------

def _jnli_rows(path: Path, labels: Sequence[str]) -> list[Sample]:
    return [Sample(f"前提：{field(rec, 'sentence1', path, n)}\n仮説：{field(rec, 'sentence2', path, n)}",
                   check_label(labels, field(rec, "label", path, n), path, n))
            for n, rec in jsonl_records(path)]


def jnli(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    return train_dev_test(spec, raw, splits, functools.partial(_jnli_rows, labels=spec.label_list))


# --- JSTS ----------------------------------------------------------------------------------------------------

def _jsts_rows(path: Path) -> list[Sample]:
    # the label is a JSON number (0.0-5.0); upstream writes str(float), e.g. "3.2"
    return [Sample(f"文1：{field(rec, 'sentence1', path, n)}\n文2：{field(rec, 'sentence2', path, n)}",
                   str(field(rec, "label", path, n, (int, float))))
            for n, rec in jsonl_records(path)]


def jsts(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    return train_dev_test(spec, raw, splits, _jsts_rows)


# --- JSQuAD --------------------------------------------------------------------------------------------------

def _jsquad_rows(path: Path) -> list[Sample]:
    """One sample per question, in document order. The context is used verbatim, "title [SEP] " prefix
    included, as llm-jp-eval v1.x does; the gold is the first of the annotated answers."""
    doc = json_document(path)
    articles = field(doc, "data", path, None, list)
    samples = []
    for a, article in enumerate(articles):
        for p, para in enumerate(field(article, "paragraphs", path, None, list)):
            where = f"data[{a}].paragraphs[{p}]"
            if not has_fields(para, context=str):
                raise malformed(path, None, f"{where}: missing field 'context'")
            if not isinstance(para.get("qas"), list):
                raise malformed(path, None, f"{where}: missing field 'qas'")
            for q, qa in enumerate(para["qas"]):
                if not has_fields(qa, question=str):
                    raise malformed(path, None, f"{where}.qas[{q}]: missing field 'question'")
                answers = qa.get("answers")
                if not answers or not has_fields(answers[0], text=str):
                    raise malformed(path, None, f"{where}.qas[{q}] ({qa.get('id')}): no answer text")
                samples.append(Sample(f"文章：{para['context']}\n質問：{qa['question']}", answers[0]["text"]))
    return samples


def jsquad(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    return train_dev_test(spec, raw, splits, _jsquad_rows)
