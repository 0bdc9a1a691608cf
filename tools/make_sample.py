"""Rebuild the bundled demo sample (jleval/sample/) from the real raw files: a deterministic excerpt of the seed
tasks whose licences allow redistribution (CC BY-SA 4.0, CC BY 4.0, Apache-2.0; nothing non-commercial).

Usage: python tools/make_sample.py RAW_DIR   (e.g. ../shared/data/raw)
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "jleval" / "sample"

# (dataset folder, licence, upstream repository)
DATASETS = {
    "jamp": ("CC BY-SA 4.0", "https://github.com/tomo-ut/temporalNLI_dataset"),
    "jemhopqa": ("CC BY-SA 4.0", "https://github.com/aiishii/JEMHopQA"),
    "jcommonsenseqa": ("CC BY-SA 4.0", "https://github.com/yahoojapan/JGLUE"),
    "chabsa": ("CC BY 4.0", "https://github.com/chakki-works/chABSA-dataset"),
    "mawps": ("Apache-2.0", "https://github.com/nlp-waseda/chain-of-thought-ja-dataset"),
    "jmmlu": ("CC BY-SA 4.0", "https://github.com/nlp-waseda/JMMLU"),
}


def head_lines(src: Path, dst: Path, n: int) -> None:
    text = src.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)[:n]
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(lines), encoding="utf-8")


def head_json_array(src: Path, dst: Path, n: int) -> None:
    data = json.loads(src.read_text(encoding="utf-8"))
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(data[:n], ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main(raw: Path) -> None:
    from jleval.fsutil import sha256_file, tree_sha256
    from jleval.tasks import all_tasks

    if OUT.exists():
        shutil.rmtree(OUT)
    r, o = raw, OUT / "raw"
    head_lines(r / "jamp/dataset/train_all.tsv", o / "jamp/dataset/train_all.tsv", 201)
    head_lines(r / "jamp/dataset/test_2.tsv", o / "jamp/dataset/test_2.tsv", 61)
    head_json_array(r / "jemhopqa/corpus/train.json", o / "jemhopqa/corpus/train.json", 60)
    head_json_array(r / "jemhopqa/corpus/dev.json", o / "jemhopqa/corpus/dev.json", 40)
    jc = "jcommonsenseqa/datasets/jcommonsenseqa-v1.1"
    head_lines(r / jc / "train-v1.1.json", o / jc / "train-v1.1.json", 200)
    head_lines(r / jc / "valid-v1.1.json", o / jc / "valid-v1.1.json", 60)
    for p in sorted((r / "chabsa/chABSA-dataset").glob("e*.json"))[:4]:
        (o / "chabsa/chABSA-dataset").mkdir(parents=True, exist_ok=True)
        shutil.copy(p, o / "chabsa/chABSA-dataset" / p.name)
    mw = "mawps/dataset/mawps"
    for name in ("zero_shot_example.json", "shot_example.json"):
        (o / mw).mkdir(parents=True, exist_ok=True)
        shutil.copy(r / mw / name, o / mw / name)
    head_json_array(r / mw / "test.json", o / mw / "test.json", 80)
    for p in sorted((r / "jmmlu/JMMLU").glob("*.csv")):
        (o / "jmmlu/JMMLU").mkdir(parents=True, exist_ok=True)
        raw_bytes = p.read_bytes()
        lines = raw_bytes.decode("utf-8-sig").splitlines(keepends=True)
        # keep whole CSV records: stop after 6 records with balanced quotes
        out, records, buf = [], 0, ""
        for line in lines:
            buf += line
            if buf.count('"') % 2 == 0:
                out.append(buf)
                buf, records = "", records + 1
                if records == 6:
                    break
        (o / "jmmlu/JMMLU" / p.name).write_text("".join(out), encoding="utf-8")
    for folder in DATASETS:
        lic = next((p for p in (r / folder).rglob("LICENSE*")), None)
        if lic:
            shutil.copy(lic, o / folder / "LICENSE")
    checksums = {}
    for task in all_tasks().values():
        for src in task.sources:
            p = o / src.path
            if src.kind == "dir" and p.is_dir():
                checksums[src.path] = tree_sha256(p, src.glob)[0]
            elif p.is_file():
                checksums[src.path] = sha256_file(p)
    (OUT / "checksums.json").write_text(json.dumps(dict(sorted(checksums.items())), indent=1) + "\n", encoding="utf-8")
    rows = "\n".join(f"| `{f}/` | {lic} | <{url}> |" for f, (lic, url) in DATASETS.items())
    (OUT / "ATTRIBUTION.md").write_text(
        "# The bundled demo sample\n\n"
        "Small excerpts (the first rows of each file) of the original benchmark files of six seed tasks, so that "
        "`jleval demo` runs offline. They are **not** the full sets: scores on them say nothing about a model. "
        "Each dataset keeps its own licence (the LICENSE file beside it) and attribution:\n\n"
        "| folder | licence | source |\n|---|---|---|\n" + rows + "\n\n"
        "chABSA is CC BY 4.0 (data, per its README); the LICENSE file copied with the mirror is the repository "
        "code's MIT licence. Non-commercial data (XL-Sum, the JMMLU CC BY-NC-ND subjects) is left out.\n"
        "Rebuild with `python tools/make_sample.py RAW_DIR`; `checksums.json` pins these excerpts.\n",
        encoding="utf-8")
    print(f"wrote {OUT} ({sum(1 for _ in OUT.rglob('*') if _.is_file())} files)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
