"""Declarative task files (`tasks/<name>.toml`) -> TaskSpec.

The schema is closed: an unknown key, a missing required key or a value of the wrong type is an error that
names the file and the key. Adding a task is one TOML file (plus a converter when the raw format is new).
"""
from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

from jleval._toml import tomllib
from jleval.errors import TaskSpecError, UnknownTaskError, UsageError
from jleval.resources import tasks_dir

#: The leaderboard's categories, in the column order of the Open Japanese LLM Leaderboard.
CATEGORIES = ("NLI", "QA", "RC", "MC", "EL", "FA", "MR", "MT", "HE", "CG", "SUM")
#: Categories that exist but stay outside AVG.
EXTRA_CATEGORIES = ("STS", "ARENA")
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Source:
    """One raw input: a file, or a directory of files (kind = "dir"), at `path` relative to the raw root.

    `sha256` pins the content: for a file its sha256; for a directory the tree hash of the files matching
    `glob` (see fsutil.tree_sha256). An empty sha256 means upstream publishes no pinned copy: the file is
    used after a warning and its observed hash is recorded. `url` is where it is downloaded from; for a
    directory, `url` is an archive (.tar.gz / .zip) and `archive_root` the folder inside it that maps to
    `path`. `needed_for` lists the output splits that cannot be built without it.
    """

    path: str
    url: str
    sha256: str = ""
    kind: str = "file"
    glob: str = "*"
    archive_root: str = ""
    needed_for: tuple[str, ...] = SPLITS
    note: str = ""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    category: str
    description: str
    instruction: str
    output_length: int
    metrics: tuple[str, ...]
    license: str
    commercial_use: bool
    converter: str
    sources: tuple[Source, ...]
    label_list: tuple[str, ...] = ()
    num_few_shots: int | None = None
    splits: tuple[str, ...] = SPLITS
    star_metric: str | None = None
    language: str = "ja"
    in_all: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    file: Path | None = None
    #: a user's own task (`--tasks-dir`): split -> local JSON Lines file of {"input", "output"} (instead of sources)
    files: tuple[tuple[str, Path], ...] = ()

    @property
    def on_leaderboard(self) -> bool:
        return self.star_metric is not None

    def few_shots(self, requested: int) -> int:
        """Number of shots actually used: the task's override (0-shot tasks) wins over the request."""
        return requested if self.num_few_shots is None else min(requested, self.num_few_shots)


_REQUIRED = {
    "name": str, "category": str, "description": str, "instruction": str, "output_length": int,
    "metrics": list, "license": str, "commercial_use": bool, "converter": str, "sources": list,
}
_OPTIONAL = {
    "label_list": list, "num_few_shots": int, "splits": list, "star_metric": str, "language": str,
    "in_all": bool, "options": dict,
}
#: a user's own task: `[files]` (split -> JSON Lines file) replaces `converter` and `[[sources]]`
_OWN_REQUIRED = ({k: v for k, v in _REQUIRED.items() if k not in ("converter", "sources", "description")}
                 | {"files": dict})
_OWN_OPTIONAL = {**_OPTIONAL, "description": str}
OWN_CONVERTER = "own:jsonl"
_SOURCE_REQUIRED = {"path": str, "url": str}
_SOURCE_OPTIONAL = {"sha256": str, "kind": str, "glob": str, "archive_root": str, "needed_for": list, "note": str}


#: One check of a task or prompt file: (is the file wrong here, the error message, the fix or None).
Check = tuple[bool, str, str | None]


def refuse_first(checks: list[Check]) -> None:
    """Raise TaskSpecError for the first failed check of a schema's list (in the order the checks are listed)."""
    for bad, message, fix in checks:
        if bad:
            raise TaskSpecError(message, fix)


def _check_keys(where: str, data: dict, required: dict, optional: dict) -> None:
    schema = {**required, **optional}
    for key in data:
        if key not in schema:
            allowed = ", ".join(sorted(schema))
            raise TaskSpecError(f"{where}: unknown key {key!r}", f"use only these keys: {allowed}")
    for key in required:
        if key not in data:
            raise TaskSpecError(f"{where}: missing required key {key!r}", "add it; see docs/tasks.md")
    for key, typ in schema.items():
        # TOML values are plain builtins, so the exact type is the check (and a boolean is no integer here)
        if key in data and type(data[key]) is not typ:
            raise TaskSpecError(f"{where}: {key!r} must be a {typ.__name__}, got {type(data[key]).__name__}")


def _check_metrics(path: Path, metrics: list) -> None:
    """Every metric a task lists is one jleval knows (jleval.metrics.METRICS), named by file if not."""
    from jleval.metrics import METRICS, check_metric_names

    if not metrics:
        raise TaskSpecError(f"{path}: 'metrics' lists no metric", f"name at least one of: {', '.join(METRICS)}")
    if not_str := [m for m in metrics if not isinstance(m, str)]:
        raise TaskSpecError(f"{path}: 'metrics' must list metric names (strings), got {not_str[0]!r}")
    if unknown := check_metric_names(metrics):
        raise TaskSpecError(f"{path}: unknown metric {unknown[0]!r}", f"use one of: {', '.join(METRICS)}")


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise TaskSpecError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise TaskSpecError(f"{path}: not UTF-8 text", "save the task file as UTF-8") from None


def _check_identity(path: Path, data: dict[str, Any]) -> None:
    """Name = file name, a known category, a positive output length."""
    known = CATEGORIES + EXTRA_CATEGORIES
    refuse_first([
        (data["name"] != path.stem, f"{path}: name {data['name']!r} differs from the file name {path.stem!r}",
         f"rename the file to {data['name']}.toml, or set name = {path.stem!r}"),
        (data["category"] not in known, f"{path}: unknown category {data['category']!r}",
         f"use one of {', '.join(known)}"),
        (data["output_length"] <= 0, f"{path}: output_length must be positive", None),
    ])


def _splits(path: Path, data: dict[str, Any], own: bool, files: tuple[tuple[str, Path], ...]) -> tuple[str, ...]:
    splits = tuple(data.get("splits", [s for s in SPLITS if s in dict(files)] if own else SPLITS))
    if bad := set(splits) - set(SPLITS):
        raise TaskSpecError(f"{path}: unknown splits {sorted(bad)}")
    if own and (lacking := [s for s in splits if s not in dict(files)]):
        raise TaskSpecError(f"{path}: splits {lacking} have no file in [files]",
                            f"add {lacking[0]} = \"FILE.jsonl\" under [files], or drop it from splits")
    return splits


def parse_task(path: Path) -> TaskSpec:
    path = Path(path)
    data = _load_toml(path)
    own = "files" in data
    _check_keys(str(path), data, *((_OWN_REQUIRED, _OWN_OPTIONAL) if own else (_REQUIRED, _OPTIONAL)))
    _check_identity(path, data)
    files: tuple[tuple[str, Path], ...] = ()
    sources: tuple[Source, ...] = ()
    if own:
        files, converter = _own_files(path, data["files"]), OWN_CONVERTER
    else:
        sources, converter = _sources(path, data["sources"]), data["converter"]
    splits = _splits(path, data, own, files)
    _check_metrics(path, data["metrics"])
    star = data.get("star_metric")
    if star is not None and star not in data["metrics"]:
        raise TaskSpecError(f"{path}: star_metric {star!r} is not one of its metrics")
    return TaskSpec(
        name=data["name"], category=data["category"], description=data.get("description", ""),
        instruction=data["instruction"], output_length=data["output_length"], metrics=tuple(data["metrics"]),
        license=data["license"], commercial_use=data["commercial_use"],
        converter=converter,
        sources=sources, label_list=tuple(data.get("label_list", ())),
        num_few_shots=data.get("num_few_shots"), splits=splits, star_metric=star,
        language=data.get("language", "ja"), in_all=data.get("in_all", True), options=data.get("options", {}),
        file=path, files=files,
    )


def _sources(path: Path, raw: list) -> tuple[Source, ...]:
    sources = []
    for i, src in enumerate(raw):
        where = f"{path}: sources[{i}]"
        if not isinstance(src, dict):
            raise TaskSpecError(f"{where} must be a table")
        _check_keys(where, src, _SOURCE_REQUIRED, _SOURCE_OPTIONAL)
        if src.get("kind", "file") not in ("file", "dir"):
            raise TaskSpecError(f"{where}: kind must be 'file' or 'dir'")
        if bad := set(src.get("needed_for", [])) - set(SPLITS):  # read only once the kind is known good
            raise TaskSpecError(f"{where}: needed_for names unknown splits {sorted(bad)}")
        sources.append(Source(**{**src, "needed_for": tuple(src.get("needed_for", SPLITS))}))
    return tuple(sources)


def _own_files(path: Path, raw: dict) -> tuple[tuple[str, Path], ...]:
    """`[files]` of a user's task: split -> JSON Lines file, relative to the task file's folder."""
    if not raw:
        raise TaskSpecError(f"{path}: [files] is "
                            f"empty", 'name at least test = "test.jsonl" (and train = … for few-shots)')
    out = []
    for split, name in raw.items():
        if split not in SPLITS:
            raise TaskSpecError(f"{path}: [files] names an unknown split {split!r}", "use train, dev and test")
        if not isinstance(name, str) or not name.strip():
            raise TaskSpecError(f"{path}: [files] {split} must be a file name (a "
                                f"string)", f'e.g. {split} = "{split}.jsonl"')
        out.append((split, (path.parent / name).resolve()))
    return tuple(sorted(out, key=lambda kv: SPLITS.index(kv[0])))


def _in_order(specs: Iterable[TaskSpec]) -> dict[str, TaskSpec]:
    """Tasks by name, sorted by category (leaderboard order) then name."""
    order = {c: i for i, c in enumerate(CATEGORIES + EXTRA_CATEGORIES)}
    return {s.name: s for s in sorted(specs, key=lambda s: (order[s.category], s.name))}


@functools.cache
def all_tasks(directory: Path | None = None) -> dict[str, TaskSpec]:
    """Every task file, by name, sorted by category (leaderboard order) then name."""
    directory = Path(directory) if directory else tasks_dir()
    return _in_order(parse_task(p) for p in sorted(directory.glob("*.toml")))


def own_tasks(directory: Path) -> dict[str, TaskSpec]:
    """The user's own task files in `directory` (`--tasks-dir DIR`), by name. Read afresh on every call (the
    user may edit them). A name that is also a built-in task is an error: the two would share data and outputs."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"--tasks-dir {directory} is not a "
                         f"folder", "pass the folder that holds your <task>.toml files")
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise UsageError(f"--tasks-dir {directory} holds no task file (*.toml)",
                         "write one <name>.toml per task there; see docs/own-tasks.md")
    builtin = all_tasks()
    out = {}
    for path in paths:
        spec = parse_task(path)
        if spec.name in builtin:
            raise TaskSpecError(f"{path}: task name {spec.name!r} is already a built-in task",
                                f"rename your task (the file and its name = …), e.g. my_{spec.name}")
        out[spec.name] = spec
    return out


def catalogue(tasks_dir: Path | None = None) -> dict[str, TaskSpec]:
    """The built-in tasks, plus the user's own from `tasks_dir` when given, in leaderboard order."""
    tasks = all_tasks()
    if tasks_dir is None:
        return tasks
    return _in_order([*tasks.values(), *own_tasks(tasks_dir).values()])


def get_task(name: str, tasks_dir: Path | None = None) -> TaskSpec:
    tasks = catalogue(tasks_dir)
    if name not in tasks:
        import difflib

        lower = {t.lower(): t for t in tasks}
        close = ([lower[name.lower()]] if name.lower() in lower else
                 [lower[c] for c in difflib.get_close_matches(name.lower(), lower, n=3)])
        hint = (f"did you mean {', '.join(close)}?" if close else
                "run `jleval tasks` to list them" + ("" if tasks_dir else " (your own tasks: add --tasks-dir DIR)"))
        raise UnknownTaskError(f"unknown task {name!r}", hint)
    return tasks[name]


#: The --tasks presets: which tasks each one names (non-commercial ones only with consent, see resolve_tasks).
_PRESETS = {"all": attrgetter("in_all"), "leaderboard": attrgetter("on_leaderboard")}


def resolve_tasks(selection: str | list[str] | None, include_non_commercial: bool = False,
                  tasks_dir: Path | None = None) -> list[TaskSpec]:
    """Turn a --tasks value into task specs.

    - "all": every task in the default suite whose licence allows commercial use (plus the non-commercial
      ones with include_non_commercial=True);
    - "leaderboard": the tasks behind the leaderboard's ⭐ columns; xlsum_ja (SUM) is non-commercial, so, as with
      "all", it is included only with include_non_commercial=True (`left_out_non_commercial` names what a
      selection left out, for a warning);
    - a comma-separated list (or list) of names: those tasks, non-commercial ones included (naming one is
      consent, as upstream).
    With `tasks_dir`, the user's own tasks there are known too ("all" includes those with in_all, the default).
    """
    if selection is None:
        selection = "all"
    names = selection if isinstance(selection, list) else [s.strip() for s in selection.split(",") if s.strip()]
    if not names:
        raise UnknownTaskError("no task selected", "pass --tasks all, --tasks leaderboard or a list of names")
    tasks = catalogue(tasks_dir)
    out: list[TaskSpec] = []
    for name in names:
        if name in _PRESETS:
            out += [t for t in tasks.values() if _PRESETS[name](t) and (t.commercial_use or include_non_commercial)]
        else:
            out.append(get_task(name, tasks_dir))
    seen: dict[str, TaskSpec] = {}
    for t in out:
        seen.setdefault(t.name, t)  # the first mention of a task keeps its place
    return list(seen.values())


def left_out_non_commercial(selection: str | list[str] | None, include_non_commercial: bool = False,
                            tasks_dir: Path | None = None) -> list[str]:
    """The non-commercial tasks that the presets in `selection` ("all", "leaderboard") left out."""
    if include_non_commercial:
        return []
    names = selection if isinstance(selection, list) else [s.strip() for s in (selection or "all").split(",")]
    out = []
    for t in catalogue(tasks_dir).values():
        if t.commercial_use or t.name in names:
            continue
        if any(_PRESETS[preset](t) for preset in names if preset in _PRESETS):
            out.append(t.name)
    return out
