"""Small file-system helpers shared by every stage: atomic writes and hashing."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jleval.errors import OutputError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename.

    A reader (or a crash) never sees a half-written file: either the old content or the new one.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(
            f"cannot write to {path.parent}: {e.strerror or e}",
            "choose a writable output folder (e.g. --out DIR)",
        ) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_many(files: dict[Path, bytes]) -> None:
    """Write several files all or nothing (as far as a file system allows): every content goes to a temporary
    file beside its target first; only when all are on disk are they renamed into place. A target that cannot
    be written (a folder in the way, a read-only folder) raises OutputError naming it, with nothing replaced."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            if path.is_dir():
                raise OutputError(f"cannot write {path}: a folder of that name is in the way",
                                  "remove or rename it, or pass another --out")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                staged.append((tmp, path))
                os.fchmod(fd, 0o666 & ~_umask())
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                raise OutputError(f"cannot write {path}: {e.strerror or e}",
                                  "choose a writable output path (e.g. --out DIR/leaderboard.csv)") from None
        for tmp, path in staged:
            os.replace(tmp, path)
        staged = []
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@contextlib.contextmanager
def exclusive(lock_path: Path, busy: Exception | None, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path` for the block: a file (created with its folder), or an existing
    folder, locked itself so that no lock file is left in it. Raise `busy` when another process holds it, or
    with `wait=True` wait for it (for short read-modify-writes). The kernel drops the lock if the holder dies,
    even by kill -9."""
    lock_path = Path(lock_path)
    if lock_path.is_dir():
        fd = os.open(lock_path, os.O_RDONLY)
    else:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if busy is None:  # only wait=True callers pass no error, and they never get here
                raise
            raise busy from None
        yield
    finally:
        os.close(fd)


def check_writable(folder: Path) -> None:
    """Refuse, up front and by name, an output folder that cannot be created or written (the nearest existing
    ancestor must be a writable folder)."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise OutputError(f"output folder {folder} is not writable", "pass --out DIR with a writable folder")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any, indent: int | None = 4) -> str:
    """The JSON dialect of every file jleval writes: UTF-8 text, not ASCII-escaped, stable key order; strict JSON
    (NaN and Infinity, which JSON has no words for, raise ValueError rather than make a file no reader accepts)."""
    return json.dumps(obj, ensure_ascii=False, indent=indent, allow_nan=False)


def encode_json(obj: Any, indent: int | None = 4) -> bytes:
    """`dumps_json` as UTF-8 bytes. A string that UTF-8 cannot hold (a lone surrogate: a path whose bytes are
    not UTF-8) makes the whole document ASCII-escaped (\\uXXXX), which reads back as the same text."""
    text = dumps_json(obj, indent)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, indent=indent).encode("utf-8")


def atomic_write_json(path: Path, obj: Any, indent: int | None = 4) -> None:
    atomic_write_bytes(path, encode_json(obj, indent) + b"\n")


def read_json_object(path: Path) -> dict | None:
    """A JSON object from a file, or None when the file is not one (unreadable, corrupt, truncated, another
    type); callers decide whether that is an error, a warning or a rebuild."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    """sha256 of the UTF-8 text (a lone surrogate, e.g. from a non-UTF-8 path given on the command line, is
    hashed as its surrogate code unit instead of failing)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def tree_listing(root: Path, pattern: str = "*") -> str:
    """`sha256sum`-style lines "<hash>  <relpath>\n" of the files under `root` matching `pattern` (recursively),
    sorted by relative path. Its sha256 is the tree hash (tree_sha256)."""
    root = Path(root)
    files = sorted((p for p in root.rglob(pattern) if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
    return "".join(f"{sha256_file(p)}  {p.relative_to(root).as_posix()}\n" for p in files)


def tree_sha256(root: Path, pattern: str = "*") -> tuple[str, list[Path]]:
    """Hash a directory of files: sha256 of its tree_listing. Returns the hash and the sorted files."""
    root = Path(root)
    files = sorted((p for p in root.rglob(pattern) if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
    return hashlib.sha256(tree_listing(root, pattern).encode()).hexdigest(), files


def diff_listings(expected: str, actual: str, limit: int = 5) -> str:
    """What differs between two tree listings, in words: missing, changed and unexpected files (the first
    `limit` of each, with counts)."""
    def parse(text: str) -> dict[str, str]:
        return {line[66:]: line[:64] for line in text.splitlines() if len(line) > 66}

    exp, act = parse(expected), parse(actual)
    parts = []
    for label, names in (("missing", sorted(set(exp) - set(act))),
                         ("changed", sorted(n for n in set(exp) & set(act) if exp[n] != act[n])),
                         ("unexpected", sorted(set(act) - set(exp)))):
        if names:
            shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
            parts.append(f"{len(names)} {label} ({shown})")
    return "; ".join(parts) or "same files, same contents"
