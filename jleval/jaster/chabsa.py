"""chABSA (aspect-based sentiment in Japanese securities reports) -> the jaster "chabsa" set.

As llm-jp-eval v1.4.1: every sentence of every annotated document (`chABSA-dataset/e*.json`, read in sorted
file-name order) that has at least one opinion becomes a sample `文章：<sentence>` whose output is one
`<target> <polarity>` line per opinion, in annotation order. The pool is shuffled (seed 42) and cut 80/10/10.
"""
from __future__ import annotations

from pathlib import Path

from jleval.jaster.base import RawFiles, Sample, Splits, asked, has_fields, malformed, split_8_1_1
from jleval.jaster.jglue import json_document, source_for
from jleval.tasks import TaskSpec

POLARITIES = ("positive", "neutral", "negative")


def _document_samples(path: Path) -> list[Sample]:
    doc = json_document(path)
    if not has_fields(doc, sentences=list):
        raise malformed(path, None, "missing the 'sentences' list of a chABSA annotation file")
    samples = []
    for i, sent in enumerate(doc["sentences"]):
        if not has_fields(sent, sentence=str, opinions=list):
            raise malformed(path, None, f"sentences[{i}] needs a 'sentence' string and an 'opinions' list")
        lines = []
        for j, op in enumerate(sent["opinions"]):
            if not has_fields(op, target=str) or op.get("polarity") not in POLARITIES:
                raise malformed(path, None, f"sentences[{i}].opinions[{j}] needs a 'target' and a polarity "
                                            f"in {', '.join(POLARITIES)}")
            lines.append(f"{op['target']} {op['polarity']}")
        if lines:
            samples.append(Sample(f"文章：{sent['sentence']}", "\n".join(lines)))
    return samples


def chabsa(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    pattern = next((s.glob for s in spec.sources if s.kind == "dir"), "e*.json")
    files = raw.dir_files(source_for(spec, "test"), pattern)  # sorted by relative path: deterministic
    if not files:
        raise malformed(raw.path(source_for(spec, "test")), None, f"no annotation files matching {pattern}")
    pool = [s for f in files for s in _document_samples(f)]
    train, dev, test = split_8_1_1(pool)
    return asked({"train": train, "dev": dev, "test": test}, splits)
