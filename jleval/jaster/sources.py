"""Locating raw files: --raw-dir (offline), the download cache, or a download from the pinned URL.

Every file is checked against the sha256 pinned in its task file. A directory source is checked with the
tree hash of its files (fsutil.tree_sha256), so an archive download is verified by content, not by the
archive's bytes (which hosts re-compress).
"""
from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jleval.errors import ChecksumError, MissingRawFileError
from jleval.fsutil import diff_listings, sha256_file, tree_listing
from jleval.resources import jleval_home, tasks_dir
from jleval.tasks import Source, TaskSpec

#: reporter(label, bytes_done, bytes_total_or_None) for download progress.
Reporter = Callable[[str, int, "int | None"], None]


def raw_cache_dir() -> Path:
    return jleval_home() / "raw"


@dataclass
class Located:
    files: dict[str, Path] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    missing: list[tuple[Source, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _present(path: Path, src: Source) -> bool:
    return path.is_dir() if src.kind == "dir" else path.is_file()


def listing_path(expected_tree_sha256: str) -> Path:
    """The shipped per-file listing of a directory source, named by the tree hash it must reproduce."""
    return tasks_dir() / "listings" / f"{expected_tree_sha256}.sha256"


def _verify(path: Path, src: Source, task: str, expected: str) -> str:
    if src.kind != "dir":
        digest = sha256_file(path)
        if expected and digest != expected:
            raise ChecksumError(
                f"checksum mismatch for {path} (task {task}): expected sha256 {expected}, got {digest}",
                f"the file is corrupt or another version: delete it and download it again from {src.url}",
            )
        return digest
    listing = tree_listing(path, src.glob)
    digest = hashlib.sha256(listing.encode()).hexdigest()
    if expected and digest != expected:
        shipped = listing_path(expected)
        if shipped.is_file():
            what = diff_listings(shipped.read_text(encoding="utf-8"), listing)
            raise ChecksumError(
                f"the folder {path} (task {task}) differs from the pinned version: {what}",
                f"restore (or remove) those files, or delete the folder and download it again from {src.url} "
                f"(the expected file list with checksums: {shipped})",
            )
        raise ChecksumError(
            f"checksum mismatch for the folder {path} (task {task}): expected tree sha256 {expected}, got {digest}",
            f"a file in it is missing, extra or changed: delete the folder and download it again from {src.url}",
        )
    return digest


def download(src: Source, dest: Path, reporter: Reporter | None = None, timeout: float = 60.0) -> None:
    """Fetch `src.url` into `dest` (a file, or for a directory source the archive's `archive_root`)."""
    import httpx

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp:
        tmp_file = Path(tmp) / "payload"
        try:
            with httpx.stream("GET", src.url, follow_redirects=True, timeout=timeout) as r:
                r.raise_for_status()
                total = int(r.headers["content-length"]) if "content-length" in r.headers else None
                done = 0
                with open(tmp_file, "wb") as f:
                    for chunk in r.iter_bytes(1 << 16):
                        f.write(chunk)
                        done += len(chunk)
                        if reporter:
                            reporter(src.path, done, total)
        except httpx.HTTPError as e:
            raise MissingRawFileError(
                f"could not download {src.path} from {src.url}: {e}",
                "check the network, or download it by hand and pass --raw-dir DIR",
            ) from None
        if src.kind == "file":
            tmp_file.replace(dest)
            return
        root = _unpack(src, tmp_file, Path(tmp) / "x")
        if dest.exists():
            shutil.rmtree(dest)
        shutil.move(str(root), dest)


def _unpack(src: Source, archive: Path, into: Path) -> Path:
    """Extract a downloaded archive (.zip, or a tar file) into `into`; its folder `archive_root` (`into` itself
    when that is "") is the directory source."""
    try:
        if src.url.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(into)
        else:
            with tarfile.open(archive) as t:
                t.extractall(into, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError) as e:
        head = archive.read_bytes()[:64]
        looks = " (the server sent a web page, not the archive)" if head.lstrip()[:1] == b"<" else ""
        raise MissingRawFileError(
            f"the download of {src.path} from {src.url} is not a readable archive{looks}: {e}",
            "try again later, or download it by hand and pass --raw-dir DIR",
        ) from None
    root = into / src.archive_root  # Path / "" is the path itself
    if not root.is_dir():
        raise MissingRawFileError(f"archive {src.url} has no folder {src.archive_root!r}",
                                  "the upstream archive changed: pass --raw-dir DIR with the files")
    return root


def locate(task: TaskSpec, raw_dir: Path | None, allow_download: bool, reporter: Reporter | None = None,
           checksums: dict[str, str] | None = None) -> Located:
    """Find (and with allow_download fetch) every source of `task`; verify what is found.

    With a raw_dir, only raw_dir and the cache are read (offline). A checksum mismatch is an error;
    a missing file is recorded in `missing` with the reason, so the caller can build what it can.
    `checksums` ({source path: sha256}) replaces the pinned hashes: used for the bundled excerpt (the demo
    sample), whose files are cut-down copies with their own checksum list.
    """
    out = Located()
    cache = raw_cache_dir()
    if raw_dir:
        roots, where = [Path(raw_dir), cache], f"in {raw_dir} or the cache {cache}"
    else:
        roots, where = [cache], f"in the cache {cache}"
    for src in task.sources:
        found = next((root / src.path for root in roots if _present(root / src.path, src)), None)
        if found is None and allow_download:
            try:
                download(src, cache / src.path, reporter)
                found = cache / src.path
            except MissingRawFileError as e:
                out.missing.append((src, e.message))
                continue
        if found is None:
            out.missing.append((src, f"not found {where}; downloads are off"))
            continue
        expected = (checksums or {}).get(src.path, src.sha256)
        out.hashes[src.path] = _verify(found, src, task.name, expected)
        if not expected:
            out.warnings.append(f"{task.name}: {src.path} has no pinned sha256 upstream; "
                                f"used as found (sha256 {out.hashes[src.path][:12]}…, recorded in the manifest)")
        out.files[src.path] = found
    return out
