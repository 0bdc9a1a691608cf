"""`jleval preprocess`: build the llm-jp-eval v1.4.1 layout from raw files.

    <out>/<version>/evaluation/{train,dev,test}/<task>.json
    <out>/<version>/tuning/{train,dev,dev_first100}/<task>.json
    <out>/<version>/manifest.json          (per task: sources + sha256, output sha256, sizes, jleval version)

Files are written atomically, in upstream's JSON dialect (UTF-8, indent 4), so two runs are byte-identical.
"""
from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from jleval import __version__, defaults
from jleval.errors import TaskSpecError, UsageError
from jleval.fsutil import (
    atomic_write_json,
    atomic_write_text,
    check_writable,
    dumps_json,
    exclusive,
    read_json_object,
    sha256_file,
    sha256_text,
)
from jleval.jaster.base import Converter, MissingPart, RawFiles, Sample, Splits, has_fields
from jleval.jaster.own import locate_own
from jleval.jaster.sources import Located, Reporter, locate
from jleval.tasks import TaskSpec

DEFAULT_VERSION = defaults.DATA_VERSION
ALPACA_HEADER = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。"


@dataclass
class TaskResult:
    task: str
    status: str  # "built" | "partial" | "cached" | "missing"
    sizes: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # human-readable lines: file, why, where from
    warnings: list[str] = field(default_factory=list)


@dataclass
class PreprocessReport:
    out_dir: Path
    results: list[TaskResult]
    warnings: list[str] = field(default_factory=list)  # about the output folder as a whole

    @property
    def ok(self) -> bool:
        """True when every requested split was built; missing or partial sets make the CLI exit with 3."""
        return all(r.status in ("built", "cached") for r in self.results)


def load_converter(spec: TaskSpec) -> Converter:
    module, _, func = spec.converter.partition(":")
    try:
        return getattr(importlib.import_module(f"jleval.jaster.{module}"), func)
    except (ImportError, AttributeError):
        raise TaskSpecError(f"{spec.file}: converter {spec.converter!r} does not exist",
                            "name a function as 'module:function' of jleval/jaster/") from None


def eval_record(spec: TaskSpec, samples: list[Sample]) -> dict:
    if not (spec.instruction and spec.output_length and spec.metrics and samples):
        raise TaskSpecError(f"{spec.name}: an evaluation set needs an instruction, output_length, metrics "
                            "and at least one sample")
    return {
        "instruction": spec.instruction,
        "output_length": spec.output_length,
        "metrics": list(spec.metrics),
        "few_shots": [],
        "samples": [s.to_json() for s in samples],
        "label_list": list(spec.label_list),
    }


def tuning_records(spec: TaskSpec, samples: list[Sample]) -> list[dict]:
    out = []
    for i, s in enumerate(samples):
        text = f"{ALPACA_HEADER}\n\n### 指示:\n{spec.instruction}"
        if s.input:
            text += f"\n\n### 入力:\n{s.input}"
        text += f"\n\n### 応答:\n{s.output}"
        out.append({"ID": f"{spec.name}-{i}", "instruction": spec.instruction, "input": s.input,
                    "output": s.output, "text": text})
    return out


def eval_path(out_dir: Path, version: str, split: str, task: str) -> Path:
    return Path(out_dir) / version / "evaluation" / split / f"{task}.json"


def _write_task(spec: TaskSpec, splits: Splits, root: Path) -> dict[str, str]:
    """Render everything in memory first, then write each file atomically. Returns file -> sha256."""
    files: dict[Path, str] = {}
    for split, samples in splits.items():
        files[root / "evaluation" / split / f"{spec.name}.json"] = dumps_json(eval_record(spec, samples))
        if split in ("train", "dev"):
            recs = tuning_records(spec, samples)
            files[root / "tuning" / split / f"{spec.name}.json"] = dumps_json(recs)
            if split == "dev":
                files[root / "tuning" / "dev_first100" / f"{spec.name}.json"] = dumps_json(recs[:100])
    for path, text in files.items():
        atomic_write_text(path, text)
    # a rebuild that could not build some split removes that split's files from an earlier build, so the folder
    # never mixes sets built from different raw files
    for split in set(spec.splits) - set(splits):
        stale = [root / "evaluation" / split / f"{spec.name}.json", root / "tuning" / split / f"{spec.name}.json"]
        if split == "dev":
            stale.append(root / "tuning" / "dev_first100" / f"{spec.name}.json")
        for path in stale:
            path.unlink(missing_ok=True)
    return {p.relative_to(root).as_posix(): sha256_text(t) for p, t in files.items()}


def _read_manifest(path: Path) -> tuple[dict, list[str]]:
    """The output folder's manifest, and a warning when it is unreadable or corrupt: it is jleval's own
    bookkeeping, so its tasks are then built again rather than trusted."""
    if not path.is_file():
        return {}, []
    data = read_json_object(path)
    if data is None:
        return {}, [f"{path} is unreadable (corrupt, or not a JSON object); the sets asked for are rebuilt"]
    return data, []


def _up_to_date(out_dir: Path, version: str, spec: TaskSpec, entry, located: Located | None) -> bool:
    """Every split of the task is built, completely; for an own task, from the same files and task file."""
    done = all(eval_path(out_dir, version, s, spec.name).is_file() for s in spec.splits)
    complete = (has_fields(entry, sizes=dict) and set(entry["sizes"]) == set(spec.splits)
                and not entry.get("missing_sources"))
    if not (done and complete):
        return False
    if located is None:
        return True
    return (not located.missing and entry.get("sources") == located.hashes
            and entry.get("task_file_sha256") == (sha256_file(spec.file) if spec.file else None))


def _missing_line(spec: TaskSpec, src, why: str) -> str:
    """One line per missing file: what, why, where from (when it has a URL), which splits it blocks."""
    return (f"{src.path} ({why})" + (f"; source: {src.url}" if src.url else "")
            + (f"; {src.note}" if src.note else "")
            + (f"; needed for {', '.join(src.needed_for)}" if src.needed_for != spec.splits else ""))


def _check_args(out_dir: Path, raw_dir: Path | None, version: str) -> None:
    if raw_dir is not None and not Path(raw_dir).is_dir():
        raise UsageError(f"--raw-dir {raw_dir} is not a folder", "pass the folder that holds the raw files")
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z._+-]*", version) or ".." in version:
        raise UsageError(f"--version {version!r} is not a dataset version name",
                         "use a plain name such as 1.4.1 (it becomes a folder under --out)")
    check_writable(out_dir)


def _convert(spec: TaskSpec, located: Located, buildable: tuple[str, ...], res: TaskResult) -> Splits:
    """Run the task's converter on the located files; its warnings become the result's missing/warning lines."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = load_converter(spec)(spec, RawFiles(located.files), buildable)
    res.missing += [str(w.message) for w in caught if issubclass(w.category, MissingPart)]
    res.warnings += [str(w.message) for w in caught if not issubclass(w.category, MissingPart)]
    return {s: splits[s] for s in spec.splits if s in splits}


def _manifest_entry(spec: TaskSpec, located: Located, sizes: dict[str, int], hashes: dict[str, str]) -> dict:
    return {
        "jleval_version": __version__, "converter": spec.converter,
        "sources": {k: located.hashes[k] for k in sorted(located.hashes)},
        "missing_sources": sorted(src.path for src, _ in located.missing),
        "sizes": sizes, "outputs": hashes,
        **({"task_file_sha256": sha256_file(spec.file)} if spec.files and spec.file else {}),
    }


@dataclass
class _Job:
    """What one preprocess call shares between its tasks."""

    out_dir: Path
    raw_dir: Path | None
    version: str
    force: bool
    allow_download: bool
    reporter: Reporter | None
    checksums: dict[str, str] | None
    manifest: dict

    @property
    def root(self) -> Path:
        return self.out_dir / self.version


def _build_task(spec: TaskSpec, job: _Job) -> tuple[TaskResult, dict | None]:
    """One task: cached, or located and converted and written. Returns its result and its new manifest entry
    (None when nothing was built)."""
    res = TaskResult(spec.name, "missing")
    if not spec.commercial_use:
        res.warnings.append(f"{spec.name} is licensed {spec.license} (non-commercial): do not use it, or "
                            "models evaluated on it, commercially")
    entry = job.manifest.get(spec.name)
    located = locate_own(spec) if spec.files else None  # own files: cheap to hash, and edits must show
    if not job.force and _up_to_date(job.out_dir, job.version, spec, entry, located):
        res.status, res.sizes = "cached", cast(dict, entry)["sizes"]  # _up_to_date checked it
        return res, None
    located = located or locate(spec, job.raw_dir, job.allow_download, job.reporter, job.checksums)
    return res, _build_located(spec, located, job.root, res)


def _build_located(spec: TaskSpec, located: Located, root: Path, res: TaskResult) -> dict | None:
    """Convert and write every split the located files allow, recording in `res` what was built and what is
    missing. Returns the task's new manifest entry (None when no split could be built)."""
    res.warnings += located.warnings
    blocked = {sp for src, _ in located.missing for sp in src.needed_for}
    buildable = tuple(s for s in spec.splits if s not in blocked)
    res.missing += [_missing_line(spec, src, why) for src, why in located.missing]
    if not buildable:
        return None
    splits = _convert(spec, located, buildable, res)
    hashes = _write_task(spec, splits, root)
    res.sizes = {s: len(v) for s, v in splits.items()}
    res.status = "built" if len(splits) == len(spec.splits) else "partial"
    return _manifest_entry(spec, located, res.sizes, hashes)


def _merge_manifest(path: Path, entries: dict[str, dict]) -> None:
    """Write this call's task entries into the output manifest under a lock, merged with what is on disk
    now: another `jleval preprocess` into the same folder may have added its tasks meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.parent, None, wait=True):  # the version folder itself: no lock file is left in it
        on_disk, _ = _read_manifest(path)
        atomic_write_json(path, dict(sorted({**on_disk, **entries}.items())))


def preprocess(
    tasks: list[TaskSpec],
    out_dir: Path,
    raw_dir: Path | None = None,
    version: str = DEFAULT_VERSION,
    force: bool = False,
    allow_download: bool | None = None,
    reporter: Reporter | None = None,
    checksums: dict[str, str] | None = None,
    on_task: Callable[[int, int, str], None] | None = None,
) -> PreprocessReport:
    """Build the evaluation (and tuning) sets of `tasks`. Missing raw files make a task "missing" (or
    "partial" when some splits can still be built); they never stop the other tasks. Bad data raises."""
    out_dir = Path(out_dir)
    _check_args(out_dir, raw_dir, version)
    manifest_path = out_dir / version / "manifest.json"
    manifest, manifest_warnings = _read_manifest(manifest_path)
    job = _Job(out_dir, raw_dir, version, force, raw_dir is None if allow_download is None else allow_download,
               reporter, checksums, manifest)
    results, entries = [], {}
    for i, spec in enumerate(tasks):
        if on_task:  # progress: (tasks done, tasks in all, the one starting now)
            on_task(i, len(tasks), spec.name)
        res, entry = _build_task(spec, job)
        results.append(res)
        if entry is not None:
            entries[spec.name] = entry
    if entries:
        _merge_manifest(manifest_path, entries)
    if on_task:
        on_task(len(tasks), len(tasks), "")
    return PreprocessReport(job.root, results, manifest_warnings)
