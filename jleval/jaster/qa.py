"""Open-domain QA converters: JEMHopQA, NIILC, AIO (JAQKET).

Each reads one file that is shuffled (seed 42) and cut 90/10 into train/dev, and one file kept in order as
the test split, the way llm-jp-eval v1.4.1 does. The input is always `質問：<question>`.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from jleval.jaster.base import RawFiles, Sample, Splits, has_fields, malformed, read_text
from jleval.jaster.jglue import field, json_document, jsonl_records, train_dev_test
from jleval.tasks import TaskSpec

# --- JEMHopQA ------------------------------------------------------------------------------------------------

def _jemhopqa_rows(path: Path) -> list[Sample]:
    """corpus/{train,dev}.json: a JSON array of {qid, type, question, answer, ...}. Yes/no questions already
    carry the answers "YES"/"NO" in the corpus; they are kept as they are (the instruction asks for them)."""
    items = json_document(path)
    if not isinstance(items, list):
        raise malformed(path, 1, f"expected a JSON array of questions, found {type(items).__name__}")
    samples = []
    for i, item in enumerate(items):
        if not has_fields(item, question=str, answer=str):
            qid = item.get("qid") if isinstance(item, dict) else None
            raise malformed(path, None, f"item {i} (qid {qid}): needs string fields 'question' and 'answer'")
        samples.append(Sample(f"質問：{item['question']}", item["answer"]))
    return samples


def jemhopqa(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    return train_dev_test(spec, raw, splits, _jemhopqa_rows)


# --- NIILC ---------------------------------------------------------------------------------------------------

def _xml_text(node: ET.Element | None) -> str | None:
    """Element text as upstream's xmltodict returns it: whitespace-stripped (str.strip, so U+3000 too),
    None when empty."""
    if node is None:
        return None
    text = "".join(node.itertext()).strip()
    return text or None


def _niilc_rows(path: Path) -> list[Sample]:
    """NIILC-ECQA2015_{dev,test}.xml: <questions><question id><text/><answers><answer/>…</answers>…

    Several answers are joined with "," (empty ones left out); a question whose only answer is "-" (no
    answer) is dropped, as upstream does."""
    text = read_text(path)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise malformed(path, e.position[0], f"not well-formed XML ({e})") from None
    # line numbers of <question id=…> for error messages (ElementTree keeps none)
    lines = {qid: n for n, line in enumerate(text.splitlines(), start=1)
             if (qid := _question_id(line)) is not None}
    samples = []
    for q in root.iter("question"):
        qid = q.get("id", "?")
        line = lines.get(qid)
        question = _xml_text(q.find("text"))
        answers_node = q.find("answers")
        answers = [_xml_text(a) for a in answers_node.findall("answer")] if answers_node is not None else []
        if question is None:
            raise malformed(path, line, f"question {qid} has no <text>")
        if not answers:
            raise malformed(path, line, f"question {qid} has no <answer>")
        if answers == [None]:
            raise malformed(path, line, f"question {qid} has an empty <answer>")
        if answers == ["-"]:
            continue
        samples.append(Sample(f"質問：{question}", ",".join(a for a in answers if a)))
    return samples


def _question_id(line: str) -> str | None:
    start = line.find('<question id="')
    if start < 0:
        return None
    start += len('<question id="')
    end = line.find('"', start)
    return line[start:end] if end > start else None


def niilc(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    return train_dev_test(spec, raw, splits, _niilc_rows)


# --- AIO (JAQKET, AI王 round 1) -------------------------------------------------------------------------------

def _aio_rows(path: Path) -> list[Sample]:
    """aio_01_{dev,test}.jsonl: one {qid, question, answers: [...], ...} per line; the gold is the first
    answer."""
    samples = []
    for n, rec in jsonl_records(path):
        question = field(rec, "question", path, n)
        answers = field(rec, "answers", path, n, list)
        if not answers or not isinstance(answers[0], str):
            raise malformed(path, n, "field 'answers' should be a non-empty list of strings")
        samples.append(Sample(f"質問：{question}", answers[0]))
    return samples


def aio(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    """aio_01_dev -> train/dev (seed-42 shuffle, 90/10), aio_01_test -> test. JAQKET has no train file in
    llm-jp-eval's download list; upstream's exact train derivation could not be read, so this follows the
    scheme of every other two-file jaster set (see the note in tasks/aio.toml)."""
    return train_dev_test(spec, raw, splits, _aio_rows)
