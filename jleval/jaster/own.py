"""A user's own tasks (`--tasks-dir DIR`): `[files]` names local JSON Lines files, one per split, each line
{"input": "...", "output": "..."}. The rows are used as they are, in file order (no shuffle, no re-split)."""
from __future__ import annotations

from pathlib import Path

from jleval.errors import MalformedDataError
from jleval.fsutil import sha256_file
from jleval.jaster.base import RawFiles, Sample, Splits, jsonl_records
from jleval.jaster.sources import Located
from jleval.tasks import Source, TaskSpec

ROW_HINT = 'each line must be a JSON object with string fields "input" and "output" (other fields are ignored)'


def source_key(spec: TaskSpec, split: str) -> str:
    """How a split's file is named in the manifest and in messages: its path as the task file gives it."""
    path = dict(spec.files)[split]
    try:
        return path.relative_to(spec.file.parent.resolve()).as_posix() if spec.file else str(path)
    except ValueError:
        return str(path)


def locate_own(spec: TaskSpec) -> Located:
    """The task's files by split, with their sha256; a file that does not exist is reported as missing."""
    out = Located()
    for split, path in spec.files:
        key = source_key(spec, split)
        if not path.is_file():
            why = f"not found: {path} (named by {spec.file} [files] {split})"
            out.missing.append((Source(path=key, url="", needed_for=(split,)), why))
            continue
        out.files[split] = path
        out.hashes[key] = sha256_file(path)
    return out


def _row(path: Path, n: int, obj: dict) -> Sample:
    bad = [k for k in ("input", "output") if not isinstance(obj.get(k), str)]
    if bad:
        what = ", ".join(f'"{k}" is '
                         + ("missing" if k not in obj else f"of type {type(obj[k]).__name__}, not a string")
                         for k in bad)
        raise MalformedDataError(f"{path}, line {n}: {what}", ROW_HINT)
    return Sample(obj["input"], obj["output"])


def read_rows(path: Path) -> list[Sample]:
    try:
        rows = [_row(path, n, obj) for n, obj in jsonl_records(path)]
    except MalformedDataError as e:
        raise MalformedDataError(e.message, ROW_HINT) from None
    if not rows:
        raise MalformedDataError(f"{path} has no rows", ROW_HINT)
    return rows


def jsonl(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    """The converter of every own task: each split is its file's rows."""
    return {split: read_rows(raw.path(split)) for split in splits}
