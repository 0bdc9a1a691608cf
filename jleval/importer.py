"""Bring other tools' results into a run folder that `jleval score` and `jleval table` accept.

    from jleval.importer import import_results
    result = import_results("llm-jp-eval-results.json", "runs/their-model")

Two inputs:
- an llm-jp-eval results file (`{"scores", "outputs": {task: [{"prompt", "input", "pred", "gold"}]}, "config"}`,
  what its evaluate_llm.py writes; jleval's `export --format llm-jp-eval` writes the same);
- a JSON Lines file of generations, one object per line with `task`, `id` (the sample's index in the split) and
  `generation` (or `pred`), plus `gold` and `input` (looked up in the preprocessed sets when absent); jleval's
  `export --format jsonl` writes such lines.

The run folder gets `outputs/<task>.jsonl` (the file's `pred` as the generation: llm-jp-eval's post-processing has
already run on it, and jleval's v1.4.1 post-processing leaves such text unchanged) and a manifest marked
`imported` (format, file, sha256, the file's own scores), so the table can say where a row came from. Nothing is
written unless the whole file is valid; an existing run folder is never overwritten.
"""
from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from jleval import defaults
from jleval.errors import JlevalError, OutputError, UsageError
from jleval.fsutil import atomic_write_many, dumps_json, sha256_file, sha256_text

RESULTS_KEYS = ("scores", "outputs", "config")
SPLITS = ("train", "dev", "test")
#: A task name becomes a file name (outputs/<task>.jsonl): a plain name, never a path.
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
UPSTREAM_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class ImportFileError(UsageError):
    """A file that is not what `jleval import` reads; the message names the file and what is missing."""


@dataclass
class Imported:
    """What an import produced, before it is written."""

    model: str
    split: str
    num_few_shots: int
    max_num_samples: int
    fmt: str
    rows: dict[str, list[dict[str, Any]]]  # task -> outputs rows
    file_scores: dict[str, Any] | None = None
    version: str | None = None
    precision: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The prompt the outputs were made with, when the file says (a jleval export does): else "imported".
    prompt: dict[str, str] = field(default_factory=dict)  # template, template_sha256, prompt_style


@dataclass
class ImportResult:
    run_dir: Path
    tasks: dict[str, int]  # task -> samples
    notes: list[str]
    file_scores: dict[str, Any] | None = None  # the file's own scores (the manifest's imported.scores)


def _bad(path: Path, what: str) -> ImportFileError:
    return ImportFileError(f"{path} is not an llm-jp-eval results file: {what}",
                           'pass the JSON that llm-jp-eval\'s evaluate_llm.py writes ({"scores", "outputs", '
                           '"config"}), or a JSON Lines file of generations with task, id and generation')


def _task_name_problem(task: Any) -> str | None:
    """Why `task` cannot be a task name (it names a file in the run folder), or None."""
    if isinstance(task, str) and TASK_NAME.fullmatch(task):  # "." and ".." do not match: no leading dot
        return None
    return (f"task name {task!r} is not a plain name (letters, digits, '.', '_', '-', starting with a letter or "
            "digit; no '/' or '..')")


def _unicode_problem(value: Any) -> str | None:
    """Why a string cannot be written as UTF-8 (a lone surrogate such as \\ud800), or None."""
    if not isinstance(value, str):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"holds {value[e.start:e.end]!r}, an unpaired surrogate that is not valid Unicode text"
    return None


def _output_row(task: str, i: int, input_text: str, gold: str, pred: str, prompt_sha: str | None) -> dict[str, Any]:
    return {"id": i, "key": sha256_text(json.dumps(["imported", task, i, input_text, pred], ensure_ascii=False)),
            "input": input_text, "prompt_sha256": prompt_sha, "gold": gold, "generation": pred,
            "finish_reason": None, "prompt_tokens": None, "completion_tokens": None, "latency_s": None,
            "error": None}


# ------------------------------------------------------------------------------------------------ llm-jp-eval


def _check_sample(path: Path, task: str, i: int, s: Any) -> None:
    if not isinstance(s, dict):
        raise _bad(path, f"outputs.{task}[{i}] is not an object")
    missing = [k for k in ("input", "pred", "gold") if not isinstance(s.get(k), str)]
    if missing:
        raise _bad(path, f"outputs.{task}[{i}] has no string {', '.join(repr(k) for k in missing)}")
    for k in ("input", "pred", "gold", "prompt"):
        if problem := _unicode_problem(s.get(k)):
            raise _bad(path, f"outputs.{task}[{i}].{k} {problem}")


def _object(cfg: dict[str, Any], key: str) -> dict[str, Any]:
    """One object of the config; {} where it is absent or not an object."""
    value = cfg.get(key)
    return value if isinstance(value, dict) else {}


def read_llm_jp_eval(path: Path, data: Any) -> Imported:
    if not isinstance(data, dict):
        raise _bad(path, "it holds no JSON object")
    missing = [k for k in RESULTS_KEYS if not isinstance(data.get(k), dict)]
    if missing:
        raise _bad(path, f"missing {', '.join(repr(k) for k in missing)} (an object each)")
    rows = {task: _task_rows(path, task, samples) for task, samples in data["outputs"].items()}
    if not rows:
        raise _bad(path, "'outputs' holds no task")
    cfg = data["config"]
    # jleval: the record a jleval export leaves in the config
    meta, model_cfg, jleval_cfg = _object(cfg, "metainfo"), _object(cfg, "model"), _object(cfg, "jleval")

    def fail(reason: str) -> ImportFileError:
        return _bad(path, reason)

    model = (_text(model_cfg, "pretrained_model_name_or_path", "config.model", fail)
             or _text(meta, "basemodel_name", "config.metainfo", fail) or path.stem)
    version = _text(meta, "version", "config.metainfo", fail)
    return Imported(model=model,
                    split=_split(meta.get("data_type"), "config.metainfo.data_type", fail) or defaults.SPLIT,
                    num_few_shots=_count(meta.get("num_few_shots"), defaults.NUM_FEW_SHOTS, 0,
                                         "config.metainfo.num_few_shots", fail),
                    max_num_samples=_count(meta.get("max_num_samples"), -1, -1, "config.metainfo.max_num_samples",
                                           fail),
                    fmt="llm-jp-eval", rows=rows, file_scores=data["scores"], version=version,
                    precision=UPSTREAM_DTYPES.get(str(cfg.get("torch_dtype"))),
                    extra={"revision": _text(model_cfg, "revision", "config.model", fail),
                           "jleval": jleval_cfg},
                    prompt=_prompt_settings(jleval_cfg, "config.jleval", fail))


def _task_rows(path: Path, task: str, samples: Any) -> list[dict[str, Any]]:
    if problem := _task_name_problem(task):
        raise _bad(path, f"outputs: {problem}")
    if not isinstance(samples, list):
        raise _bad(path, f"outputs.{task} is not a list of samples")
    rows = []
    for i, s in enumerate(samples):
        _check_sample(path, task, i, s)
        prompt = s.get("prompt") if isinstance(s.get("prompt"), str) else ""
        sha = sha256_text(prompt.replace("{input}", s["input"])) if prompt else None
        rows.append(_output_row(task, i, s["input"], s["gold"], s["pred"], sha))
    return rows


def _prompt_settings(jleval_cfg: dict[str, Any], where: str, fail: Callable[[str], Exception]) -> dict[str, str]:
    """The template, its sha256 and the prompt style of a jleval export (its config.jleval, or a JSONL line);
    {} for another tool's file. They put an imported run in the same table group as the runs it came from."""
    settings, at = jleval_cfg.get("settings"), f"{where}.settings"
    if not isinstance(settings, dict):  # a JSONL line carries them at its top level
        settings, at = jleval_cfg, where
    found = {k: _text(settings, k, at, fail) for k in ("template", "template_sha256")}
    found["prompt_style"] = _text(jleval_cfg, "prompt_style", where, fail)
    return {k: v for k, v in found.items() if v is not None}


def _count(value: Any, default: int, low: int, where: str, fail: Callable[[str], Exception]) -> int:
    """An integer setting from `low` up; absent (None) -> `default`; anything else -> fail naming `where`."""
    if value is None:
        return default
    if not _is_int_from(value, low):
        raise fail(f"{where} must be an integer from {low}, found {value!r}")
    return value


def _is_int_from(value: Any, low: int) -> TypeGuard[int]:
    """An integer (true/false are not) that is at least `low`."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _split(value: Any, where: str, fail: Callable[[str], Exception]) -> str | None:
    if value is None or value == "":
        return None
    if value not in SPLITS:
        raise fail(f"{where} must be one of {', '.join(SPLITS)}, found {value!r}")
    return str(value)


def _text(obj: dict[str, Any], key: str, where: str, fail: Callable[[str], Exception]) -> str | None:
    """A string field (a number such as a version is taken as its text); a list or object -> fail."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    label = f"{where}.{key}" if where else repr(key)  # where: the object's path in the file ("" on a JSONL line)
    if not isinstance(value, str):
        raise fail(f"{label} must be a string, found {value!r}")
    if problem := _unicode_problem(value):
        raise fail(f"{label} {problem}")
    return value


# ------------------------------------------------------------------------------------------------ JSON Lines


def read_generations(path: Path, data_dir: Path | None, split: str, version: str) -> Imported:
    from jleval import jsonl

    def fail(line: int, reason: str) -> ImportFileError:
        return ImportFileError(f"{path}:{line}: {reason}", "each line: {\"task\", \"id\", \"generation\"} "
                               "(plus \"gold\" and \"input\", or preprocessed sets to look them up)")

    lines = jsonl.read_objects(path, fail, key="task").records
    if not lines:
        raise ImportFileError(f"{path} holds no generations", "pass a JSON Lines file with one object per sample")
    runs = {json.dumps(rec.get("run"), sort_keys=True) for _, rec in lines}
    if len(runs) > 1:
        raise ImportFileError(f"{path} holds the samples of {len(runs)} runs ({', '.join(sorted(runs))})",
                              "import one run per file (jleval export --format jsonl writes one file per run)")
    first = lines[0][1]  # jleval's export repeats the run's settings on every row

    def fail_first(reason: str) -> ImportFileError:
        return fail(lines[0][0], reason)

    split = _split(first.get("split"), "'split'", fail_first) or split
    sets: dict[str, list[dict[str, Any]] | None] = {}
    rows: dict[str, dict[int, dict[str, Any]]] = {}
    seen: dict[tuple[str, int], int] = {}
    for n, rec in lines:
        row = _generation_row(rec, functools.partial(fail, n), sets, data_dir, split, version)
        if (rec["task"], row["id"]) in seen:
            raise fail(n, f"sample {rec['task']} {row['id']} again (first on line {seen[rec['task'], row['id']]}): "
                          "each (task, id) must appear once")
        seen[rec["task"], row["id"]] = n
        rows.setdefault(rec["task"], {})[row["id"]] = row
    return Imported(model=_text(first, "model", "", fail_first) or path.stem, split=split,
                    num_few_shots=_count(first.get("num_few_shots"), 4, 0, "'num_few_shots'", fail_first),
                    max_num_samples=_count(first.get("max_num_samples"), -1, -1, "'max_num_samples'", fail_first),
                    fmt="jsonl", rows={t: [r[i] for i in sorted(r)] for t, r in rows.items()},
                    prompt=_prompt_settings(first, "", fail_first))


def _generation_row(rec: dict[str, Any], fail: Callable[[str], Exception], sets: dict[str, Any],
                    data_dir: Path | None, split: str, version: str) -> dict[str, Any]:
    task, sid = rec["task"], rec.get("id")
    if problem := _task_name_problem(task):
        raise fail(f"'task': {problem}")
    if not _is_int_from(sid, 0):
        raise fail(f"'id' must be the sample's index (an integer from 0), found {sid!r}")
    gen = rec.get("generation") if isinstance(rec.get("generation"), str) else rec.get("pred")
    if not isinstance(gen, str):
        raise fail("no string 'generation' (or 'pred')")
    gold, input_text = rec.get("gold"), rec.get("input")
    if not isinstance(gold, str) or not isinstance(input_text, str):
        sample = _eval_sample(sets, task, sid, data_dir, split, version)
        if sample is None:
            raise fail(f"no 'gold'/'input', and the {split} set of {task} with sample {sid} is not in the "
                       "preprocessed sets (pass --data-dir, --split, or add gold and input to each line)")
        gold = gold if isinstance(gold, str) else sample["output"]
        input_text = input_text if isinstance(input_text, str) else sample["input"]
    for name, value in (("generation", gen), ("gold", gold), ("input", input_text)):
        if problem := _unicode_problem(value):
            raise fail(f"{name!r} {problem}")
    return _output_row(task, sid, input_text, gold, gen, None)


def _eval_sample(cache: dict[str, list[dict[str, Any]] | None], task: str, sid: int, data_dir: Path | None,
                 split: str, version: str) -> dict[str, Any] | None:
    if task not in cache:
        from jleval.resources import default_data_dir

        p = Path(data_dir or default_data_dir()) / version / "evaluation" / split / f"{task}.json"
        try:
            cache[task] = json.loads(p.read_text(encoding="utf-8"))["samples"] if p.is_file() else None
        except (ValueError, KeyError, TypeError):
            cache[task] = None
    samples = cache[task]
    return samples[sid] if samples is not None and sid < len(samples) else None


# ------------------------------------------------------------------------------------------------ the run folder


def _task_entry(task: str, n: int, file_scores: dict[str, Any] | None, notes: list[str]) -> dict[str, Any]:
    from jleval.tasks import get_task

    try:
        spec = get_task(task)
    except JlevalError:
        metrics = sorted(k[len(task) + 1:] for k in (file_scores or {}) if k.startswith(f"{task}_"))
        notes.append(f"{task}: no jleval task file; scored with the metrics the file lists "
                     f"({', '.join(metrics) or 'none'}), outside every category")
        return {"category": None, "metrics": metrics, "star_metric": None, "label_list": [], "n_samples": n}
    return {"category": spec.category, "metrics": list(spec.metrics), "star_metric": spec.star_metric,
            "label_list": list(spec.label_list), "output_length": spec.output_length, "n_samples": n}


def _manifest(imp: Imported, path: Path, tasks: dict[str, Any]) -> dict[str, Any]:
    import datetime as dt

    import jleval
    from jleval.modelinfo import model_info
    from jleval.records import MANIFEST_FORMAT

    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    revision = imp.extra.get("revision")
    recorded = imp.extra.get("jleval", {}).get("model_info")  # {} for a JSON Lines file
    if isinstance(recorded, dict):
        info = recorded
    else:
        info = model_info(imp.model, revision, imp.precision)
        info["notes"] = [*info.get("notes", []), "imported: read from the model's files on this machine, if any"]
    template, style = imp.prompt.get("template", "imported"), imp.prompt.get("prompt_style", "basic")
    settings = {"model": imp.model, "revision": revision, "backend": "imported", "split": imp.split,
                "num_few_shots": imp.num_few_shots, "max_num_samples": imp.max_num_samples, "template": template,
                "prompt_style": style, "data_version": defaults.DATA_VERSION,
                **({"template_sha256": imp.prompt["template_sha256"]} if "template_sha256" in imp.prompt else {})}
    return {
        "format": MANIFEST_FORMAT, "jleval_version": jleval.__version__, "created_at": now, "finished_at": now,
        "model": {"id": imp.model, "revision": revision}, "settings": settings, "model_fingerprint": "imported",
        "split": imp.split, "num_few_shots": imp.num_few_shots, "max_num_samples": imp.max_num_samples,
        "prompt_style": style, "template": template, "tasks": tasks, "skipped_tasks": {}, "environment": {},
        "sessions": [], "backend": {"backend": "imported", "engine": imp.fmt, "engine_version": imp.version},
        "model_info": info,
        "imported": {"format": imp.fmt, "file": str(path.resolve()), "sha256": sha256_file(path),
                     "version": imp.version, "scores": imp.file_scores},
    }


def read_import_file(path: Path, data_dir: Path | None = None, split: str = defaults.SPLIT,
                     version: str = defaults.DATA_VERSION) -> Imported:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} does not exist", "pass an llm-jp-eval results file or a JSON Lines file")
    if path.suffix.lower() == ".jsonl":
        return read_generations(path, data_dir, split, version)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"not valid JSON ({getattr(e, 'msg', 'not UTF-8')})") from None
    return read_llm_jp_eval(path, data)


def import_results(path: Path, out: Path, data_dir: Path | None = None, split: str = defaults.SPLIT,
                   version: str = defaults.DATA_VERSION) -> ImportResult:
    """Turn `path` into the run folder `out` (which must not exist or be empty). All or nothing."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} already exists", "import into a new folder: --out runs/<new-name>")
    imp = read_import_file(Path(path), data_dir, split, version)
    notes: list[str] = []
    tasks = {t: _task_entry(t, len(r), imp.file_scores, notes) for t, r in sorted(imp.rows.items())}
    notes += _uncompared_scores(imp.file_scores)
    manifest = _manifest(imp, Path(path), tasks)
    _check_manifest(Path(path), manifest)
    try:
        files: dict[Path, bytes] = {
            out / "outputs" / f"{t}.jsonl": "".join(dumps_json(r, None) + "\n" for r in rows).encode("utf-8")
            for t, rows in imp.rows.items()}
        files[out / "manifest.json"] = (dumps_json(manifest) + "\n").encode("utf-8")
    except (UnicodeEncodeError, ValueError) as e:  # a lone surrogate or NaN somewhere the checks above do not look
        raise _bad(Path(path), f"it holds a value that cannot be written as JSON text ({e})") from None
    try:
        atomic_write_many(files)
    except OSError as e:
        raise OutputError(f"cannot write {e.filename or out}: {e.strerror or e}", "pass another --out") from None
    return ImportResult(out, {t: len(r) for t, r in imp.rows.items()}, notes, imp.file_scores)


def _check_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Refuse, before anything is written, a manifest that jleval's own readers would refuse (e.g. a recorded
    config.jleval.model_info with a non-integer params)."""
    from jleval.records import MANIFEST_SCHEMA, check_fields

    check_fields(manifest, MANIFEST_SCHEMA, lambda reason: _bad(path, f"the run's manifest would have {reason} "
                                                                     "(from the file's config)"))


def _uncompared_scores(file_scores: dict[str, Any] | None) -> list[str]:
    """Notes for the file's scores that are not numbers: they are kept but never compared with jleval's."""
    scores = file_scores or {}
    bad = [k for k, v in scores.items() if _number(v) is None]
    if not bad:
        return []
    shown = ", ".join(f"{k}={scores[k]!r}" for k in sorted(bad)[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return [f"the file's scores {shown}{more} are not numbers: not compared with jleval's"]


def _number(value: Any) -> float | None:
    """A finite number (true/false are not), else None."""
    if isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def score_differences(scores: dict[str, Any], file_scores: dict[str, Any] | None) -> list[str]:
    """The file's `<task>_<metric>` scores that jleval's re-scoring does not reproduce (to the file's 4 decimals)."""
    diffs = []
    for task, entry in scores.get("tasks", {}).items():
        for metric, m in entry.get("metrics", {}).items():  # jleval's own scores: metrics is an object
            theirs = (file_scores or {}).get(f"{task}_{metric}")
            theirs_f = _number(theirs)
            ours = m.get("value")
            if theirs_f is None or ours is None:
                continue
            if abs(round(ours, 4) - theirs_f) > 1e-4 + 1e-9:
                diffs.append(f"{task}_{metric}: file {theirs}, jleval {ours:.4f}")
    return diffs
