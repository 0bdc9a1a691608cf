"""`jleval table`: the combined leaderboard of scored runs (a `Leaderboard`: columns and rows of values) with
confidence intervals and, for each adjacent pair in the ranking, whether the higher run is
better beyond noise (a paired bootstrap over the samples both runs share).

Column order (stable; documented in docs/leaderboard.md):
    rank, run, model, revision, AVG, AVG_ci_low, AVG_ci_high, then for each category C of NLI QA RC MC EL FA MR MT
    HE CG SUM: C, C_ci_low, C_ci_high; then every ⭐ metric column `<task>_<metric>` in leaderboard task order;
    then the other metrics (`<task>_<metric>`, `<task>_out_of_label`); then `better_than_next`,
    `diff_to_next`, `diff_ci_low`, `diff_ci_high`; then the arena columns when judgments are given; then the
    settings: num_few_shots, split, max_num_samples, profile, prompt_style, backend, engine_version,
    jleval_version, date, avg_upstream, complete, mixed; last the model columns the run recorded (jleval.modelinfo):
    architecture, params, precision, license, base_model, chat_template.
Missing cells are empty (NaN for pandas), never 0.

This module computes; jleval.render draws the result (rich table, CSV/Markdown/JSON, the HTML page, PNG charts).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jleval import defaults
from jleval.errors import ScoreError, UsageError
from jleval.fsutil import read_json_object
from jleval.records import LEADERBOARD_FORMAT, read_manifest, read_scores
from jleval.stats import PairedResult
from jleval.tasks import CATEGORIES

COMPARABLE = ("split", "num_few_shots", "max_num_samples", "profile", "prompt_style", "tasks")
#: The model's own columns, from the manifest's `model_info` (read from the model's files at run time).
MODEL_COLUMNS = ("architecture", "params", "precision", "license", "base_model", "chat_template")
#: Where a row's outputs came from when not from `jleval run`: the format `jleval import` read (e.g. llm-jp-eval).
SOURCE_COLUMNS = ("imported",)
SETTINGS_COLUMNS = ("num_few_shots", "split", "max_num_samples", "profile", "prompt_style", "backend",
                    "engine_version", "jleval_version", "date", "avg_upstream", "complete", "mixed")


@dataclass
class ScoredRun:
    name: str
    path: Path
    manifest: dict[str, Any]
    scores: dict[str, Any]
    per_sample: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)  # task -> id -> metrics

    def setting(self, key: str) -> Any:
        if key == "profile":
            return self.scores.get("profile")
        if key == "tasks":
            return tuple(sorted(self.scores.get("tasks", {})))
        if key == "backend":  # the manifest's top-level "backend" is the backend's self-description
            described = self.manifest.get("backend") if isinstance(self.manifest.get("backend"), dict) else {}
            return (self.manifest.get("settings", {}).get("backend") or described.get("backend")
                    or described.get("engine"))
        return self.manifest.get(key, self.manifest.get("settings", {}).get(key))


@dataclass
class Leaderboard:
    columns: list[str]
    rows: list[dict[str, Any]]
    runs: list[ScoredRun]
    sort: str
    mixed: list[str]  # the settings that differ when --allow-mixed was used
    notes: list[str] = field(default_factory=list)
    arena: dict[str, Any] | None = None

    @property
    def profiles(self) -> str:
        """The scoring profile(s) of the rows, for every header that draws the table."""
        return ", ".join(sorted({str(r["profile"]) for r in self.rows if r.get("profile")})) or "unknown"

    def to_json(self) -> dict[str, Any]:
        """The leaderboard JSON document (`jleval table --format json`)."""
        return {"format": LEADERBOARD_FORMAT, "sort": self.sort, "mixed": self.mixed, "notes": self.notes,
                "columns": self.columns, "rows": self.rows, "arena": self.arena}


def _stored_scores(path: Path) -> dict[str, Any] | None:
    """The run's scores.json: None when there is none or it is not JSON (it is scored again then); a wrongly
    typed field is a one-line error naming the file and the field."""
    scores_path = path / "scores.json"
    if not scores_path.is_file() or read_json_object(scores_path) is None:
        return None

    def fail(reason: str) -> ScoreError:
        return ScoreError(f"{scores_path} {reason}", f"score the run again: jleval score {path}")

    return dict(read_scores(scores_path, fail))


def _per_sample_from_files(path: Path, scores: dict[str, Any]) -> dict[str, dict[int, dict[str, float]]]:
    out = {}
    for task in scores.get("tasks", {}):
        f = path / "scores" / f"{task}.jsonl"
        if f.is_file():
            try:
                out[task] = {r["id"]: r.get("scores") or {} for r in
                             (json.loads(l) for l in f.read_text(encoding="utf-8").splitlines() if l.strip())}
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ScoreError(f"{f} is corrupt", f"re-score the run: jleval score {path}") from None
    return out


def load_run(path: Path, score_if_needed: bool = True, profile: str | None = None,
             tasks_dir: Path | None = None) -> ScoredRun:
    """A run folder with its scores. Stored scores are used when they are for `profile` (any, when None) and
    scores/ matches scores.json; otherwise the run is scored: in memory when it already has scores (another
    profile's, or a scores/ that does not match: never rewritten behind the user's back), and written when it
    has none yet."""
    from jleval import scoring

    path = Path(path)
    if not (path / "manifest.json").is_file():
        raise UsageError(f"{path} is not a run folder (no manifest.json)", "pass folders written by `jleval run`")

    def fail(reason: str) -> ScoreError:
        return ScoreError(f"{path / 'manifest.json'} is corrupt ({reason})",
                          "restore it, or re-run `jleval run` with the run's settings into a new folder")

    manifest = dict(read_manifest(path / "manifest.json", fail))
    scores = _stored_scores(path)
    usable = (scores is not None and (not profile or scores.get("profile") == profile)
              and scoring.per_sample_consistent(path, scores))
    if usable:
        run = ScoredRun(path.name, path, manifest, scores)
        run.per_sample = _per_sample_from_files(path, scores)
        return run
    if not score_if_needed:
        raise ScoreError(f"{path} has no scores" + (f" for profile {profile}" if scores else ""),
                         f"run `jleval score {path}` first")
    kwargs: dict[str, Any] = {"tasks_dir": tasks_dir, "write": scores is None}
    if profile or scores:
        kwargs["profile"] = profile or scores["profile"]
    scored = scoring.score(path, **kwargs)
    run = ScoredRun(path.name, path, manifest, scored.scores)
    run.per_sample = {t: {r["id"]: r.get("scores") or {} for r in recs} for t, recs in scored.per_sample.items()}
    return run


def _model_info(run: ScoredRun) -> dict[str, Any]:
    info = run.manifest.get("model_info")
    return info if isinstance(info, dict) else {}


def _model_cells(run: ScoredRun) -> dict[str, Any]:
    """The row's revision, model columns and import source, from the manifest."""
    info = _model_info(run)
    return {"revision": (run.manifest.get("model") or {}).get("revision") or info.get("revision"),
            **{c: info.get(c) for c in MODEL_COLUMNS}, "imported": (run.manifest.get("imported") or {}).get("format")}


def _model_notes(rows: list[dict[str, Any]], runs: list[ScoredRun]) -> list[str]:
    notes = []
    if imported := [f"{row['run']} ({row['imported']})" for row in rows if row.get("imported")]:
        notes.append(f"imported runs: {', '.join(imported)}: outputs from another tool's results file, scored by "
                     "jleval; their settings are as that file records them")
    for r in runs:
        info = _model_info(r)
        if info.get("notes") and (info.get("architecture") is None or info.get("params") is None):
            notes.append(f"{r.name}: model columns incomplete: {'; '.join(map(str, info['notes']))}")
    return notes


def check_comparable(runs: list[ScoredRun], allow_mixed: bool) -> list[str]:
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"two runs have the same name: {', '.join(dupes)}",
                         "rename one run folder (its name is the row label)")
    differ = []
    for key in COMPARABLE:
        values = {json.dumps(r.setting(key), sort_keys=True) for r in runs}
        if len(values) > 1:
            differ.append(key)
    if differ and not allow_mixed:
        detail = "; ".join(f"{k}: " + ", ".join(f"{r.name}={r.setting(k)!r}" for r in runs) for k in differ)
        raise UsageError(f"these runs are not comparable ({detail})",
                         "rank runs made with the same settings, or pass --allow-mixed to mark the table as mixed")
    return differ


def _task_columns(runs: list[ScoredRun], tasks_dir: Path | None = None) -> tuple[list[str], list[str]]:
    from jleval.tasks import catalogue

    order = list(catalogue(tasks_dir))
    tasks = sorted({t for r in runs for t in r.scores.get("tasks", {})},
                   key=lambda t: (order.index(t) if t in order else len(order), t))
    star, other = [], []
    for t in tasks:
        entry = next(r.scores["tasks"][t] for r in runs if t in r.scores.get("tasks", {}))
        for metric in entry.get("metrics", {}):
            (star if metric == entry.get("star_metric") else other).append(f"{t}_{metric}")
        if any("out_of_label" in r.scores["tasks"].get(t, {}) for r in runs):
            other.append(f"{t}_out_of_label")
    return star, other


def _cell(run: ScoredRun, col: str) -> float | None:
    s = run.scores
    if col == "AVG":
        return (s.get("avg") or {}).get("value")
    if col.endswith(("_ci_low", "_ci_high")):
        base, hi = col.rsplit("_ci_", 1)
        src = s.get("avg") if base == "AVG" else s.get("categories", {}).get(base)
        ci = (src or {}).get("ci95")
        return None if not ci else ci[1 if hi == "high" else 0]
    if col in CATEGORIES:
        return (s.get("categories", {}).get(col) or {}).get("value")
    for task, entry in s.get("tasks", {}).items():
        if col.startswith(task + "_"):
            rest = col[len(task) + 1:]
            if rest == "out_of_label":
                return (entry.get("out_of_label") or {}).get("rate")
            m = entry.get("metrics", {}).get(rest)
            if m is not None:
                return m.get("value")
    return None


def _column_tasks(runs: list[ScoredRun], col: str) -> dict[str, list[str]] | None:
    """For AVG / a category / a ⭐ column: category -> tasks whose star metric feeds it (for the paired test)."""
    ref = runs[0].scores
    if col == "AVG":
        return {c: v["tasks"] for c, v in ref.get("categories", {}).items()}
    if col in CATEGORIES:
        return {col: ref.get("categories", {}).get(col, {}).get("tasks", [])}
    for task, entry in ref.get("tasks", {}).items():
        if col == f"{task}_{entry.get('star_metric')}":
            return {"_": [task]}
    return None


def paired_difference(a: ScoredRun, b: ScoredRun, col: str, n_bootstrap: int = 1000, seed: int = 0
                      ) -> tuple[float, float, float] | None:
    """Bootstrap the difference a - b of `col` over the samples both runs share (same ids resampled for both),
    aggregated as the column is (task mean -> category mean -> AVG). Returns (diff, ci_low, ci_high)."""
    groups = _column_tasks([a, b], col)
    if not groups:
        return None
    res = paired_groups(a, b, {cat: [(t, a.scores["tasks"].get(t, {}).get("star_metric")) for t in tasks]
                               for cat, tasks in groups.items()}, n_bootstrap, seed)
    return None if res is None else (res.diff, res.ci_low, res.ci_high)


def paired_groups(a: ScoredRun, b: ScoredRun, groups: dict[str, list[tuple[str, str | None]]],
                  n_bootstrap: int = 1000, seed: int = 0) -> PairedResult | None:
    """The paired bootstrap behind every "is it better" in jleval: `groups` maps a category to its
    (task, per-sample metric) pairs; each task's samples shared by both runs are resampled (the same ids for
    both runs, a stream seeded by the task's name, so a task gets the same interval wherever it appears),
    task means are averaged within a category, and categories are averaged."""
    from jleval.stats import PairedTask, paired_bootstrap

    per_task = []
    for cat, members in groups.items():
        for t, metric in members:
            shared = _shared_values(a, b, t, metric)
            if shared is not None:
                per_task.append(PairedTask(cat, t, *shared))
    return paired_bootstrap(per_task, n_bootstrap, seed)


def _shared_values(a: ScoredRun, b: ScoredRun, task: str, metric: str | None):
    """Both runs' per-sample values of `metric` on the samples of `task` both have (id order); None if none."""
    import numpy as np

    if metric is None:
        return None
    sa, sb = a.per_sample.get(task, {}), b.per_sample.get(task, {})
    ids = sorted(i for i in set(sa) & set(sb) if metric in sa[i] and metric in sb[i])
    if not ids:
        return None
    return np.array([sa[i][metric] for i in ids], float), np.array([sb[i][metric] for i in ids], float)


HEAD_COLUMNS = ("rank", "run", "model", "revision", "AVG", "AVG_ci_low", "AVG_ci_high")
CATEGORY_COLUMNS = tuple(x for c in CATEGORIES for x in (c, f"{c}_ci_low", f"{c}_ci_high"))
NEXT_COLUMNS = ("better_than_next", "diff_to_next", "diff_ci_low", "diff_ci_high")
#: Columns a table cannot be sorted by (labels, not scores).
NOT_SORTABLE = ("rank", "run", "model", "revision", *MODEL_COLUMNS, *NEXT_COLUMNS)


def _restrict_to_tasks(runs: list[ScoredRun], tasks: list[str], profile: str | None, n_bootstrap: int, seed: int,
                       tasks_dir: Path | None) -> list[str]:
    """AVG, categories, CIs and ranks over these tasks only: re-aggregated in memory, scores.json untouched."""
    from jleval.scoring import score_run

    tasks = [t for t in tasks if t]
    if not tasks:
        raise UsageError("--tasks names no task", "e.g. --tasks jamp,jcommonsenseqa")
    for r in runs:
        missing = [t for t in tasks if t not in r.scores.get("tasks", {})]
        if missing:
            raise UsageError(f"run {r.name} has no scores for {', '.join(missing)}",
                             f"its scored tasks: {', '.join(sorted(r.scores.get('tasks', {})))}")
    for r in runs:
        r.scores = score_run(r.path, profile=r.scores.get("profile") or profile or defaults.PROFILE,
                             n_bootstrap=n_bootstrap, seed=seed, tasks=tasks, write=False, tasks_dir=tasks_dir)
    return tasks


def _refuse_empty(runs: list[ScoredRun], arena_judgments: list[Path] | None) -> None:
    empty = [r.name for r in runs if not any(m.get("value") is not None for t in r.scores.get("tasks", {}).values()
                                             for m in (t.get("metrics") or {}).values())]
    if empty and not arena_judgments:
        raise UsageError(f"no task of run(s) {', '.join(empty)} has scores (no outputs scored, or only arena answers)",
                         "`jleval score RUN` says why; for runs of the rakuda task alone, pass --arena JUDGMENTS")


def _metric_columns(runs: list[ScoredRun], tasks: list[str] | None, tasks_dir: Path | None
                    ) -> tuple[list[str], list[str]]:
    """(⭐ metric columns, the other metric columns), only those of `tasks` when given."""
    star, other = _task_columns(runs, tasks_dir)
    if tasks:
        keep = tuple(f"{t}_" for t in tasks)
        star = [c for c in star if c.startswith(keep)]
        other = [c for c in other if c.startswith(keep)]
    return star, other


def _check_sort(sort: str, columns: list[str], metric_cols: list[str]) -> None:
    if sort in columns and sort not in NOT_SORTABLE:
        return
    raise UsageError(f"cannot sort by {sort!r}",
                     f"use AVG, a category ({', '.join(CATEGORIES)}) or a metric column of these runs"
                     + (f" ({', '.join(metric_cols[:8])}{', …' if len(metric_cols) > 8 else ''})"
                        if metric_cols else ""))


def _row(r: ScoredRun, value_columns: list[str], mixed: list[str]) -> dict[str, Any]:
    """One run's row: its values, then its labels and settings (rank and the next-row columns come later)."""
    row: dict[str, Any] = {c: _cell(r, c) for c in value_columns}
    backend = r.manifest.get("backend", {})
    row.update(run=r.name, model=r.manifest.get("model", {}).get("id"), **_model_cells(r),
               num_few_shots=r.setting("num_few_shots"), split=r.setting("split"),
               max_num_samples=r.setting("max_num_samples"), profile=r.setting("profile"),
               prompt_style=r.setting("prompt_style"), backend=backend.get("backend", r.setting("backend")),
               engine_version=backend.get("engine_version"), jleval_version=r.manifest.get("jleval_version"),
               date=(r.manifest.get("finished_at") or r.manifest.get("created_at") or "")[:10],
               avg_upstream=(r.scores.get("avg_upstream") or {}).get("value"),
               complete=(r.scores.get("avg") or {}).get("complete"), mixed=",".join(mixed) or None)
    return row


def _ranked(rows: list[dict[str, Any]], runs: list[ScoredRun], sort: str
            ) -> tuple[list[dict[str, Any]], list[ScoredRun]]:
    """Rows and runs best first by `sort` (missing values last, ties by run name), numbered from 1."""
    if all(row[sort] is None for row in rows):
        raise UsageError(f"no run has a value in column {sort!r}", "sort by AVG or a column the runs have")
    sign = 1.0 if lower_is_better(sort) else -1.0
    order = sorted(range(len(runs)), key=lambda i: (rows[i][sort] is None, sign * (rows[i][sort] or 0.0),
                                                    runs[i].name))
    rows, runs = [rows[i] for i in order], [runs[i] for i in order]
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
        row.update(dict.fromkeys(NEXT_COLUMNS))
    return rows, runs


def _mark_next(rows: list[dict[str, Any]], runs: list[ScoredRun], sort: str, n_bootstrap: int, seed: int) -> None:
    """better_than_next and the paired difference to the next row, where both share samples."""
    for i in range(len(runs) - 1):
        res = paired_difference(runs[i], runs[i + 1], sort, n_bootstrap, seed)
        if res is not None:
            d, lo, hi = res
            rows[i].update(better_than_next="yes" if lo > 0 else "no", diff_to_next=d, diff_ci_low=lo, diff_ci_high=hi)


def _notes(lb: Leaderboard) -> None:
    if lb.mixed:
        lb.notes.append(f"MIXED TABLE: the runs differ in {', '.join(lb.mixed)}; rankings are not comparable")
    lb.notes += _model_notes(lb.rows, lb.runs)
    if any(r["complete"] is False for r in lb.rows):
        lb.notes.append("some runs miss categories: their AVG is over the categories present (avg_upstream counts "
                        "missing ones as 0, as llm-jp-eval v1.4.1 does)")


def build(run_dirs: list[Path], sort: str = "AVG", allow_mixed: bool = False, tasks: list[str] | None = None,
          profile: str | None = None, n_bootstrap: int = 1000, seed: int = 0,
          arena_judgments: list[Path] | None = None, tasks_dir: Path | None = None) -> Leaderboard:
    """The leaderboard of `run_dirs`: one row per run, ranked by `sort`, each row marked whether it beats the
    next beyond noise (paired bootstrap); `tasks` restricts columns and aggregates to those tasks."""
    if not run_dirs:
        raise UsageError("no run folder given", "pass one or more folders written by `jleval run`")
    runs = [load_run(Path(p), profile=profile, tasks_dir=tasks_dir) for p in run_dirs]
    if tasks is not None:
        tasks = _restrict_to_tasks(runs, tasks, profile, n_bootstrap, seed, tasks_dir)
    _refuse_empty(runs, arena_judgments)
    mixed = check_comparable(runs, allow_mixed)
    star, other = _metric_columns(runs, tasks, tasks_dir)
    columns = [*HEAD_COLUMNS, *CATEGORY_COLUMNS, *star, *other, *NEXT_COLUMNS]
    _check_sort(sort, columns, star + other)
    values = [*HEAD_COLUMNS[4:], *CATEGORY_COLUMNS, *star, *other]
    rows, runs = _ranked([_row(r, values, mixed) for r in runs], runs, sort)
    _mark_next(rows, runs, sort, n_bootstrap, seed)
    lb = Leaderboard(columns + list(SETTINGS_COLUMNS) + list(MODEL_COLUMNS) + list(SOURCE_COLUMNS), rows, runs, sort,
                     mixed)
    _notes(lb)
    if arena_judgments:
        _add_arena(lb, arena_judgments, seed)
    return lb


def _add_arena(lb: Leaderboard, judgments: list[Path], seed: int) -> None:
    from jleval.arena import rank_judgments

    ranking = rank_judgments(judgments, seed=seed)
    lb.arena = ranking
    by_model = {m["model"]: m for m in ranking["models"]}
    extra = ["arena_rating", "arena_ci95_low", "arena_ci95_high"]
    matched = set()
    for row in lb.rows:
        key = row["model"] if row["model"] in by_model else row["run"]
        m = by_model.get(key)
        if m:
            matched.add(key)
        row.update(arena_rating=m and m["rating"], arena_ci95_low=m and m["ci95"][0],
                   arena_ci95_high=m and m["ci95"][1])
    unmatched = sorted(set(by_model) - matched)
    if unmatched:
        lb.notes.append(f"arena models that match no run (by model id or run folder name): {', '.join(unmatched)}; "
                        "their ratings are in the arena section only")
    i = lb.columns.index("num_few_shots")
    lb.columns[i:i] = extra


def lower_is_better(col: str) -> bool:
    """Columns where less is better: out-of-label rates, and `<task>_<metric>` of a metric declared
    higher_is_better=False (jleval.metrics.METRICS)."""
    from jleval.metrics import METRICS

    if col.endswith("_out_of_label"):
        return True
    return any(not info.higher_is_better and col.endswith(f"_{name}") for name, info in METRICS.items())
