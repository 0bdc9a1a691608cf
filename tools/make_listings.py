"""Write tasks/listings/<tree sha256>.sha256 for every directory source found (with its pinned hash) in a raw
folder: the per-file checksums that let `preprocess` name the missing or changed file in a folder whose tree hash
does not match. Each listing's own sha256 is the pinned tree hash, so a listing cannot drift from its task file.

    python tools/make_listings.py ../shared/data/raw
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path


def main(raw_dir: str) -> int:
    from jleval.fsutil import tree_listing
    from jleval.jaster.sources import listing_path
    from jleval.tasks import all_tasks

    done: set[str] = set()
    for spec in all_tasks().values():
        for src in spec.sources:
            if src.kind != "dir" or not src.sha256 or src.sha256 in done:
                continue
            folder = Path(raw_dir) / src.path
            if not folder.is_dir():
                print(f"skip {src.path}: not in {raw_dir}")
                continue
            listing = tree_listing(folder, src.glob)
            if hashlib.sha256(listing.encode()).hexdigest() != src.sha256:
                print(f"skip {src.path}: its tree hash differs from the pinned one")
                continue
            out = listing_path(src.sha256)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(listing, encoding="utf-8")
            done.add(src.sha256)
            print(f"wrote {out} ({listing.count(chr(10))} files, {src.path})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/raw"))
