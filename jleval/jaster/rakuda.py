"""Rakuda v2 questions (yuzu-ai/japanese-llm-ranking, Apache-2.0) -> the `rakuda` arena task.

The raw file is FastChat llm_judge JSONL: one `{category, question_id, turns: [question]}` object per line.
Every question goes to the "test" split in file order, so a sample's index is its line number minus one (the
`id` of the run outputs that `jleval arena judge` reads). There is no reference answer: `output` stays empty.
"""
from __future__ import annotations

from jleval.jaster.base import RawFiles, Sample, Splits, jsonl_records, malformed
from jleval.tasks import TaskSpec

QUESTIONS = "rakuda/jrank/data/rakuda_v2/questions.jsonl"


def read_questions(raw: RawFiles, rel: str = QUESTIONS) -> list[dict]:
    """The question records of a Rakuda questions.jsonl, checked: each line one object with one text turn."""
    path = raw.path(rel)
    out = []
    for n, rec in jsonl_records(path):
        turns = rec.get("turns")
        if not (isinstance(turns, list) and turns and all(isinstance(t, str) and t.strip() for t in turns)):
            raise malformed(path, n, "expected an object with a non-empty list of question texts in 'turns'")
        if len(turns) != 1:
            raise malformed(path, n, f"expected a single-turn question, found {len(turns)} turns")
        out.append(rec)
    if not out:
        raise malformed(path, None, "no questions in the file")
    return out


def questions(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    if "test" not in splits:
        return {}
    return {"test": [Sample(rec["turns"][0], "") for rec in read_questions(raw)]}
