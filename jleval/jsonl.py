"""Append-only JSON Lines files (run outputs, arena judgments): one reading rule, one repair, one appender.

The rule, the same for every such file jleval reads or writes:

- A record is one line: a JSON value followed by a newline. Writers append each record with one write of
  `json + "\\n"`, so a record is complete exactly when its newline is on disk.
- A last line without its newline was cut by a crash mid-write (kill -9, power loss, a full disk). On read it is
  ignored, whether or not it happens to parse; `repair` cuts it off before the next append, so a resumed writer
  never glues a new record onto half an old one. A file you write by hand must therefore end with a newline.
- Blank lines are skipped. Any other line that is not UTF-8 JSON is an error naming the file and line: a file
  edited or damaged in the middle is never silently half-read.

The caller builds its own error (its error class and fix hint) from the line number and the reason, so every
reader reports bad lines the same way while each command keeps its words.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jleval.records import json_type

#: fail(line_number, reason) -> the exception to raise for a bad line.
FailFn = Callable[[int, str], Exception]


@dataclass
class Lines:
    """The complete records of a file: (line number, parsed JSON value), and the crash-cut tail ignored."""

    records: list[tuple[int, Any]]
    tail: bytes  # the bytes after the last newline (b"" when the file ends cleanly)


def split_tail(data: bytes) -> tuple[bytes, bytes]:
    """(complete lines, crash-cut tail): everything up to the last newline, and what follows it."""
    end = data.rfind(b"\n") + 1
    return data[:end], data[end:]


def parse(data: bytes, fail: FailFn) -> Lines:
    """Parse the bytes of a JSONL file by the rule above."""
    body, tail = split_tail(data)
    records: list[tuple[int, Any]] = []
    for n, line in enumerate(body.split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise fail(n, "not valid UTF-8 text") from None
        try:
            records.append((n, json.loads(text)))
        except json.JSONDecodeError as e:
            raise fail(n, f"not valid JSON ({e.msg})") from None
    return Lines(records, tail)


def read(path: Path | str, fail: FailFn) -> Lines:
    """The complete records of `path` (an absent file has none)."""
    path = Path(path)
    return parse(path.read_bytes(), fail) if path.is_file() else Lines([], b"")


def read_objects(path: Path | str, fail: FailFn, key: str | None = None) -> Lines:
    """Like `read`, and every record must be a JSON object; with `key`, one holding that field as a string."""
    lines = read(path, fail)
    for n, rec in lines.records:
        if not isinstance(rec, dict):
            raise fail(n, f"expected a JSON object, found {json_type(rec)}")
        if key is not None and not isinstance(rec.get(key), str):
            found = "no such field" if key not in rec else json_type(rec[key])
            raise fail(n, f"{key!r} must be a string ({found})")
    return lines


def repair(path: Path | str) -> bool:
    """Cut a crash-cut last line off `path` (see the rule). Returns whether anything was cut."""
    path = Path(path)
    if not path.is_file():
        return False
    size = path.stat().st_size
    if size == 0:
        return False
    with open(path, "r+b") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return False
        body, _ = split_tail(path.read_bytes())
        f.truncate(len(body))
    return True


class Appender:
    """Appends records to a JSONL file, one `json + "\\n"` write each, flushed at once (a killed process loses
    nothing written) and fsync'd for power loss: after every record with `fsync_every=0`, else at most once per
    `fsync_every` seconds and on close. A crash-cut tail is repaired before the first append."""

    def __init__(self, path: Path | str, fsync_every: float = 0.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair(self.path)
        self.fsync_every = fsync_every
        self._f = open(self.path, "a", encoding="utf-8")
        self._synced = time.monotonic()

    def write(self, record: Any) -> None:
        self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._f.flush()
        if time.monotonic() - self._synced >= self.fsync_every:
            os.fsync(self._f.fileno())
            self._synced = time.monotonic()

    def close(self) -> None:
        if self._f.closed:
            return
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
        finally:
            self._f.close()

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
