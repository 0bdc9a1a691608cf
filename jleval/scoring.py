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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jleval import jsonl, records
from jleval.errors import JlevalError, ScoreError
from jleval.fsutil import atomic_write_json, atomic_write_text, dumps_json
from jleval.metrics import MetricResult, get_metric, metric_info, not_computed
from jleval.metrics import postprocess as pp
from jleval.stats import CI_LEVEL, bootstrap_indices
from jleval.stats import percentile_ci as _ci

log = logging.getLogger("jleval.scoring")

SCORES_FORMAT = "jleval.scores/1"


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
    if entry == {} and spec is not None:
        warnings.append(f"task {name!r} has outputs but is not in the manifest: using tasks/{name}.toml")
    metrics = tuple(entry.get("metrics") or (spec.metrics if spec else ()))
    if not metrics:
        return "no metrics listed in the manifest or the task file"
    labels = entry.get("label_list")
    options = entry.get("options") or (spec.options if spec else {})
    try:
        pattern = pp.answer_pattern(options)
    except JlevalError as e:
        warnings.append(f"task {name!r}: {e.message}; using the default answer extraction")
        pattern = None
    star = entry["star_metric"] if "star_metric" in entry else (spec.star_metric if spec else None)
    if star is not None and star not in metrics:
        warnings.append(f"task {name!r}: its ⭐ metric {star!r} is not among the metrics scored "
                        f"({', '.join(metrics)}); the task is left out of its category")
        star = None
    return TaskInfo(
        name=name,
        category=entry["category"] if "category" in entry else (spec.category if spec else None),
        star_metric=star,
        metrics=metrics,
        label_list=tuple(labels if labels is not None else (spec.label_list if spec else ())),
        pattern=pattern,
        expected_n=entry.get("n_samples"),
    )


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
    if not isinstance(sid, int) or isinstance(sid, bool):
        raise ScoreError(f"{path}:{n}: 'id' must be an integer sample index, got {sid!r}")
    if not isinstance(rec["gold"], str) or (gen is not None and not isinstance(gen, str)):
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


def _compute_metric(metric: str, preds: list[str], golds: list[str], inputs: list[str],
                    profile: str) -> MetricResult:
    try:
        fn = get_metric(metric)
    except (JlevalError, ImportError) as e:
        msg = e.message if isinstance(e, JlevalError) else str(e)
        return not_computed(f"metric:{metric}|{pp.signature(profile)}", f"metric unavailable: {msg}")
    try:
        return fn(preds, golds, inputs=inputs, profile=profile)
    except JlevalError as e:
        return not_computed(f"metric:{metric}|{pp.signature(profile)}", e.message)
    except Exception as e:  # a metric bug must not lose the other tasks' scores
        log.debug("metric %s failed", metric, exc_info=True)
        return not_computed(f"metric:{metric}|{pp.signature(profile)}",
                            f"failed: {type(e).__name__}: {e} (set JLEVAL_DEBUG=1 for details)")


# ----------------------------------------------------------------------------------------------- scoring


def _post_signature(sig: str, info: TaskInfo, profile: str, prompt_style: str) -> str:
    """A metric's signature with the post-processing this task really got: the task's own extraction pattern
    (jleval profile) and, for chain-of-thought runs, the answer extraction that runs before it."""
    generic = pp.signature(profile)
    actual = pp.signature(profile, info.pattern)
    if prompt_style == "cot":
        from jleval.cot import EXTRACTION_VERSION

        actual = actual.replace("|post:", f"|post:cot-extract-{EXTRACTION_VERSION}+", 1)
    return sig.replace(generic, actual, 1)


def score_task(info: TaskInfo, samples: list[Sample], profile: str, n_bootstrap: int, seed: int,
               warnings: list[str], prompt_style: str = "basic"
               ) -> tuple[dict[str, Any], np.ndarray | None, list[dict[str, Any]]]:
    """One task: (its scores.json entry, the ⭐ metric's bootstrap replicates, the per-sample records).

    For chain-of-thought runs the final answer is extracted first (jleval.cot.extract_answer); a sample whose
    answer cannot be extracted is counted in `cot_extraction` and scored as an empty answer."""
    errors = [s for s in samples if s.error]
    good = [s for s in samples if not s.error]
    if errors:
        warnings.append(f"{info.name}: {len(errors)} sample(s) with a generation error excluded from scoring")
    extracted: list[bool] | None = None
    texts = [s.generation for s in good]
    if prompt_style == "cot":
        from jleval import cot

        answers = [cot.extract_answer(t, info) for t in texts]
        extracted = [a is not None for a in answers]
        texts = [a if a is not None else "" for a in answers]
    preds = [pp.postprocess(t, profile, info.pattern) for t in texts]
    golds = [pp.normalize_gold(s.gold, profile) for s in good]
    inputs = [s.input for s in good]
    n = len(good)
    idx = bootstrap_indices(seed, info.name, n, n_bootstrap)

    entry: dict[str, Any] = {
        "category": info.category, "star_metric": info.star_metric, "n": n, "n_errors": len(errors),
        "n_empty": sum(1 for p in preds if p == ""), "n_expected": info.expected_n, "metrics": {},
    }
    if info.expected_n is not None and len(samples) < info.expected_n:
        entry["complete"] = False
        warnings.append(f"{info.name}: {len(samples)} of {info.expected_n} samples have outputs (partial run); "
                        "scored on those")
    else:
        entry["complete"] = True

    per_sample_cols: dict[str, tuple[float, ...] | None] = {}
    star_reps = None
    for metric in info.metrics:
        if n == 0:
            res = not_computed(f"metric:{metric}|{pp.signature(profile)}", "no samples without errors to score")
        else:
            res = _compute_metric(metric, preds, golds, inputs, profile)
        reps = None
        if res.score is not None and idx is not None:
            if res.per_sample is not None:
                reps = np.asarray(res.per_sample)[idx].mean(axis=1)
            elif res.resample is not None:
                reps = np.asarray(res.resample(idx), dtype=float)
        m: dict[str, Any] = {"value": _finite(res.score), "n": n, "ci95": _ci(reps),
                             "scale": _scale(metric), "signature": _post_signature(res.signature, info,
                                                                                      profile, prompt_style)}
        if res.score is None:
            m["reason"] = res.reason
            warnings.append(f"{info.name}: {metric} not computed: {res.reason}")
        elif res.note:
            m["note"] = res.note
            warnings.append(f"{info.name}: {res.note}")
        entry["metrics"][metric] = m
        per_sample_cols[metric] = res.per_sample
        if metric == info.star_metric and res.score is not None:
            star_reps = reps

    if extracted is not None:
        failed = extracted.count(False)
        entry["cot_extraction"] = {"failed": failed, "rate": (failed / n) if n else None, "n": n}
        if failed:
            warnings.append(f"{info.name}: no final answer could be extracted from {failed} of {n} chain-of-thought "
                            "outputs (scored as empty answers; see cot_extraction)")
    ool = None
    if info.label_list:
        from jleval.metrics.text import out_of_label

        ool = out_of_label(preds, info.label_list)
        entry["out_of_label"] = {"rate": (sum(ool) / n) if n else None, "count": sum(ool), "n": n,
                                 "labels": list(info.label_list)}

    records = []
    for i, s in enumerate(good):
        rec: dict[str, Any] = {"id": s.id, "key": s.key, "pred": preds[i], "gold": golds[i],
                               "scores": {k: (v[i] if v is not None else None) for k, v in per_sample_cols.items()}}
        if ool is not None:
            rec["out_of_label"] = ool[i]
        if extracted is not None:
            rec["extracted"] = extracted[i]
        records.append(rec)
    for s in errors:
        records.append({"id": s.id, "key": s.key, "error": s.error})
    records.sort(key=lambda r: r["id"])
    return entry, star_reps, records


def _aggregate(tasks: dict[str, dict[str, Any]], star_reps: dict[str, np.ndarray | None],
               expected: dict[str, list[str]], warnings: list[str]) -> dict[str, Any]:
    from jleval.tasks import CATEGORIES

    categories: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    missing: dict[str, str] = {}
    cat_reps: dict[str, np.ndarray | None] = {}
    by_cat: dict[str, list[str]] = {}
    unstarred: dict[str, list[str]] = {}
    for name, t in tasks.items():
        if t.get("category"):
            (by_cat if t.get("star_metric") else unstarred).setdefault(t["category"], []).append(name)
    order = {c: i for i, c in enumerate(CATEGORIES)}
    for cat in sorted(set(by_cat) | set(CATEGORIES), key=lambda c: (order.get(c, len(order)), c)):
        names = by_cat.get(cat, [])
        scored = [nm for nm in names if tasks[nm]["metrics"][tasks[nm]["star_metric"]]["value"] is not None]
        absent = [nm for nm in expected.get(cat, []) if nm not in names]
        if not scored:
            if cat in CATEGORIES:
                if unstarred.get(cat) and not names:
                    why = f"no ⭐ metric among the scored metrics of {', '.join(unstarred[cat])}"
                elif names:
                    why = "; ".join(f"{nm}: {tasks[nm]['star_metric']} not computed "
                                    f"({tasks[nm]['metrics'][tasks[nm]['star_metric']].get('reason')})"
                                    for nm in names)
                else:
                    why = "no task of this category in the run"
                missing[cat] = why
            continue
        for nm in scored:
            scale = tasks[nm]["metrics"][tasks[nm]["star_metric"]]["scale"]
            if scale == "0-100":
                warnings.append(f"{nm}: its ⭐ metric {tasks[nm]['star_metric']} is on a 0–100 scale and is "
                                f"averaged into {cat} with 0–1 scores")
        vals = [tasks[nm]["metrics"][tasks[nm]["star_metric"]]["value"] for nm in scored]
        reps_list = [star_reps.get(nm) for nm in scored]
        reps = np.mean(reps_list, axis=0) if all(r is not None for r in reps_list) else None
        c = {"value": float(np.mean(vals)), "ci95": _ci(reps), "tasks": scored,
             "not_scored": [nm for nm in names if nm not in scored] + absent}
        (categories if cat in CATEGORIES else extra)[cat] = c
        if cat in CATEGORIES:
            cat_reps[cat] = reps
    avg = None
    if categories:
        reps_list = [cat_reps[c] for c in categories]
        reps = np.mean(reps_list, axis=0) if all(r is not None for r in reps_list) else None
        avg = {"value": float(np.mean([c["value"] for c in categories.values()])), "ci95": _ci(reps),
               "categories": list(categories), "n_categories": len(categories), "complete": not missing}
    upstream = None
    if categories or missing:
        total = sum(c["value"] for c in categories.values())
        reps_list = [cat_reps[c] for c in categories]
        up_reps = (np.sum(reps_list, axis=0) / len(CATEGORIES)
                   if reps_list and all(r is not None for r in reps_list) else None)
        upstream = {"value": total / len(CATEGORIES), "ci95": _ci(up_reps),
                    "note": f"llm-jp-eval v1.4.1 style: the mean over all {len(CATEGORIES)} categories with "
                            f"the {len(missing)} missing ones counted as 0"}
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


def score_run(run_dir: str | Path, profile: str = pp.DEFAULT_PROFILE, n_bootstrap: int = 1000, seed: int = 0,
              tasks: list[str] | None = None, write: bool = True, tasks_dir: Path | None = None) -> dict[str, Any]:
    """Score every task of a run folder and (with write=True) write `scores.json` and `scores/<task>.jsonl`
    atomically into it. Returns the scores.json content. Warnings are in its "warnings" list."""
    t0 = time.perf_counter()
    pp.get_profile(profile)  # unknown profile -> UsageError before any work
    if n_bootstrap < 0:
        raise ScoreError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ScoreError(f"run folder {run_dir} does not exist", "pass the folder `jleval run` wrote (runs/<name>)")
    out_dir = run_dir / "outputs"
    files = {p.stem: p for p in sorted(out_dir.glob("*.jsonl"))} if out_dir.is_dir() else {}
    if not files:
        raise ScoreError(f"{run_dir} has no outputs (no {out_dir}/*.jsonl)",
                         "run `jleval run` first, or pass the folder it wrote")
    warnings: list[str] = []
    manifest = _read_manifest(run_dir, warnings)
    mtasks = manifest.get("tasks") or {}
    if not isinstance(mtasks, dict):
        raise ScoreError(f"{run_dir / 'manifest.json'}: 'tasks' must be an object mapping task names to settings")
    names = sorted(set(files) | set(mtasks))
    if tasks:
        unknown = [t for t in tasks if t not in names]
        if unknown:
            raise ScoreError(f"{run_dir} has no outputs for {', '.join(unknown)}",
                             f"tasks with outputs: {', '.join(sorted(files))}")
        names = [n for n in names if n in tasks]

    task_scores: dict[str, dict[str, Any]] = {}
    star_reps: dict[str, np.ndarray | None] = {}
    skipped: dict[str, str] = {}
    per_sample: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        if name not in files:
            skipped[name] = "listed in the manifest but has no outputs file"
            warnings.append(f"{name}: no outputs/{name}.jsonl; not scored")
            continue
        info = _task_info(name, mtasks.get(name), warnings, tasks_dir)
        if isinstance(info, str):
            skipped[name] = info
            warnings.append(f"{name}: skipped: {info}")
            continue
        if info.category == "ARENA":
            skipped[name] = "open-ended answers: ranked pairwise by `jleval arena judge` / `jleval arena rank`"
            continue
        samples = read_outputs(files[name], warnings)
        entry, reps, records = score_task(info, samples, profile, n_bootstrap, seed, warnings,
                                          prompt_style=manifest.get("prompt_style") or "basic")
        task_scores[name] = entry
        star_reps[name] = reps
        per_sample[name] = records

    agg = _aggregate(task_scores, star_reps, _expected_by_category(), warnings)
    import jleval

    result: dict[str, Any] = {
        "format": SCORES_FORMAT,
        "jleval_version": jleval.__version__,
        "profile": profile,
        "run": {k: manifest.get(k) for k in ("model", "split", "num_few_shots", "max_num_samples", "prompt_style")
                if k in manifest},
        "bootstrap": {"n": n_bootstrap, "seed": seed, "method": "percentile", "level": CI_LEVEL,
                      "paired": "per task: indices from rng(seed, crc32(task)); AVG/categories: same replicate"},
        **agg,
        "tasks": task_scores,
        "skipped_tasks": skipped,
        "warnings": warnings,
        "seconds": None,
    }
    if write:
        for name, records in per_sample.items():
            atomic_write_text(run_dir / "scores" / f"{name}.jsonl",
                              "".join(dumps_json(r, indent=None) + "\n" for r in records))
    result["seconds"] = round(time.perf_counter() - t0, 3)
    if write:
        atomic_write_json(run_dir / "scores.json", result)
    for w in warnings:
        log.debug("warning: %s", w)
    return result
