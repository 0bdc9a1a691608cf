"""Human-examination converters: JMMLU (Japanese) and MMLU (English, "mmlu_en")."""
from __future__ import annotations

import csv
import random
from pathlib import Path

from jleval.errors import TaskSpecError
from jleval.jaster.base import (
    SEED,
    RawFiles,
    Sample,
    Splits,
    asked,
    csv_rows,
    malformed,
    shuffled,
)
from jleval.tasks import TaskSpec

JMMLU_DIR = "jmmlu/JMMLU"
NUM_TRAIN_EXAMPLES = 32
CHOICE_LETTERS = ("A", "B", "C", "D")


def _mc_rows(path: Path, encoding: str) -> list[tuple[int, list[str]]]:
    rows = []
    for line, row in csv_rows(path, encoding=encoding, quoting=csv.QUOTE_ALL):
        if not row:
            continue
        if len(row) < 6:
            raise malformed(path, line, f"expected 6 columns (question, A, B, C, D, answer), found {len(row)}")
        if row[5] not in CHOICE_LETTERS:
            raise malformed(path, line, f"answer {row[5]!r} is not one of A, B, C, D")
        rows.append((line, row))
    return rows


def _jmmlu_subject(path: Path) -> list[Sample]:
    # No header; some files start with a BOM (utf-8-sig, as upstream reads them).
    return [Sample(f"質問：{r[0]}\n選択肢：A.{r[1]},B.{r[2]},C.{r[3]},D.{r[4]}", r[5])
            for _, r in _mc_rows(path, "utf-8-sig")]


def jmmlu_subjects(spec: TaskSpec) -> list[str]:
    """The subject files in upstream's reading order: the task file's `options.subjects` (data, not code)."""
    subjects = spec.options.get("subjects")
    if (not isinstance(subjects, list) or not subjects or not all(isinstance(s, str) and s for s in subjects)
            or len(set(subjects)) != len(subjects)):
        raise TaskSpecError(f"{spec.file or spec.name}: options.subjects must list each subject file name once",
                            "restore the list of subjects (in upstream's reading order) in the task file")
    return subjects


def jmmlu(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    """Upstream's algorithm (llm-jp-eval datasets/jmmlu.py): random.seed(42) once, then for each subject in the
    task file's order, shuffle it (the random stream continues from subject to subject) and give the first
    len//2 to the dev pool, the rest to the test pool; then shuffle the dev pool and the test pool (the stream
    still continuing). Train = the first 16 of each pool; dev/test = the rest."""
    subjects = jmmlu_subjects(spec)
    root = raw.path(JMMLU_DIR)
    present = {p.stem for p in raw.dir_files(JMMLU_DIR, "*.csv")}
    if missing := [s for s in subjects if s not in present]:
        raise malformed(root, None, f"subject files missing: {', '.join(missing)}")
    rng = random.Random(SEED)  # the same stream as upstream's random.seed(42) + random.shuffle
    dev_pool: list[Sample] = []
    test_pool: list[Sample] = []
    for subject in subjects:
        samples = _jmmlu_subject(root / f"{subject}.csv")
        rng.shuffle(samples)
        half = len(samples) // 2
        dev_pool += samples[:half]
        test_pool += samples[half:]
    rng.shuffle(dev_pool)
    rng.shuffle(test_pool)
    k = NUM_TRAIN_EXAMPLES // 2
    out = {"train": dev_pool[:k] + test_pool[:k], "dev": dev_pool[k:], "test": test_pool[k:]}
    return asked(out, splits)


MMLU_DIR = "mmlu_en/data"
#: MMLU's own split folders -> jaster splits (MMLU's 5-shot dev set becomes the train split).
MMLU_SPLITS = {"train": "dev", "dev": "val", "test": "test"}


def _mmlu_subject(path: Path) -> list[Sample]:
    # The "Qusetion:" typo is upstream's and kept: it is part of every prompt the leaderboard scored.
    return [Sample(f"Qusetion: {r[0]}\nChoices: A.{r[1]}, B.{r[2]}, C.{r[3]}, D.{r[4]}", r[5])
            for _, r in _mc_rows(path, "utf-8")]


def round_robin(per_subject: list[list[Sample]]) -> list[Sample]:
    """Interleave subjects: item 0 of every subject, then item 1, … up to the shortest subject's length; then
    the remainder of each subject in subject order (upstream's balancing, so the first shots span subjects)."""
    shortest = min((len(s) for s in per_subject), default=0)
    out = [s[i] for i in range(shortest) for s in per_subject]
    for s in per_subject:
        out += s[shortest:]
    return out


def mmlu_en(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    """Per split folder: subjects in sorted file order, each shuffled (seed 42), then round-robin interleaved."""
    out: Splits = {}
    for split in splits:
        folder = f"{MMLU_DIR}/{MMLU_SPLITS[split]}"
        files = [p for p in raw.dir_files(MMLU_DIR, "*.csv") if p.parent == raw.path(MMLU_DIR) / MMLU_SPLITS[split]]
        if not files:
            raise malformed(raw.path(MMLU_DIR), None, f"no subject CSV files in {folder}")
        out[split] = round_robin([shuffled(_mmlu_subject(p)) for p in sorted(files, key=lambda p: p.name)])
    return out

