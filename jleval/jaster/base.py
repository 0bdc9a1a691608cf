"""What every converter shares: the Sample type, the located raw files, seeded splits, row errors."""
from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

from jleval.errors import MalformedDataError, MissingRawFileError
from jleval.tasks import TaskSpec

SEED = 42


@dataclass(frozen=True)
class Sample:
    input: str
    output: str

    def to_json(self) -> dict[str, str]:
        return {"input": self.input, "output": self.output}


Splits = dict[str, list[Sample]]
Converter = Callable[[TaskSpec, "RawFiles", tuple[str, ...]], Splits]


class MissingPart(UserWarning):
    """Warned by a converter when a file inside a (present) directory source is missing: the splits that need it
    are not built, the others are, and preprocess reports the file as missing (exit 3), not as corruption."""


class RawFiles:
    """The raw files of one task, located and verified: source path (as in the task file) -> local path."""

    def __init__(self, located: dict[str, Path]) -> None:
        self._located = dict(located)

    def has(self, rel: str) -> bool:
        return rel in self._located

    def path(self, rel: str) -> Path:
        if rel not in self._located:
            raise MissingRawFileError(f"raw file {rel} is not available", "pass --raw-dir DIR or allow downloads")
        return self._located[rel]

    def dir_files(self, rel: str, pattern: str = "*") -> list[Path]:
        """Files of a directory source, sorted by relative path (deterministic on every file system)."""
        root = self.path(rel)
        return sorted((p for p in root.rglob(pattern) if p.is_file()), key=lambda p: p.relative_to(root).as_posix())

    def text(self, rel: str, encoding: str = "utf-8") -> str:
        return read_text(self.path(rel), encoding)


def read_text(path: Path, encoding: str = "utf-8") -> str:
    try:
        return Path(path).read_text(encoding=encoding)
    except UnicodeDecodeError as e:
        line = Path(path).read_bytes()[: e.start].count(b"\n") + 1
        raise MalformedDataError(f"{path}, line {line}: not valid {encoding} text",
                                 "re-download the file (delete it from the cache) or check --raw-dir") from None


def jsonl_records(path: Path, text: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-empty line of a JSON Lines file (`text` = its already decoded
    content, e.g. from a .gz). A line that is not a JSON object is a MalformedDataError naming file and line."""
    for n, line in enumerate((read_text(path) if text is None else text).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise malformed(path, n, f"not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise malformed(path, n, f"expected a JSON object, found {type(obj).__name__}")
        yield n, obj


def has_fields(obj: object, **types: type) -> TypeGuard[dict[str, Any]]:
    """`obj` is a JSON object whose fields `types` are all present with those types: has_fields(item,
    question=str, answers=list)."""
    return isinstance(obj, dict) and all(isinstance(obj.get(key), t) for key, t in types.items())


def malformed(path: Path | str, line: int | None, reason: str) -> MalformedDataError:
    where = f"{path}" + (f", line {line}" if line is not None else "")
    return MalformedDataError(f"{where}: {reason}", "the raw file looks corrupt or of another version: "
                              "re-download it (delete it from the cache) or check --raw-dir")


def check_label(labels: Sequence[str], value: str, path: Path | str, line: int | None, where: str = "") -> str:
    """`value` when it is one of the task's `labels` (or the task has none); else a MalformedDataError naming
    the raw file and line: a set with a label outside its label list would be scored against an answer the
    prompt never offers."""
    if labels and value not in labels:
        raise malformed(path, line, f"{where}label {value!r} is not one of the task's labels ({', '.join(labels)})")
    return value


def tsv_rows(path: Path, min_cols: int, skip_header: bool = True) -> Iterator[tuple[int, list[str]]]:
    """Rows of a TSV split the way upstream reads them (line.split("\\t"), no CSV quoting), with line numbers."""
    text = read_text(path)
    lines = text.splitlines()
    for n, line in enumerate(lines, start=1):
        if skip_header and n == 1:
            continue
        if not line:
            continue
        row = line.split("\t")
        if len(row) < min_cols:
            raise malformed(path, n, f"expected at least {min_cols} tab-separated columns, found {len(row)}")
        yield n, row


def csv_rows(path: Path, encoding: str = "utf-8", **kw) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(read_text(path, encoding), newline=""), **kw)
    for row in reader:
        yield reader.line_num, row


T = TypeVar("T")  # a sample, or a group of them (WikiCorpus splits whole files)


def shuffled(samples: Sequence[T], seed: int = SEED) -> list[T]:
    """`random.seed(seed); random.shuffle(list)`, exactly as upstream does before every split."""
    out = list(samples)
    random.seed(seed)
    random.shuffle(out)
    return out


def asked(built: Splits, splits: tuple[str, ...]) -> Splits:
    """The splits of `built` that were asked for: for a converter that builds all of its splits at once."""
    return {s: v for s, v in built.items() if s in splits}


def split_9_1(samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
    """Upstream's train/dev split of an original train file: shuffle (seed 42), first int(0.9 n) -> train."""
    s = shuffled(samples)
    cut = int(len(s) * 0.9)
    return s[:cut], s[cut:]


def split_8_1_1(samples: Sequence[T]) -> tuple[list[T], list[T], list[T]]:
    """Upstream's 80/10/10 split of one pool: shuffle (seed 42), cut at int(0.8 n) and int(0.9 n)."""
    s = shuffled(samples)
    a, b = int(len(s) * 0.8), int(len(s) * 0.9)
    return s[:a], s[a:b], s[b:]
