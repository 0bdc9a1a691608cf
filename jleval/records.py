"""Typed records of the JSON files jleval writes, each with a `format` key, and the one way to read them back.

A record is a TypedDict (the file stays plain JSON, written as before) plus a schema: dotted field name ->
expected JSON type(s). `read_record` reads a file as a JSON object and checks every field the schema lists that
is present (`required` fields must be); a wrong type is one error naming the file and the field, never a
traceback deep in a reader. A `*` in a field name matches every key of an object (`tasks.*.n_samples`).

Each file kind adds its record and schema here (the run manifest first; scores, leaderboard and judgments
beside it), so every reader of a file checks it the same way.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict, cast

#: fail(reason) -> the exception to raise; the reason reads after the file's name ("field 'x' must be ...").
FailFn = Callable[[str], Exception]

#: JSON types by name, as a schema lists them ("str", "int", "null", ...). "int" excludes booleans.
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "null": (type(None),),
    "list": (list,), "object": (dict,),
}
_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false", "null": "null",
          "list": "an array", "object": "an object"}


def json_type(value: Any) -> str:
    """How JSON calls a parsed value's type: 'a string', 'an integer', 'null', ..."""
    for name in ("bool", "int", "float", "str", "list", "object", "null"):  # bool before int: True is an int
        if isinstance(value, _JSON_TYPES[name]):
            return _NAMES[name]
    return type(value).__name__


def _matches(value: Any, types: str) -> bool:
    for name in types.split("|"):
        allowed = _JSON_TYPES[name]
        if isinstance(value, bool) and bool not in allowed:
            continue
        if isinstance(value, allowed):
            return True
    return False


def _lookup(data: Any, parts: list[str], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted name, value) that `parts` reaches in `data`; absent paths yield nothing."""
    if not parts:
        yield prefix, data
        return
    head, rest = parts[0], parts[1:]
    if head == "*" and isinstance(data, list):
        for i, item in enumerate(data):
            yield from _lookup(item, rest, f"{prefix}[{i}]")
        return
    if not isinstance(data, dict):
        return
    keys = list(data) if head == "*" else [head] if head in data else []
    for k in keys:
        yield from _lookup(data[k], rest, f"{prefix}.{k}" if prefix else str(k))


def check_fields(data: Mapping[str, Any], schema: Mapping[str, str], fail: FailFn,
                 required: tuple[str, ...] = ()) -> None:
    """Check `data` against `schema` (dotted field -> "str|null"-style types): listed fields that are present
    have one of their types, and every `required` field is present."""
    for name in required:
        if next(_lookup(data, name.split(".")), None) is None:  # nothing at that path
            raise fail(f"has no field {name!r}")
    for name, types in schema.items():
        for where, value in _lookup(data, name.split(".")):
            if not _matches(value, types):
                expected = " or ".join(_NAMES[t] for t in types.split("|"))
                raise fail(f"field {where!r} must be {expected}, found {json_type(value)}")


def load_object(path: Path, fail: FailFn) -> dict[str, Any]:
    """The JSON object in `path`; not UTF-8, not JSON, or another JSON value -> fail(reason)."""
    try:
        data = json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise fail("is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise fail(f"is not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict):
        raise fail(f"must hold a JSON object, found {json_type(data)}")
    return data


def check_format(data: Mapping[str, Any], expected: str, fail: FailFn) -> None:
    """A file without `format` is read as the first version (files written before the key existed); another
    format is refused."""
    fmt = data.get("format", expected)
    if fmt != expected:
        raise fail(f"has format {fmt!r}, not {expected!r} (written by another jleval version?)")


def read_record(path: Path, fmt: str, schema: Mapping[str, str], fail: FailFn,
                required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read `path` as a JSON object of format `fmt`, checked against `schema` (see check_fields)."""
    data = load_object(path, fail)
    check_format(data, fmt, fail)
    check_fields(data, schema, fail, required)
    return data


# ----- the run manifest (runs/<name>/manifest.json, written by `jleval run`) --------------------------------

MANIFEST_FORMAT = "jleval.manifest/1"


class ModelRecord(TypedDict):
    id: str
    revision: str | None


class TaskRecord(TypedDict, total=False):
    category: str
    metrics: list[str]
    star_metric: str | None
    label_list: list[str]
    output_length: int
    num_few_shots: int
    n_samples: int
    data_sha256: str
    max_tokens: int
    task_file_sha256: str | None
    stop: list[str]
    cot_prompt_sha256: str
    few_shots_sha256: str


class Manifest(TypedDict, total=False):
    """manifest.json: every setting that affects a score (docs/file-formats.md)."""

    format: str
    jleval_version: str
    created_at: str
    finished_at: str
    model: ModelRecord
    settings: dict[str, Any]  # the run's identity: resuming needs the same values (run.IDENTITY_KEYS)
    model_fingerprint: str
    split: str
    num_few_shots: int
    max_num_samples: int
    prompt_style: str
    template: str
    tasks: dict[str, TaskRecord]
    skipped_tasks: dict[str, str]
    environment: dict[str, Any]
    sessions: list[dict[str, Any]]
    backend: dict[str, Any]
    counts: dict[str, dict[str, int]]
    model_info: dict[str, Any]  # the model's columns, read from its files (jleval.modelinfo)
    imported: dict[str, Any]  # set by `jleval import`: format, file, sha256, version, the file's scores


MANIFEST_SCHEMA: dict[str, str] = {
    "format": "str", "jleval_version": "str", "created_at": "str", "finished_at": "str",
    "model": "object", "model.id": "str", "model.revision": "str|null",
    "settings": "object", "settings.model": "str", "settings.revision": "str|null", "settings.backend": "str",
    "settings.split": "str", "settings.num_few_shots": "int", "settings.max_num_samples": "int",
    "settings.template": "str", "settings.template_sha256": "str", "settings.prompt_style": "str",
    "settings.chat_template": "bool", "settings.system_prompt": "str|null", "settings.add_special_tokens": "bool",
    "settings.stop_rule": "bool", "settings.data_version": "str", "settings.decoding": "object",
    "settings.backend_options": "object", "settings.model_identity": "object",
    "model_fingerprint": "str", "split": "str", "num_few_shots": "int", "max_num_samples": "int",
    "prompt_style": "str", "template": "str",
    "tasks": "object", "tasks.*": "object", "tasks.*.category": "str|null", "tasks.*.metrics": "list",
    "tasks.*.metrics.*": "str", "tasks.*.star_metric": "str|null", "tasks.*.label_list": "list|null",
    "tasks.*.output_length": "int", "tasks.*.num_few_shots": "int", "tasks.*.n_samples": "int",
    "tasks.*.data_sha256": "str", "tasks.*.max_tokens": "int", "tasks.*.stop": "list", "tasks.*.options": "object",
    "skipped_tasks": "object", "environment": "object", "sessions": "list", "sessions.*": "object",
    "backend": "object", "counts": "object", "model_info": "object", "model_info.params": "int|null",
    "model_info.architecture": "str|null", "imported": "object", "imported.format": "str",
}


def read_manifest(path: Path, fail: FailFn, required: tuple[str, ...] = ()) -> Manifest:
    """A run manifest, checked against MANIFEST_SCHEMA (fields present must have their types; `required` ones
    must be present). Each reader passes its own `fail` (its error class and fix hint)."""
    return cast(Manifest, read_record(path, MANIFEST_FORMAT, MANIFEST_SCHEMA, fail, required))


# ----- scores (runs/<name>/scores.json, written by `jleval score`) ------------------------------------------

SCORES_FORMAT = "jleval.scores/1"


#: scores.json's records (functional TypedDicts: the field lists read as the file does). docs/file-formats.md.
MetricScore = TypedDict("MetricScore", {
    "value": "float | None", "n": int, "ci95": "list[float] | None", "scale": "str | None", "signature": str,
    "reason": str, "note": str}, total=False)
TaskScores = TypedDict("TaskScores", {
    "category": "str | None", "star_metric": "str | None", "n": int, "n_errors": int, "n_empty": int,
    "n_expected": "int | None", "metrics": "dict[str, MetricScore]", "complete": bool,
    "cot_extraction": "dict[str, Any]", "out_of_label": "dict[str, Any]", "outputs_sha256": str,
    "per_sample_sha256": str}, total=False)
Scores = TypedDict("Scores", {
    "format": str, "jleval_version": str, "profile": str, "run": "dict[str, Any]", "bootstrap": "dict[str, Any]",
    "categories": "dict[str, Any]", "categories_extra": "dict[str, Any]", "missing_categories": "dict[str, str]",
    "avg": "dict[str, Any] | None", "avg_upstream": "dict[str, Any] | None", "tasks": "dict[str, TaskScores]",
    "skipped_tasks": "dict[str, str]", "warnings": "list[str]", "seconds": "float | None"}, total=False)


_CI = "list|null"
SCORES_SCHEMA: dict[str, str] = {
    "format": "str", "jleval_version": "str", "profile": "str", "run": "object", "bootstrap": "object",
    "bootstrap.n": "int", "bootstrap.seed": "int",
    "categories": "object", "categories.*": "object", "categories.*.value": "float", "categories.*.ci95": _CI,
    "categories.*.ci95.*": "float", "categories.*.tasks": "list", "categories.*.tasks.*": "str",
    "categories_extra": "object", "categories_extra.*": "object", "categories_extra.*.value": "float",
    "categories_extra.*.tasks": "list",
    "missing_categories": "object", "missing_categories.*": "str",
    "avg": "object|null", "avg.value": "float", "avg.ci95": _CI, "avg.ci95.*": "float", "avg.complete": "bool",
    "avg_upstream": "object|null", "avg_upstream.value": "float", "avg_upstream.ci95": _CI,
    "tasks": "object", "tasks.*": "object", "tasks.*.category": "str|null", "tasks.*.star_metric": "str|null",
    "tasks.*.n": "int", "tasks.*.n_errors": "int", "tasks.*.metrics": "object", "tasks.*.metrics.*": "object",
    "tasks.*.metrics.*.value": "float|null", "tasks.*.metrics.*.ci95": _CI, "tasks.*.metrics.*.ci95.*": "float",
    "tasks.*.metrics.*.scale": "str|null", "tasks.*.metrics.*.signature": "str", "tasks.*.complete": "bool",
    "tasks.*.out_of_label": "object", "tasks.*.out_of_label.rate": "float|null",
    "tasks.*.cot_extraction": "object", "tasks.*.cot_extraction.rate": "float|null",
    "tasks.*.outputs_sha256": "str", "tasks.*.per_sample_sha256": "str",
    "skipped_tasks": "object", "skipped_tasks.*": "str", "warnings": "list", "warnings.*": "str",
}


def read_scores(path: Path, fail: FailFn) -> Scores:
    """A scores.json, checked against SCORES_SCHEMA (`profile` and `tasks` must be present)."""
    return cast(Scores, read_record(path, SCORES_FORMAT, SCORES_SCHEMA, fail, ("profile", "tasks")))


# ----- leaderboard (`jleval table --format json`) ---------------------------------------------------------------

LEADERBOARD_FORMAT = "jleval.leaderboard/1"

Leaderboard = TypedDict("Leaderboard", {
    "format": str, "sort": str, "mixed": "list[str]", "notes": "list[str]", "columns": "list[str]",
    "rows": "list[dict[str, Any]]", "arena": "dict[str, Any] | None",
    # the group of comparable runs ranked, its settings, every group of the runs given, the runs left out and why
    "group": "str | None", "settings": "dict[str, Any]", "groups": "list[str]", "left_out": "list[dict[str, Any]]"},
    total=False)

LEADERBOARD_SCHEMA: dict[str, str] = {
    "format": "str", "sort": "str", "mixed": "list", "mixed.*": "str", "notes": "list", "notes.*": "str",
    "columns": "list", "columns.*": "str", "rows": "list", "rows.*": "object", "rows.*.run": "str",
    "rows.*.rank": "int", "rows.*.AVG": "float|null", "rows.*.profile": "str|null", "arena": "object|null",
    "group": "str|null", "settings": "object", "groups": "list", "groups.*": "str", "left_out": "list",
    "left_out.*": "object", "left_out.*.run": "str", "left_out.*.reason": "str", "left_out.*.group": "str|null",
}


def read_leaderboard(path: Path, fail: FailFn) -> Leaderboard:
    """A leaderboard JSON document, checked against LEADERBOARD_SCHEMA (`columns` and `rows` must be present)."""
    return cast(Leaderboard, read_record(path, LEADERBOARD_FORMAT, LEADERBOARD_SCHEMA, fail, ("columns", "rows")))


# ----- arena ranking (arena.json, written by `jleval arena rank`) ----------------------------------------------

ARENA_FORMAT = "jleval.arena/1"

ArenaRanking = TypedDict("ArenaRanking", {
    "format": str, "models": "list[dict[str, Any]]", "position": "dict[str, Any] | None", "method": str,
    "settings": "dict[str, Any]", "stats": "dict[str, Any]", "warnings": "list[str]",
    "diagnostics": "dict[str, Any]", "scale": "dict[str, float]"}, total=False)

ARENA_SCHEMA: dict[str, str] = {
    "format": "str", "models": "list", "models.*": "object", "models.*.rank": "int", "models.*.model": "str",
    "models.*.rating": "float", "models.*.strength": "float", "models.*.ci68": "list|null",
    "models.*.ci95": "list|null", "models.*.ci95.*": "float", "models.*.matches": "float",
    "models.*.p_stronger_than_next": "float|null", "position": "object|null", "method": "str",
    "settings": "object", "settings.seed": "int", "settings.prior_sd": "float", "stats": "object",
    "warnings": "list", "warnings.*": "str", "diagnostics": "object", "scale": "object",
}


def read_arena(path: Path, fail: FailFn) -> ArenaRanking:
    """An arena.json, checked against ARENA_SCHEMA (`models` must be present)."""
    return cast(ArenaRanking, read_record(path, ARENA_FORMAT, ARENA_SCHEMA, fail, ("models",)))
