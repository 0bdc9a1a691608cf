"""The demo's files in a form that can be compared across code changes (issue 19: "identical outputs on the demo and
the tiny-model runs, compared with files saved before the change").

`normalized(out_dir)` reads what `jleval demo --out OUT` wrote and returns {relative path: text}. Only what cannot be
the same from one run to the next is taken out, each for a stated reason:
- the folder the demo wrote to (it is in the model's id and path) -> `<OUT>`;
- clock times and dates (manifest, table's date column) -> `<TIME>` / `<DATE>`;
- the installed library versions (the manifest's `environment`, the engine's version in the backend block and the
  table's `engine_version` column), and the git commit jleval ran from;
- per-request latency (`latency_s`), the scoring's own `seconds`;
- the rows' order in outputs/*.jsonl (the order requests finished in; rows are sorted by id) and therefore the file
  hash of those outputs in scores.json (`outputs_sha256`).
Everything else is compared byte for byte: generations, gold, prompts' hashes, cache keys, per-sample scores, every
metric and CI, the table's rows, the manifests' settings. The jaster evaluation files are compared by sha256 (they are
1.8 MB). PNG charts are left out (their bytes carry the plotting library's version).

Run as a script to save the files: `python tests/golden_demo.py OUT` after `jleval demo --out OUT` writes
tests/golden/demo/. That is done by hand, once, before a change whose outputs must not move; the diff is reviewed.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent / "golden" / "demo"
SAVED_ON = GOLDEN.parent / "demo.machine"  # the CPU kernels torch used when the files were saved

VOLATILE_KEYS = {"created_at", "started_at", "finished_at", "latency_s", "seconds", "environment",
                 "jleval_git_commit", "engine_version", "torch_version", "transformers_version", "outputs_sha256"}
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?")
_DATE = re.compile(r"\b\d{4}-\d\d-\d\d\b")


def _drop_volatile(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_volatile(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [_drop_volatile(v) for v in obj]
    return obj


def _engine_versions() -> list[str]:
    import torch
    import transformers
    return [transformers.__version__, torch.__version__]


def _text(text: str, out_dir: Path) -> str:
    text = text.replace(str(out_dir), "<OUT>")
    text = _TIME.sub("<TIME>", text)
    text = _DATE.sub("<DATE>", text)
    for version in _engine_versions():
        text = text.replace(version, "<ENGINE_VERSION>")
    return text


def _json(path: Path, out_dir: Path) -> str:
    data = _drop_volatile(json.loads(path.read_text(encoding="utf-8")))
    return _text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True), out_dir) + "\n"


def _jsonl(path: Path, out_dir: Path) -> str:
    rows = [_drop_volatile(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]
    rows.sort(key=lambda r: (str(r.get("id")), json.dumps(r, sort_keys=True)))
    return _text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows), out_dir)


def normalized(out_dir: Path) -> dict[str, str]:
    """{relative path: comparable text} for every file the demo wrote, but the tiny model itself and the charts."""
    out_dir = Path(out_dir).resolve()
    files: dict[str, str] = {}
    jaster = []
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(out_dir).as_posix()
        if rel.startswith("tiny-model/") or path.suffix == ".png" or path.name.startswith("."):
            continue
        if rel.startswith("jaster/"):
            jaster.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {rel}\n")
        elif path.suffix == ".jsonl":
            files[rel] = _jsonl(path, out_dir)
        elif path.suffix == ".json":
            files[rel] = _json(path, out_dir)
        else:
            files[rel] = _text(path.read_text(encoding="utf-8"), out_dir)
    files["jaster.sha256"] = "".join(jaster)
    return files


def saved() -> dict[str, str]:
    return {p.relative_to(GOLDEN).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(GOLDEN.rglob("*")) if p.is_file() and p.name != "README.md"}


def machine() -> str:
    import torch
    return f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()} kernels, {torch.get_num_threads()} threads"


def save(out_dir: Path) -> None:
    SAVED_ON.write_text(machine() + "\n", encoding="utf-8")
    for rel, text in normalized(out_dir).items():
        target = GOLDEN / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    save(Path(sys.argv[1]))
