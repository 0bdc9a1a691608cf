"""Score a run folder: `outputs/<task>.jsonl` + `manifest.json` -> `scores.json` + `scores/<task>.jsonl`.

    from jleval.scoring import score_run
    scores = score_run("runs/my-model", profile="llm-jp-eval-1.4.1", n_bootstrap=1000, seed=0)

What it computes, per task: every metric the task lists (value on upstream's scale, n, a 95% bootstrap CI and
the metric's signature), the out-of-label rate when the task has a label list, and counts of error, empty and
missing samples. Per leaderboard category (jleval.tasks.CATEGORIES): the mean of its tasks' ⭐ metrics. AVG: the
mean of the categories present, with the categories that are missing listed by name and reason, plus the
upstream-style AVG (missing categories counted as 0, as llm-jp-eval v1.4.1 does) labelled as such.

Confidence intervals are percentile bootstrap intervals over samples, seeded and reproducible: replicate b
draws, for every task, n sample indices with replacement from a generator seeded with (seed, task name), so
the same task is resampled identically in every run with the same seed and sample count (paired comparisons
between runs) and the AVG's interval is computed from the same replicate across all tasks (paired across
tasks). Metrics that are not a mean of per-sample values (pearson, spearman) are recomputed on each replicate.

Bad input never ends in a traceback: a run folder without outputs, an unreadable manifest or a corrupt line in
the middle of an outputs file raise ScoreError naming the file; a truncated last line (a crash mid-write) is
skipped with a warning; samples whose `error` is set are excluded and counted; a metric that cannot be
computed (missing optional dependency, too few samples) is reported as not computed with its reason.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jleval import defaults, jsonl, records
from jleval.errors import JlevalError, OutputError, ScoreError
from jleval.fsutil import atomic_write_json, dumps_json, exclusive, sha256_file, sha256_text
from jleval.metrics import MetricResult, Signature, get_metric, metric_info, not_computed
from jleval.metrics import postprocess as pp
from jleval.stats import CI_LEVEL, bootstrap_indices, mean_of_replicates
from jleval.stats import percentile_ci as _ci

log = logging.getLogger("jleval.scoring")

SCORES_FORMAT = records.SCORES_FORMAT


@dataclass
class TaskInfo:
    name: str
    category: str | None
    star_metric: str | None
    metrics: tuple[str, ...]
    label_list: tuple[str, ...]
    pattern: str | None
    expected_n: int | None


@dataclass
class Sample:
    id: int
    key: str | None
    input: str
    gold: str
    generation: str
    error: str | None


# ----------------------------------------------------------------------------------------------- reading


def _read_manifest(run_dir: Path, warnings: list[str]) -> dict[str, Any]:
    path = run_dir / "manifest.json"
    if not path.is_file():
        warnings.append(f"{path} is missing: task settings are read from the task files (tasks/*.toml)")
        return {}
    def fail(reason: str) -> ScoreError:
        return ScoreError(f"{path} {reason}",
                          "restore it from the run, or delete it to score from the task files alone")

    return dict(records.read_manifest(path, fail))


#: When a manifest entry's value wins over the task file's: "present" (even null), "set" (not null), "truthy".
_WINS = {"present": lambda e, k: k in e, "set": lambda e, k: e.get(k) is not None,
         "truthy": lambda e, k: bool(e.get(k))}


def _from(entry: dict[str, Any], spec: Any, key: str, wins: str = "present", default: Any = None) -> Any:
    """A task setting: the manifest entry's value when it wins (see _WINS), else the task file's, else `default`."""
    if _WINS[wins](entry, key):
        return entry[key]
    return getattr(spec, key) if spec is not None else default


def _answer_pattern(name: str, options: dict[str, Any], warnings: list[str]) -> str | None:
    try:
        return pp.answer_pattern(options)
    except JlevalError as e:
        warnings.append(f"task {name!r}: {e.message}; using the default answer extraction")
        return None


def _task_info(name: str, entry: dict[str, Any] | None, warnings: list[str],
               tasks_dir: Path | None = None) -> TaskInfo | str:
    """Task settings from the manifest entry, completed from tasks/<name>.toml; a string = why it can't be."""
    from jleval.tasks import get_task

    entry = entry or {}
    spec = None
    try:
        spec = get_task(name, tasks_dir)
    except JlevalError as e:
        if not entry.get("metrics"):
            return f"not in the manifest and no task file: {e.message}"
    if entry == {}:  # spec is not None here: a task in neither was refused above
        warnings.append(f"task {name!r} has outputs but is not in the manifest: using tasks/{name}.toml")
    metrics = tuple(_from(entry, spec, "metrics", "truthy", ()))
    if not metrics:
        return "no metrics listed in the manifest or the task file"
    star = _from(entry, spec, "star_metric")
    if star is not None and star not in metrics:
        warnings.append(f"task {name!r}: its ⭐ metric {star!r} is not among the metrics scored "
                        f"({', '.join(metrics)}); the task is left out of its category")
        star = None
    return TaskInfo(name=name, category=_from(entry, spec, "category"), star_metric=star, metrics=metrics,
                    label_list=tuple(_from(entry, spec, "label_list", "set", ())),
                    pattern=_answer_pattern(name, _from(entry, spec, "options", "truthy", {}), warnings),
                    expected_n=entry.get("n_samples"))


def read_outputs(path: Path, warnings: list[str]) -> list[Sample]:
    """Samples of one outputs file, by id. A truncated last line (jleval.jsonl's rule: no newline, a crash
    mid-write) is skipped with a warning; a corrupt line elsewhere raises ScoreError; a repeated id keeps its
    last line (a resumed run re-did it)."""
    def fail(n: int, reason: str) -> ScoreError:
        return ScoreError(f"{path}:{n}: corrupt line ({reason})",
                          "remove or repair that line (re-running `jleval run` redoes missing samples)")

    data = path.read_bytes()
    lines = jsonl.parse(data, fail)
    if lines.tail.strip():
        last = data.count(b"\n") + 1
        warnings.append(f"{path}:{last}: last line is truncated (a crash mid-write?); "
                        "skipped, the other samples are scored")
    by_id: dict[int, Sample] = {}
    for n, rec in lines.records:
        sample = _sample(path, n, rec)
        if sample.id in by_id and not by_id[sample.id].error:  # an errored line followed by its retry is normal
            warnings.append(f"{path}: sample id {sample.id} appears more than once; the last line is used")
        by_id[sample.id] = sample
    return [by_id[k] for k in sorted(by_id)]


def _sample(path: Path, n: int, rec: Any) -> Sample:
    if not isinstance(rec, dict):
        raise ScoreError(f"{path}:{n}: corrupt line (not a JSON object)",
                         "remove or repair that line (re-running `jleval run` redoes missing samples)")
    err = rec.get("error")
    for key in ("id", "gold"):
        if key not in rec:
            raise ScoreError(f"{path}:{n}: missing field {key!r}", "see docs/file-formats.md for the layout")
    gen = rec.get("generation")
    if gen is None and not err:
        raise ScoreError(f"{path}:{n}: missing field 'generation'", "see docs/file-formats.md for the layout")
    sid = rec["id"]
    if type(sid) is not int:  # JSON values are plain builtins (and a boolean is no sample index)
        raise ScoreError(f"{path}:{n}: 'id' must be an integer sample index, got {sid!r}")
    if not isinstance(rec["gold"], str) or not isinstance(gen, str | None):
        raise ScoreError(f"{path}:{n}: 'gold' and 'generation' must be strings "
                         f"(got {type(rec['gold']).__name__} and {type(gen).__name__})",
                         "see docs/file-formats.md for the layout")
    return Sample(id=sid, key=rec.get("key"), input=str(rec.get("input") or ""),
                  gold=rec["gold"], generation=gen or "", error=str(err) if err else None)


# ----------------------------------------------------------------------------------------------- helpers


def _scale(metric: str) -> str | None:
    info = metric_info(metric)
    return info.scale if info else None


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _bare_signature(metric: str, profile: str) -> Signature:
    """The signature of a metric that could not run: its name and the post-processing."""
    return Signature.of(("metric", metric), pp.signature_of(profile))


def _compute_metric(metric: str, preds: list[str], golds: list[str], inputs: list[str],
                    profile: str) -> MetricResult:
    try:
        fn = get_metric(metric)
    except (JlevalError, ImportError) as e:
        msg = e.message if isinstance(e, JlevalError) else str(e)
        return not_computed(_bare_signature(metric, profile), f"metric unavailable: {msg}")
    try:
        return fn(preds, golds, inputs=inputs, profile=profile)
    except JlevalError as e:
        return not_computed(_bare_signature(metric, profile), e.message)
    except Exception as e:  # a metric bug must not lose the other tasks' scores
        log.debug("metric %s failed", metric, exc_info=True)
        return not_computed(_bare_signature(metric, profile),
                            f"failed: {type(e).__name__}: {e} (set JLEVAL_DEBUG=1 for details)")


# ----------------------------------------------------------------------------------------------- scoring


def _post_signature(sig: Signature | str, info: TaskInfo, profile: str, prompt_style: str) -> str:
    """A metric's signature with the post-processing this task really got: the task's own extraction pattern
    (jleval profile) and, for chain-of-thought runs, the answer extraction that runs before it."""
    post = pp.post_value(profile, info.pattern)
    if prompt_style == "cot":
        from jleval.cot import EXTRACTION_VERSION

        post = f"cot-extract-{EXTRACTION_VERSION}+{post}"
    return str(Signature.of(sig).update(post=post))


@dataclass
class _Prepared:
    """A task's samples ready for the metrics: post-processed predictions and golds of the samples without a
    generation error, and (chain-of-thought runs) whether each final answer could be extracted."""
    good: list[Sample]
    errors: list[Sample]
    preds: list[str]
    golds: list[str]
    extracted: list[bool] | None


def _prepare(info: TaskInfo, samples: list[Sample], profile: str, prompt_style: str) -> _Prepared:
    good: list[Sample] = []
    errors: list[Sample] = []
    for s in samples:
        (errors if s.error else good).append(s)
    extracted: list[bool] | None = None
    texts = [s.generation for s in good]
    if prompt_style == "cot":
        from jleval import cot

        answers = [cot.extract_answer(t, info) for t in texts]
        extracted = [a is not None for a in answers]
        texts = [a if a is not None else "" for a in answers]
    preds = [pp.postprocess(t, profile, info.pattern) for t in texts]
    golds = [pp.normalize_gold(s.gold, profile) for s in good]
    return _Prepared(good, errors, preds, golds, extracted)


def _replicates(res: MetricResult, idx: np.ndarray | None) -> np.ndarray | None:
    """The metric's value on each bootstrap replicate (None without replicates or without a value)."""
    if res.score is None or idx is None:
        return None
    if res.per_sample is not None:
        return np.asarray(res.per_sample)[idx].mean(axis=1)
    if res.resample is not None:
        return np.asarray(res.resample(idx), dtype=float)
    return None


def _metric_entry(metric: str, res: MetricResult, reps: np.ndarray | None, n: int, info: TaskInfo,
                  profile: str, prompt_style: str, warnings: list[str]) -> dict[str, Any]:
    m: dict[str, Any] = {"value": _finite(res.score), "n": n, "ci95": _ci(reps), "scale": _scale(metric),
                         "signature": _post_signature(res.signature, info, profile, prompt_style)}
    if res.score is None:
        m["reason"] = res.reason
        warnings.append(f"{info.name}: {metric} not computed: {res.reason}")
    elif res.note:
        m["note"] = res.note
        warnings.append(f"{info.name}: {res.note}")
    return m


def _extras(entry: dict[str, Any], info: TaskInfo, prep: _Prepared, warnings: list[str]) -> list[bool] | None:
    """Add cot_extraction and out_of_label to a task entry; returns the per-sample out-of-label flags."""
    n = len(prep.good)
    if prep.extracted is not None:
        failed = prep.extracted.count(False)
        entry["cot_extraction"] = {"failed": failed, "rate": (failed / n) if n else None, "n": n}
        if failed:
            warnings.append(f"{info.name}: no final answer could be extracted from {failed} of {n} chain-of-thought "
                            "outputs (scored as empty answers; see cot_extraction)")
    if not info.label_list:
        return None
    from jleval.metrics.text import out_of_label

    ool = out_of_label(prep.preds, info.label_list)
    entry["out_of_label"] = {"rate": (sum(ool) / n) if n else None, "count": sum(ool), "n": n,
                             "labels": list(info.label_list)}
    return ool


def _records(prep: _Prepared, columns: dict[str, tuple[float, ...] | None], ool: list[bool] | None,
             profile: str) -> list[dict[str, Any]]:
    """The per-sample lines of scores/<task>.jsonl, by id; each names the profile that produced it."""
    records = []
    for i, s in enumerate(prep.good):
        rec: dict[str, Any] = {"id": s.id, "key": s.key, "pred": prep.preds[i], "gold": prep.golds[i],
                               "scores": {k: (v[i] if v is not None else None) for k, v in columns.items()}}
        if ool is not None:
            rec["out_of_label"] = ool[i]
        if prep.extracted is not None:
            rec["extracted"] = prep.extracted[i]
        rec["profile"] = profile
        records.append(rec)
    records.extend({"id": s.id, "key": s.key, "error": s.error, "profile": profile} for s in prep.errors)
    records.sort(key=lambda r: r["id"])
    return records


def score_task(info: TaskInfo, samples: list[Sample], profile: str, n_bootstrap: int, seed: int,
               warnings: list[str], prompt_style: str = "basic"
               ) -> tuple[dict[str, Any], np.ndarray | None, list[dict[str, Any]]]:
    """One task: (its scores.json entry, the ⭐ metric's bootstrap replicates, the per-sample records).

    For chain-of-thought runs the final answer is extracted first (jleval.cot.extract_answer); a sample whose
    answer cannot be extracted is counted in `cot_extraction` and scored as an empty answer."""
    prep = _prepare(info, samples, profile, prompt_style)
    if prep.errors:
        warnings.append(f"{info.name}: {len(prep.errors)} sample(s) with a generation error excluded from scoring")
    n = len(prep.good)
    idx = bootstrap_indices(seed, info.name, n, n_bootstrap)
    entry: dict[str, Any] = {
        "category": info.category, "star_metric": info.star_metric, "n": n, "n_errors": len(prep.errors),
        "n_empty": prep.preds.count(""), "n_expected": info.expected_n, "metrics": {},
    }
    entry["complete"] = info.expected_n is None or len(samples) >= info.expected_n
    if not entry["complete"]:
        warnings.append(f"{info.name}: {len(samples)} of {info.expected_n} samples have outputs (partial run); "
                        "scored on those")
    columns: dict[str, tuple[float, ...] | None] = {}
    star_reps = None
    inputs = [s.input for s in prep.good]
    for metric in info.metrics:
        res = (_compute_metric(metric, prep.preds, prep.golds, inputs, profile) if n else
               not_computed(_bare_signature(metric, profile), "no samples without errors to score"))
        reps = _replicates(res, idx)
        entry["metrics"][metric] = _metric_entry(metric, res, reps, n, info, profile, prompt_style, warnings)
        columns[metric] = res.per_sample
        if metric == info.star_metric:
            star_reps = reps  # None when it has no value
    ool = _extras(entry, info, prep, warnings)
    return entry, star_reps, _records(prep, columns, ool, profile)


# ----------------------------------------------------------------------------------------------- aggregation


def _star_value(t: dict[str, Any]) -> float | None:
    return t["metrics"][t["star_metric"]]["value"]


def _why_missing(cat_tasks: list[str], unstarred: list[str], tasks: dict[str, dict[str, Any]]) -> str:
    """Why a leaderboard category has no score."""
    if cat_tasks:
        return "; ".join(f"{nm}: {tasks[nm]['star_metric']} not computed "
                         f"({tasks[nm]['metrics'][tasks[nm]['star_metric']].get('reason')})" for nm in cat_tasks)
    if unstarred:
        return f"no ⭐ metric among the scored metrics of {', '.join(unstarred)}"
    return "no task of this category in the run"


def _category(cat: str, names: list[str], scored: list[str], absent: list[str], tasks: dict[str, dict[str, Any]],
              star_reps: dict[str, np.ndarray | None], warnings: list[str]) -> tuple[dict[str, Any], Any]:
    """A category's entry (mean of its tasks' ⭐ values, CI from the same replicate) and its replicates."""
    for nm in scored:
        if tasks[nm]["metrics"][tasks[nm]["star_metric"]]["scale"] == "0-100":
            warnings.append(f"{nm}: its ⭐ metric {tasks[nm]['star_metric']} is on a 0–100 scale and is "
                            f"averaged into {cat} with 0–1 scores")
    reps = mean_of_replicates([star_reps.get(nm) for nm in scored])
    entry = {"value": float(np.mean([_star_value(tasks[nm]) for nm in scored])), "ci95": _ci(reps),
             "tasks": scored, "not_scored": [nm for nm in names if nm not in scored] + absent}
    return entry, reps


def _by_category(tasks: dict[str, dict[str, Any]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(category -> tasks with a ⭐ metric, category -> tasks without one)."""
    by_cat: dict[str, list[str]] = {}
    unstarred: dict[str, list[str]] = {}
    for name, t in tasks.items():
        if t.get("category"):
            (by_cat if t.get("star_metric") else unstarred).setdefault(t["category"], []).append(name)
    return by_cat, unstarred


def _averages(categories: dict[str, Any], cat_reps: dict[str, Any], missing: dict[str, str]
              ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """AVG over the categories present, and the upstream-style AVG (missing categories counted as 0). Every
    leaderboard category is either present or missing (see _aggregate), so there is always an upstream AVG."""
    from jleval.tasks import CATEGORIES

    avg = None
    reps_list = [cat_reps[c] for c in categories]
    if categories:
        avg = {"value": float(np.mean([c["value"] for c in categories.values()])),
               "ci95": _ci(mean_of_replicates(reps_list)),
               "categories": list(categories), "n_categories": len(categories), "complete": not missing}
    total = sum(c["value"] for c in categories.values())
    up_reps = (np.sum(reps_list, axis=0) / len(CATEGORIES)
               if reps_list and all(r is not None for r in reps_list) else None)
    upstream = {"value": total / len(CATEGORIES), "ci95": _ci(up_reps),
                "note": f"llm-jp-eval v1.4.1 style: the mean over all {len(CATEGORIES)} categories with "
                        f"the {len(missing)} missing ones counted as 0"}
    return avg, upstream


def _aggregate(tasks: dict[str, dict[str, Any]], star_reps: dict[str, np.ndarray | None],
               expected: dict[str, list[str]], warnings: list[str]) -> dict[str, Any]:
    from jleval.tasks import CATEGORIES

    categories: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    missing: dict[str, str] = {}
    cat_reps: dict[str, np.ndarray | None] = {}
    by_cat, unstarred = _by_category(tasks)
    for cat in [*CATEGORIES, *sorted(set(by_cat) - set(CATEGORIES))]:  # leaderboard order, then the others
        names = by_cat.get(cat, [])
        scored = [nm for nm in names if _star_value(tasks[nm]) is not None]
        if not scored:
            if cat in CATEGORIES:
                missing[cat] = _why_missing(names, unstarred.get(cat, []), tasks)
            continue
        absent = [nm for nm in expected.get(cat, []) if nm not in names]
        entry, reps = _category(cat, names, scored, absent, tasks, star_reps, warnings)
        if cat in CATEGORIES:
            categories[cat], cat_reps[cat] = entry, reps
        else:
            extra[cat] = entry
    avg, upstream = _averages(categories, cat_reps, missing)
    if missing:
        warnings.append(f"categories missing from AVG: {', '.join(missing)} (AVG is over the "
                        f"{len(categories)} present; avg_upstream counts them as 0)")
    return {"categories": categories, "categories_extra": extra, "missing_categories": missing,
            "avg": avg, "avg_upstream": upstream}


def _expected_by_category() -> dict[str, list[str]]:
    """The leaderboard tasks of each category according to tasks/ (for naming what a partial run lacks)."""
    from jleval.tasks import all_tasks

    out: dict[str, list[str]] = {}
    try:
        for t in all_tasks().values():
            if t.on_leaderboard:
                out.setdefault(t.category, []).append(t.name)
    except JlevalError:
        pass
    return out


# ----------------------------------------------------------------------------------------------- the run


@dataclass
class Scored:
    """What scoring a run gives: the scores.json content and, per task, the lines of scores/<task>.jsonl."""
    scores: dict[str, Any]
    per_sample: dict[str, list[dict[str, Any]]]


@dataclass
class _TaskResult:
    entry: dict[str, Any]
    star_reps: np.ndarray | None
    records: list[dict[str, Any]]


def check_options(profile: str, n_bootstrap: int, seed: int) -> None:
    """Refuse settings scoring cannot honour, before any work (one-line errors naming the option)."""
    from jleval.errors import UsageError
    from jleval.stats import MAX_BOOTSTRAP

    pp.get_profile(profile)  # unknown profile -> UsageError
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or not 0 <= n_bootstrap <= MAX_BOOTSTRAP:
        raise UsageError(f"--bootstrap must be a whole number from 0 to {MAX_BOOTSTRAP}, got {n_bootstrap!r}",
                         "1000 replicates (the default) give stable 95% intervals")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"--seed must be a whole number >= 0, got {seed!r}", "e.g. --seed 0")


def _outputs(run_dir: Path) -> dict[str, Path]:
    if not run_dir.is_dir():
        raise ScoreError(f"run folder {run_dir} does not exist", "pass the folder `jleval run` wrote (runs/<name>)")
    out_dir = run_dir / "outputs"
    files = {p.stem: p for p in sorted(out_dir.glob("*.jsonl"))} if out_dir.is_dir() else {}
    if not files:
        raise ScoreError(f"{run_dir} has no outputs (no {out_dir}/*.jsonl)",
                         "run `jleval run` first, or pass the folder it wrote")
    return files


def _task_names(run_dir: Path, files: dict[str, Path], mtasks: dict[str, Any], tasks: list[str] | None) -> list[str]:
    names = sorted(set(files) | set(mtasks))
    if not tasks:
        return names
    unknown = [t for t in tasks if t not in names]
    if unknown:
        raise ScoreError(f"{run_dir} has no outputs for {', '.join(unknown)}",
                         f"tasks with outputs: {', '.join(sorted(files))}")
    return [n for n in names if n in tasks]


@dataclass
class _Job:
    """Everything scoring one task of a run needs besides the task's name."""
    files: dict[str, Path]
    mtasks: dict[str, Any]
    profile: str
    n_bootstrap: int
    seed: int
    prompt_style: str
    tasks_dir: Path | None
    warnings: list[str]


def _score_one(name: str, job: _Job) -> _TaskResult | str:
    """Score one task; a string = why it was skipped."""
    if name not in job.files:
        job.warnings.append(f"{name}: no outputs/{name}.jsonl; not scored")
        return "listed in the manifest but has no outputs file"
    info = _task_info(name, job.mtasks.get(name), job.warnings, job.tasks_dir)
    if isinstance(info, str):
        job.warnings.append(f"{name}: skipped: {info}")
        return info
    if info.category == "ARENA":
        return "open-ended answers: ranked pairwise by `jleval arena judge` / `jleval arena rank`"
    samples = read_outputs(job.files[name], job.warnings)
    entry, reps, recs = score_task(info, samples, job.profile, job.n_bootstrap, job.seed, job.warnings,
                                   prompt_style=job.prompt_style)
    entry["outputs_sha256"] = sha256_file(job.files[name])
    return _TaskResult(entry, reps, recs)


def _per_sample_text(records: list[dict[str, Any]]) -> str:
    return "".join(dumps_json(r, indent=None) + "\n" for r in records)


def _same_files(run_dir: Path, entry: dict[str, Any] | None, name: str, job: _Job) -> bool:
    """Was this task entry scored from the outputs file the run has now, and is scores/<task>.jsonl its file?"""
    if not entry or name not in job.files or entry.get("outputs_sha256") != sha256_file(job.files[name]):
        return False
    path = run_dir / "scores" / f"{name}.jsonl"
    return path.is_file() and entry.get("per_sample_sha256") == sha256_file(path)


def _reusable(run_dir: Path, previous: dict[str, Any], name: str, job: _Job) -> _TaskResult | None:
    """A task's result from the scores.json being replaced (`score --tasks` merges by task): only when it was
    scored with the same profile, replicates and seed, from the same outputs file, and its per-sample file is
    the one scores.json names. Its ⭐ replicates are rebuilt from the per-sample values (same seeded indices)."""
    entry = previous.get("tasks", {}).get(name)
    if not _same_files(run_dir, entry, name, job):
        return None
    path = run_dir / "scores" / f"{name}.jsonl"
    records = [rec for _, rec in jsonl.read(path, lambda n, why: ScoreError(f"{path}:{n}: {why}")).records]
    star = entry.get("star_metric")
    if not (star and job.n_bootstrap and entry["metrics"].get(star, {}).get("value") is not None):
        return _TaskResult(entry, None, records)
    vals = [r["scores"].get(star) for r in records if "error" not in r]
    if None in vals:
        return None  # not a mean of per-sample values (a correlation): score it again
    idx = bootstrap_indices(job.seed, name, len(vals), job.n_bootstrap)
    return _TaskResult(entry, np.asarray(vals, dtype=float)[idx].mean(axis=1), records)


def _previous(run_dir: Path, profile: str, n_bootstrap: int, seed: int, warnings: list[str]) -> dict[str, Any]:
    """The run's current scores.json when its tasks can be merged with new ones (same profile, replicates, seed);
    {} when there is none to merge with."""
    path = run_dir / "scores.json"
    if not path.is_file():
        return {}
    try:
        old: dict[str, Any] = dict(records.read_scores(path, lambda reason: ScoreError(f"{path} {reason}")))
    except ScoreError as e:
        warnings.append(f"{e.message}: every task is scored again")
        return {}
    boot = old.get("bootstrap", {})
    same = (old.get("profile"), boot.get("n"), boot.get("seed")) == (profile, n_bootstrap, seed)
    return old if same else {}


def _score_all(names: list[str], fresh: set[str], run_dir: Path, previous: dict[str, Any], job: _Job
               ) -> tuple[dict[str, _TaskResult], dict[str, str]]:
    """Score `names` (those outside `fresh` are taken from `previous` when still valid); (results, skipped).
    Each result's entry names the sha256 of its per-sample lines (scores/<task>.jsonl)."""
    results: dict[str, _TaskResult] = {}
    skipped: dict[str, str] = {}
    for name in names:
        kept = None if name in fresh else _reusable(run_dir, previous, name, job)
        res = kept or _score_one(name, job)
        if isinstance(res, str):
            skipped[name] = res
        else:
            res.entry["per_sample_sha256"] = sha256_text(_per_sample_text(res.records))
            results[name] = res
    return results, skipped


def score(run_dir: str | Path, profile: str = pp.DEFAULT_PROFILE, n_bootstrap: int = defaults.BOOTSTRAP,
          seed: int = defaults.SEED, tasks: list[str] | None = None, write: bool = True,
          tasks_dir: Path | None = None) -> Scored:
    """Score a run folder. With write=True, `scores.json` and `scores/` are replaced as one unit (see
    write_scores), and `tasks` names the tasks to score again: the run's other tasks keep their scores when
    they are still valid (merge by task), so scores.json never narrows. With write=False, `tasks` restricts
    the result to those tasks (an in-memory view, e.g. `jleval table --tasks`)."""
    t0 = time.perf_counter()
    check_options(profile, n_bootstrap, seed)
    run_dir = Path(run_dir)
    files = _outputs(run_dir)
    warnings: list[str] = []
    manifest = _read_manifest(run_dir, warnings)
    mtasks = manifest.get("tasks") or {}
    names = _task_names(run_dir, files, mtasks, tasks)
    job = _Job(files, mtasks, profile, n_bootstrap, seed, manifest.get("prompt_style") or "basic", tasks_dir,
               warnings)
    fresh, previous = set(names), {}
    if write and tasks:  # every task of the run stays in scores.json: the others kept or scored again
        names, previous = sorted(set(files) | set(mtasks)), _previous(run_dir, profile, n_bootstrap, seed, warnings)
    results, skipped = _score_all(names, fresh, run_dir, previous, job)
    per_sample = {name: r.records for name, r in results.items()}
    agg = _aggregate({n: r.entry for n, r in results.items()}, {n: r.star_reps for n, r in results.items()},
                     _expected_by_category(), warnings)
    result = _document(profile, manifest, n_bootstrap, seed, agg, results, skipped, warnings)
    result["seconds"] = round(time.perf_counter() - t0, 3)
    if write:
        write_scores(run_dir, result, per_sample)
    for w in warnings:
        log.debug("warning: %s", w)
    return Scored(result, per_sample)


def _document(profile: str, manifest: dict[str, Any], n_bootstrap: int, seed: int, agg: dict[str, Any],
              results: dict[str, _TaskResult], skipped: dict[str, str], warnings: list[str]) -> dict[str, Any]:
    import jleval

    return {
        "format": SCORES_FORMAT,
        "jleval_version": jleval.__version__,
        "profile": profile,
        "run": {k: manifest.get(k) for k in ("model", "split", "num_few_shots", "max_num_samples", "prompt_style")
                if k in manifest},
        "bootstrap": {"n": n_bootstrap, "seed": seed, "method": "percentile", "level": CI_LEVEL,
                      "paired": "per task: indices from rng(seed, crc32(task)); AVG/categories: same replicate"},
        **agg,
        "tasks": {n: r.entry for n, r in results.items()},
        "skipped_tasks": skipped,
        "warnings": warnings,
        "seconds": None,
    }


def score_run(run_dir: str | Path, profile: str = pp.DEFAULT_PROFILE, n_bootstrap: int = defaults.BOOTSTRAP,
              seed: int = defaults.SEED, tasks: list[str] | None = None, write: bool = True,
              tasks_dir: Path | None = None) -> dict[str, Any]:
    """Score every task of a run folder (see `score`); returns the scores.json content. Warnings are in its
    "warnings" list."""
    return score(run_dir, profile, n_bootstrap, seed, tasks, write, tasks_dir).scores


# ----------------------------------------------------------------------------------------------- writing


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stage(staging: Path, per_sample: dict[str, list[dict[str, Any]]]) -> None:
    staging.mkdir()
    for name, recs in per_sample.items():
        with open(staging / f"{name}.jsonl", "w", encoding="utf-8") as f:
            f.write(_per_sample_text(recs))
            f.flush()
            os.fsync(f.fileno())
    _fsync_dir(staging)


def write_scores(run_dir: Path, result: dict[str, Any], per_sample: dict[str, list[dict[str, Any]]]) -> None:
    """Replace `scores/` and `scores.json` as one unit: the new per-sample files are written (and fsync'd) into a
    hidden folder, which then takes the place of `scores/` by renames; scores.json is replaced last. scores.json
    names the sha256 of every per-sample file, so a reader that meets the two halves of different scorings
    (a kill -9 or a full disk between the renames) sees that they do not match (jleval.table re-scores then).
    A failure leaves the previous scores in place and raises OutputError naming the run folder."""
    run_dir = Path(run_dir)
    try:
        with exclusive(run_dir / ".scores.lock", None, wait=True):  # one writer at a time (two `table`s at once)
            _swap_in(run_dir, result, per_sample)
    except OSError as e:
        raise OutputError(f"cannot write the scores of {run_dir}: {e.strerror or e}",
                          "free some space or make the run folder writable, then score again") from None


def _swap_in(run_dir: Path, result: dict[str, Any], per_sample: dict[str, list[dict[str, Any]]]) -> None:
    import shutil

    for left in [*run_dir.glob(".scores.new-*"), *run_dir.glob(".scores.old-*")]:  # an earlier crash's leftovers
        shutil.rmtree(left, ignore_errors=True)
    staging, old, final = run_dir / f".scores.new-{os.getpid()}", run_dir / f".scores.old-{os.getpid()}", \
        run_dir / "scores"
    try:
        _stage(staging, per_sample)
        if final.exists():
            os.replace(final, old)
        os.replace(staging, final)
        atomic_write_json(run_dir / "scores.json", result)
    except OSError:
        if old.exists() and not final.exists():
            os.replace(old, final)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def per_sample_consistent(run_dir: Path, scores: dict[str, Any]) -> bool:
    """Do the files in scores/ belong to this scores.json (each task's file has the sha256 it names)? A
    scores.json written before the hashes existed names none and is taken as it is."""
    for name, entry in scores.get("tasks", {}).items():
        want = entry.get("per_sample_sha256")
        if want is None:
            continue
        path = Path(run_dir) / "scores" / f"{name}.jsonl"
        if not path.is_file() or sha256_file(path) != want:
            return False
    return True
