"""Summarization converter: XL-Sum Japanese ("xlsum_ja"; CC BY-NC-SA 4.0, non-commercial)."""
from __future__ import annotations

import warnings

from jleval.jaster.base import MissingPart, RawFiles, Sample, Splits, has_fields, jsonl_records, malformed
from jleval.tasks import TaskSpec

XLSUM_DIR = "xlsum_ja"
#: XL-Sum's own split files -> jaster splits.
XLSUM_FILES = {"train": "japanese_train.jsonl", "dev": "japanese_val.jsonl", "test": "japanese_test.jsonl"}
#: Articles longer than this many characters are dropped (upstream PR #103: long inputs overflow the context).
MAX_CHAR_LENGTH = 2000


def _split(path) -> list[Sample]:
    out = []
    for n, row in jsonl_records(path):
        if not has_fields(row, text=str, summary=str):
            raise malformed(path, n, "expected a JSON object with string fields 'text' and 'summary'")
        if len(row["text"]) <= MAX_CHAR_LENGTH:
            out.append(Sample(row["text"], row["summary"]))
    return out


def xlsum_ja(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    """XL-Sum's official splits in file order (not shuffled), articles over MAX_CHAR_LENGTH characters dropped."""
    root = raw.path(XLSUM_DIR)
    out: Splits = {}
    for split in splits:
        path = root / XLSUM_FILES[split]
        if not path.is_file():  # a partial copy: build the splits whose files are there
            warnings.warn(MissingPart(f"{path} (needed for {split}): not in the XL-Sum folder; source: "
                                      f"{spec.sources[0].url}"), stacklevel=1)
            continue
        out[split] = _split(path)
    return out
