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

Runs are ranked only against runs made with the same settings (GROUP_KEYS): the runs given are sorted into groups
of comparable runs, the largest group (or the one `group=` names) is ranked, and every run left out is named with
the reason (`Leaderboard.left_out`), so `jleval table runs/*` works over a folder of mixed runs.

This module computes; jleval.render draws the result (rich table, CSV/Markdown/JSON, the HTML page, PNG charts).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jleval import defaults
from jleval.errors import ScoreError, UsageError
from jleval.fsutil import read_json_object
from jleval.records import LEADERBOARD_FORMAT, read_manifest, read_scores
from jleval.stats import PairedResult
from jleval.tasks import CATEGORIES

#: The settings runs must share to be ranked together (a group of comparable runs shares all of them).
GROUP_KEYS = ("split", "num_few_shots", "prompt_style", "max_num_samples", "template", "template_sha256",
              "data_version", "profile", "tasks")
COMPARABLE = GROUP_KEYS  # the former name
#: Columns that rank by the arena (with --arena); higher is better.
ARENA_COLUMNS = ("arena_rating", "arena_ci95_low", "arena_ci95_high")
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
            described = self.manifest.get("backend", {})
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
    group: str | None = None  # the name of the group of comparable runs ranked here (None with --allow-mixed)
    settings: dict[str, Any] = field(default_factory=dict)  # the settings its runs share (GROUP_KEYS)
    left_out: list[LeftOut] = field(default_factory=list)  # the runs given that are not in this table, and why
    groups: list[str] = field(default_factory=list)  # every group the runs given form, largest first

    @property
    def profiles(self) -> str:
        """The scoring profile(s) of the rows, for every header that draws the table."""
        return ", ".join(sorted({str(r["profile"]) for r in self.rows if r.get("profile")})) or "unknown"

    @property
    def scored_categories(self) -> list[str]:
        """The categories some row has a score in (in CATEGORIES order): the console's columns, the radar's axes."""
        return [c for c in CATEGORIES if any(r.get(c) is not None for r in self.rows)]

    def to_json(self) -> dict[str, Any]:
        """The leaderboard JSON document (`jleval table --format json`)."""
        return {"format": LEADERBOARD_FORMAT, "sort": self.sort, "mixed": self.mixed, "notes": self.notes,
                "group": self.group, "settings": self.settings, "groups": self.groups,
                "left_out": [x.to_json() for x in self.left_out],
                "columns": self.columns, "rows": self.rows, "arena": self.arena}


@dataclass
class LeftOut:
    """A run given to `jleval table` that is not in the table: its path as given, and why."""
    run: str
    reason: str
    group: str | None = None  # the group it belongs to, when it was left out for its settings

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "reason": self.reason, "group": self.group}


@dataclass
class RunGroup:
    """Runs made with the same settings (the values of GROUP_KEYS), under a short name for --group."""
    name: str
    settings: dict[str, Any]
    runs: list[ScoredRun]

def _stored_scores(path: Path) -> dict[str, Any] | None:
    """The run's scores.json: None when there is none or it is not JSON (it is scored again then); a wrongly
    typed field is a one-line error naming the file and the field."""
    scores_path = path / "scores.json"
    if not scores_path.is_file() or read_json_object(scores_path) is None:
        return None

    def fail(reason: str) -> ScoreError:
        return ScoreError(f"{scores_path} {reason}", f"score the run again: jleval score {path}")

    return dict(read_scores(scores_path, fail))


def _by_id(records: Iterable[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Per-sample records (scores/<task>.jsonl lines) as sample id -> that sample's metric values."""
    return {r["id"]: r.get("scores") or {} for r in records}


def _per_sample_from_files(path: Path, scores: dict[str, Any]) -> dict[str, dict[int, dict[str, float]]]:
    out = {}
    for task in scores.get("tasks", {}):
        f = path / "scores" / f"{task}.jsonl"
        if f.is_file():
            try:
                # only "\n" ends a line (jleval.jsonl's rule): U+2028 and U+0085 may sit inside an answer
                out[task] = _by_id(json.loads(line) for line in f.read_text(encoding="utf-8").split("\n")
                                   if line.strip())
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
    if scores is not None and (not profile or scores.get("profile") == profile) \
            and scoring.per_sample_consistent(path, scores):
        return ScoredRun(path.name, path, manifest, scores, _per_sample_from_files(path, scores))
    if not score_if_needed:
        raise ScoreError(f"{path} has no scores" + (f" for profile {profile}" if scores else ""),
                         f"run `jleval score {path}` first")
    # the profile asked for, else the one of the scores there are, else the default
    scored = scoring.score(path, profile=profile or (scores["profile"] if scores else defaults.PROFILE),
                           tasks_dir=tasks_dir, write=scores is None)
    return ScoredRun(path.name, path, manifest, scored.scores,
                     {t: _by_id(recs) for t, recs in scored.per_sample.items()})


def _model_cells(run: ScoredRun) -> dict[str, Any]:
    """The row's revision, model columns and import source, from the manifest."""
    info = run.manifest.get("model_info", {})
    return {"revision": run.manifest.get("model", {}).get("revision") or info.get("revision"),
            **{c: info.get(c) for c in MODEL_COLUMNS}, "imported": run.manifest.get("imported", {}).get("format")}


def _model_notes(rows: list[dict[str, Any]], runs: list[ScoredRun]) -> list[str]:
    notes = []
    if imported := [f"{row['run']} ({row['imported']})" for row in rows if row.get("imported")]:
        notes.append(f"imported runs: {', '.join(imported)}: outputs from another tool's results file, scored by "
                     "jleval; their settings are as that file records them")
    for r in runs:
        info = r.manifest.get("model_info", {})
        if info.get("notes") and None in (info.get("architecture"), info.get("params")):
            notes.append(f"{r.name}: model columns incomplete: {'; '.join(map(str, info['notes']))}")
    return notes


def _task_columns(runs: list[ScoredRun], tasks_dir: Path | None = None) -> tuple[list[str], list[str]]:
    from jleval.tasks import catalogue

    order = list(catalogue(tasks_dir))
    entries: dict[str, Any] = {}  # every task scored, as the first run that has it scored it
    for r in runs:
        for t, entry in r.scores.get("tasks", {}).items():
            entries.setdefault(t, entry)
    star: list[str] = []
    other: list[str] = []
    for t in sorted(entries, key=lambda t: (order.index(t) if t in order else len(order), t)):
        entry = entries[t]
        for metric in entry.get("metrics", {}):
            (star if metric == entry.get("star_metric") else other).append(f"{t}_{metric}")
        if any("out_of_label" in r.scores["tasks"].get(t, {}) for r in runs):
            other.append(f"{t}_out_of_label")
    return star, other


def _values(scores: dict[str, Any]) -> dict[str, float | None]:
    """Every value column of a run by name: AVG and each category with `_ci_low`/`_ci_high`, then per task
    `<task>_out_of_label` and `<task>_<metric>` (where two tasks' columns would share a name, the first task's)."""
    values: dict[str, float | None] = {}
    for name, entry in {"AVG": scores.get("avg"), **scores.get("categories", {})}.items():
        entry = entry or {}
        ci = entry.get("ci95") or [None, None]
        values.update({name: entry.get("value"), f"{name}_ci_low": ci[0], f"{name}_ci_high": ci[1]})
    for task, entry in scores.get("tasks", {}).items():
        values.setdefault(f"{task}_out_of_label", (entry.get("out_of_label") or {}).get("rate"))
        for metric, m in entry.get("metrics", {}).items():
            values.setdefault(f"{task}_{metric}", m.get("value"))
    return values


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


def paired_difference(a: ScoredRun, b: ScoredRun, col: str, n_bootstrap: int = defaults.BOOTSTRAP,
                      seed: int = defaults.SEED) -> tuple[float, float, float] | None:
    """Bootstrap the difference a - b of `col` over the samples both runs share (same ids resampled for both),
    aggregated as the column is (task mean -> category mean -> AVG). Returns (diff, ci_low, ci_high)."""
    groups = _column_tasks([a, b], col)
    if not groups:
        return None
    res = paired_groups(a, b, {cat: [(t, a.scores["tasks"].get(t, {}).get("star_metric")) for t in tasks]
                               for cat, tasks in groups.items()}, n_bootstrap, seed)
    return None if res is None else (res.diff, res.ci_low, res.ci_high)


def paired_groups(a: ScoredRun, b: ScoredRun, groups: dict[str, list[tuple[str, str | None]]],
                  n_bootstrap: int = defaults.BOOTSTRAP, seed: int = defaults.SEED) -> PairedResult | None:
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


# ----------------------------------------------------------------------------------------------- which runs


def _not_a_run(path: Path) -> str:
    """Why a path given to the table is not a run folder."""
    if not path.exists():
        return "does not exist"
    if not path.is_dir():
        return "not a run folder (a file)"
    entries = list(path.iterdir())
    if not entries:
        return "an empty folder (no manifest.json: a run that failed before it started?)"
    if any((e / "manifest.json").is_file() for e in entries if e.is_dir()):
        return f"a folder of runs, not a run (pass {path}/* to table the runs in it)"
    return "not a run folder (no manifest.json)"


def _has_scores(run: ScoredRun) -> bool:
    return any(m.get("value") is not None for t in run.scores.get("tasks", {}).values()
               for m in t.get("metrics", {}).values())


def _arena_answers(run: ScoredRun) -> bool:
    return any(t.get("category") == "ARENA" for t in run.manifest.get("tasks", {}).values())


def _unusable(run: ScoredRun, tasks: list[str] | None, arena: bool) -> str | None:
    """Why a loaded run cannot be ranked (None when it can)."""
    if tasks:
        missing = [t for t in tasks if t not in run.scores.get("tasks", {})]
        if missing:
            return (f"has no scores for {', '.join(missing)} (its scored tasks: "
                    f"{', '.join(sorted(run.scores.get('tasks', {}))) or 'none'})")
    if _has_scores(run):
        return None
    if _arena_answers(run):
        return None if arena else "arena answers only (rakuda): pass --arena JUDGMENTS to rank it by arena rating"
    return f"no task has scores (no outputs scored): `jleval score {run.path}` says why"


class _Busy(Exception):
    pass


def _in_progress(path: Path) -> bool:
    """Whether a `jleval run` is writing into the run folder now (it holds the folder's .lock)."""
    from jleval.fsutil import exclusive

    if not (path / ".lock").is_file():
        return False
    try:
        with exclusive(path / ".lock", _Busy()):
            return False
    except _Busy:
        return True


def load_runs(run_dirs: list[Path], profile: str | None = None, tasks_dir: Path | None = None,
              tasks: list[str] | None = None, arena: bool = False) -> tuple[list[ScoredRun], list[LeftOut]]:
    """The runs that can be ranked, and every other path given with the reason (not a run folder, an empty
    folder left by a failed run, a corrupt run, no scores, arena answers without --arena)."""
    runs, left = [], []
    for p in map(Path, run_dirs):
        if not (p / "manifest.json").is_file():
            left.append(LeftOut(str(p), _not_a_run(p)))
            continue
        if _in_progress(p):
            left.append(LeftOut(str(p), f"in progress ({p / '.lock'} held)"))
            continue
        try:
            run = load_run(p, profile=profile, tasks_dir=tasks_dir)
        except ScoreError as e:
            left.append(LeftOut(str(p), e.message))
            continue
        why = _unusable(run, tasks, arena)
        if why:
            left.append(LeftOut(str(p), why))
        else:
            runs.append(run)
    return runs, left


# ----------------------------------------------------------------------------------------------- groups


def _show(key: str, value: Any) -> str:
    if key == "tasks":
        return f"{len(value)} tasks" if value else "no scored task"
    return repr(value)


def _group_label(settings: dict[str, Any]) -> str:
    """A short readable name: split, shots, style, samples, task count, then what is not the default."""
    import re

    n = settings.get("max_num_samples")
    tasks = settings.get("tasks") or ()
    parts = [str(settings.get("split")), f"{settings.get('num_few_shots')}shot", str(settings.get("prompt_style")),
             "nall" if n == -1 else f"n{n}", f"{len(tasks)}tasks" if tasks else "arena"]
    extras = (("template", defaults.TEMPLATE, ""), ("data_version", defaults.DATA_VERSION, "data"),
              ("profile", defaults.PROFILE, ""))
    parts += [prefix + str(settings[k]) for k, default, prefix in extras if settings.get(k) not in (None, default)]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))


def group_runs(runs: list[ScoredRun]) -> list[RunGroup]:
    """Runs sorted into groups of comparable runs (the same GROUP_KEYS values), largest first. A group's name
    is its readable label, with a short hash of its settings where two groups would get the same label."""
    import hashlib

    by_key: dict[str, RunGroup] = {}
    for r in runs:
        settings = {k: r.setting(k) for k in GROUP_KEYS}
        key = json.dumps(settings, sort_keys=True, default=str)
        by_key.setdefault(key, RunGroup("", settings, [])).runs.append(r)
    labels = {key: _group_label(g.settings) for key, g in by_key.items()}
    for key, g in by_key.items():
        clash = list(labels.values()).count(labels[key]) > 1
        g.name = labels[key] + (f"-{hashlib.sha256(key.encode()).hexdigest()[:6]}" if clash else "")
    return sorted(by_key.values(), key=lambda g: (-len(g.runs), g.name))


def _differences(runs: list[ScoredRun]) -> list[str]:
    """The GROUP_KEYS in which the runs differ."""
    return [k for k in GROUP_KEYS if len({json.dumps(r.setting(k), sort_keys=True, default=str) for r in runs}) > 1]


def _tie_detail(runs: list[ScoredRun]) -> str:
    """What tied groups differ in: "num_few_shots: 4 (a, b) / 0 (c)"."""
    parts = []
    for k in _differences(runs):
        by_value: dict[str, list[str]] = {}
        for r in runs:
            by_value.setdefault(_show(k, r.setting(k)), []).append(r.name)
        parts.append(f"{k}: " + " / ".join(f"{v} ({', '.join(names)})" for v, names in by_value.items()))
    return "; ".join(parts)


def _arena_group(g: RunGroup) -> bool:
    return all(_arena_answers(r) and not _has_scores(r) for r in g.runs)


def _listing(groups: list[RunGroup]) -> str:
    return "; ".join(f"{g.name} ({len(g.runs)} run{'s' if len(g.runs) > 1 else ''})" for g in groups)


def _largest(groups: list[RunGroup], arena: bool) -> list[RunGroup]:
    """The largest groups; with `arena` (--arena given) a group of arena answers wins a tie."""
    tied = [g for g in groups if len(g.runs) == len(groups[0].runs)]
    in_arena = [g for g in tied if _arena_group(g)]
    return in_arena if arena and len(in_arena) == 1 else tied


#: The leaderboard's default settings: on a tie for the largest group, a group with all of them is preferred.
DEFAULT_SETTINGS = {"split": defaults.SPLIT, "num_few_shots": defaults.NUM_FEW_SHOTS,
                    "prompt_style": defaults.PROMPT_STYLE, "template": defaults.TEMPLATE, "profile": defaults.PROFILE}


def _is_default(g: RunGroup) -> bool:
    return all(g.settings.get(k) == v for k, v in DEFAULT_SETTINGS.items())


def _samples(g: RunGroup) -> int:
    """How many samples each run of the group scored, at most (max_num_samples -1 = all counts as most)."""
    n = g.settings.get("max_num_samples")
    return 1 << 62 if n == -1 else n if isinstance(n, int) else 0


#: Why `_tie_break` chose a group, one reason per element of its sort key.
TIE_REASONS = ("the leaderboard's default settings", "the most tasks", "the most samples", "its run given first")


def _tie_break(tied: list[RunGroup], order: list[ScoredRun]) -> tuple[RunGroup, str]:
    """Of groups as large as each other: the one with the leaderboard's default settings, then the one with the
    most tasks, then the most samples, then the group of the run given first; and why it was chosen."""
    first = {id(r): i for i, r in enumerate(order)}

    def key(g: RunGroup) -> tuple[bool, int, int, int]:
        return (not _is_default(g), -len(g.settings.get("tasks") or ()), -_samples(g),
                min(first.get(id(r), len(first)) for r in g.runs))

    ranked = sorted(tied, key=key)
    # the first key in which the chosen group beats the next one says why
    why = next((w for w, x, y in zip(TIE_REASONS, key(ranked[0]), key(ranked[1])) if x != y), TIE_REASONS[-1])
    return ranked[0], why


def choose_group(groups: list[RunGroup], order: list[ScoredRun], name: str | None = None,
                 arena: bool = False) -> tuple[RunGroup, str | None]:
    """The group `name` names, else the largest (`_largest`); on a tie for the largest, `_tie_break`'s choice
    (`order`: the runs as given on the command line). With it, a note saying why when it won a tie (else None)."""
    if name is not None:
        for g in groups:
            if g.name == name:
                return g, None
        raise UsageError(f"--group {name}: no group of these runs has that name", f"the groups: {_listing(groups)}")
    tied = _largest(groups, arena)
    if len(tied) == 1:
        return tied[0], None
    chosen, why = _tie_break(tied, order)
    size = len(chosen.runs)
    return chosen, (f"{len(tied)} groups tie for the largest ({size} run{'s' if size > 1 else ''} each): ranked "
                    f"{chosen.name} ({why}); the others differ in {_tie_detail([r for g in tied for r in g.runs])}"
                    "; rank another with --group NAME, or every group with --all-groups")


#: Run settings that do not split groups but are named when a left-out run differs in them from the ranked runs.
DESCRIBED_KEYS = ("chat_template", "system_prompt", "add_special_tokens", "stop_rule")


def _other_group(g: RunGroup, ranked: RunGroup, run: ScoredRun) -> str:
    """Why a run of group `g` is left out: every setting in which it differs from the ranked group's runs."""
    def differs(k: str) -> bool:
        return all(x.setting(k) != run.setting(k) for x in ranked.runs)

    detail = ", ".join([f"{k} {_show(k, g.settings[k])}" for k in GROUP_KEYS if g.settings[k] != ranked.settings[k]]
                       + [f"{k} {_show(k, run.setting(k))}" for k in DESCRIBED_KEYS if differs(k)])
    return f"other settings than the ranked group ({detail}): rank its group with --group {g.name}"


def _other_groups(groups: list[RunGroup], ranked: RunGroup) -> list[LeftOut]:
    """The runs of every group but `ranked`, each left out with the settings it differs in."""
    return [LeftOut(str(r.path), _other_group(g, ranked, r), g.name) for g in groups if g is not ranked for r in g.runs]


# ----------------------------------------------------------------------------------------------- building


HEAD_COLUMNS = ("rank", "run", "model", "revision", "AVG", "AVG_ci_low", "AVG_ci_high")
CATEGORY_COLUMNS = tuple(x for c in CATEGORIES for x in (c, f"{c}_ci_low", f"{c}_ci_high"))
NEXT_COLUMNS = ("better_than_next", "diff_to_next", "diff_ci_low", "diff_ci_high")
#: Columns a table cannot be sorted by (labels, not scores).
NOT_SORTABLE = ("rank", "run", "model", "revision", *MODEL_COLUMNS, *NEXT_COLUMNS)


def _metric_columns(runs: list[ScoredRun], tasks: list[str] | None, tasks_dir: Path | None
                    ) -> tuple[list[str], list[str]]:
    """(⭐ metric columns, the other metric columns), only those of `tasks` when given."""
    star, other = _task_columns(runs, tasks_dir)
    if tasks:
        keep = tuple(f"{t}_" for t in tasks)
        star = [c for c in star if c.startswith(keep)]
        other = [c for c in other if c.startswith(keep)]
    return star, other


def _check_sort(sort: str, columns: list[str], metric_cols: list[str], arena: bool = False) -> None:
    if (sort in columns and sort not in NOT_SORTABLE) or (arena and sort in ARENA_COLUMNS):
        return
    if sort in ARENA_COLUMNS:
        raise UsageError(f"cannot sort by {sort!r} without arena ratings",
                         "pass --arena JUDGMENTS (the JSONL of `jleval arena judge`) to add them, or sort by AVG")
    raise UsageError(f"cannot sort by {sort!r}",
                     f"use AVG, a category ({', '.join(CATEGORIES)}), " + ("arena_rating, " if arena else "")
                     + "or a metric column of these runs"
                     + (f" ({', '.join(metric_cols[:8])}{', …' if len(metric_cols) > 8 else ''})"
                        if metric_cols else ""))


def _row(r: ScoredRun, value_columns: list[str], mixed: Sequence[str]) -> dict[str, Any]:
    """One run's row: its values, then its labels and settings (rank and the next-row columns come later)."""
    values = _values(r.scores)
    row: dict[str, Any] = {c: values.get(c) for c in value_columns}
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
        raise UsageError(f"no run has a value in column {sort!r}",
                         "sort by AVG or a column the runs have (arena_rating with --arena for arena answers)")
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
    if lb.left_out:
        lb.notes.append(f"{len(lb.left_out)} run(s) left out: {', '.join(Path(x.run).name for x in lb.left_out)} "
                        "(the reasons: `jleval table` prints them, the JSON output's left_out holds them)")
    lb.notes += _model_notes(lb.rows, lb.runs)
    if any(r["complete"] is False for r in lb.rows):
        lb.notes.append("some runs miss categories: their AVG is over the categories present (avg_upstream counts "
                        "missing ones as 0, as llm-jp-eval v1.4.1 does)")


@dataclass
class _Options:
    sort: str | None
    tasks: list[str] | None
    n_bootstrap: int
    seed: int
    arena: list[Path] | None
    tasks_dir: Path | None


def build(run_dirs: list[Path], sort: str | None = None, allow_mixed: bool = False, tasks: list[str] | None = None,
          profile: str | None = None, n_bootstrap: int = defaults.BOOTSTRAP, seed: int = defaults.SEED,
          arena_judgments: list[Path] | None = None, tasks_dir: Path | None = None,
          group: str | None = None) -> Leaderboard:
    """The leaderboard of the comparable runs among `run_dirs`: the largest group (or `group`), the others left
    out by name (`Leaderboard.left_out`); with `allow_mixed` every usable run, the table marked mixed."""
    return build_tables(run_dirs, sort, allow_mixed, tasks, profile, n_bootstrap, seed, arena_judgments, tasks_dir,
                        group)[0]


def build_tables(run_dirs: list[Path], sort: str | None = None, allow_mixed: bool = False,
                 tasks: list[str] | None = None, profile: str | None = None, n_bootstrap: int = defaults.BOOTSTRAP,
                 seed: int = defaults.SEED,
                 arena_judgments: list[Path] | None = None, tasks_dir: Path | None = None,
                 group: str | None = None, all_groups: bool = False) -> list[Leaderboard]:
    """One leaderboard per group with `all_groups` (largest first), else the one `build` returns."""
    tasks = _check_options(run_dirs, tasks, allow_mixed=allow_mixed, group=group is not None,
                           all_groups=all_groups)
    opts = _Options(sort, tasks, n_bootstrap, seed, arena_judgments, tasks_dir)
    runs, left = load_runs(run_dirs, profile, tasks_dir, tasks, bool(arena_judgments))
    if not runs:
        raise UsageError("no run to rank: " + "; ".join(f"{x.run}: {x.reason}" for x in left),
                         "pass folders written by `jleval run` (e.g. runs/*)")
    _check_names(runs)
    if tasks:
        _restrict(runs, tasks, profile, opts)
    if allow_mixed:
        return [_rank(runs, opts, left, mixed=_differences(runs))]
    groups = group_runs(runs)
    if all_groups:
        chosen, tie = groups, None
    else:
        one, tie = choose_group(groups, runs, group, bool(arena_judgments))
        chosen = [one]
    tables = [_rank(g.runs, opts, left + _other_groups(groups, g), group=g, groups=[x.name for x in groups])
              for g in chosen]
    if tie:
        tables[0].notes.insert(0, tie)
    return tables


def _check_options(run_dirs: list[Path], tasks: list[str] | None, **flags: bool) -> list[str] | None:
    """The tasks asked for (None: all); refuses no run, an empty --tasks and flags that exclude each other."""
    if not run_dirs:
        raise UsageError("no run folder given", "pass one or more folders written by `jleval run`")
    given = ["--" + flag.replace("_", "-") for flag, on in flags.items() if on]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} exclude each other", "pass one of them")
    if tasks is not None:
        tasks = [t for t in tasks if t]
        if not tasks:
            raise UsageError("--tasks names no task", "e.g. --tasks jamp,jcommonsenseqa")
    return tasks


def _check_names(runs: list[ScoredRun]) -> None:
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"two runs have the same name: {', '.join(dupes)}",
                         "rename one run folder (its name is the row label)")


def _restrict(runs: list[ScoredRun], tasks: list[str], profile: str | None, opts: _Options) -> None:
    """AVG, categories, CIs and ranks over these tasks only: re-aggregated in memory, scores.json untouched."""
    from jleval.scoring import score_run

    for r in runs:
        r.scores = score_run(r.path, profile=r.scores.get("profile") or profile or defaults.PROFILE,
                             n_bootstrap=opts.n_bootstrap, seed=opts.seed, tasks=tasks, write=False,
                             tasks_dir=opts.tasks_dir)


def _default_sort(rows: list[dict[str, Any]], sort: str | None, arena: bool) -> str:
    """AVG, unless no row has one and arena ratings are there (a table of arena answers alone)."""
    if sort is not None:
        return sort
    return "arena_rating" if arena and all(r.get("AVG") is None for r in rows) else "AVG"


def _rank(runs: list[ScoredRun], opts: _Options, left_out: list[LeftOut], mixed: Sequence[str] = (),
          group: RunGroup | None = None, groups: Sequence[str] = ()) -> Leaderboard:
    """The leaderboard of `runs`: one row per run, ranked by the sort column, each row marked whether it beats
    the next beyond noise (paired bootstrap)."""
    star, other = _metric_columns(runs, opts.tasks, opts.tasks_dir)
    columns = [*HEAD_COLUMNS, *CATEGORY_COLUMNS, *star, *other, *NEXT_COLUMNS]
    values = [*HEAD_COLUMNS[4:], *CATEGORY_COLUMNS, *star, *other]
    lb = Leaderboard(columns + list(SETTINGS_COLUMNS) + list(MODEL_COLUMNS) + list(SOURCE_COLUMNS),
                     [_row(r, values, mixed) for r in runs], runs, "", list(mixed), left_out=left_out,
                     groups=list(groups))
    if group:
        lb.group, lb.settings = group.name, dict(group.settings)
    if opts.arena:
        _add_arena(lb, opts.arena, opts.seed)
    lb.sort = _default_sort(lb.rows, opts.sort, bool(opts.arena))
    _check_sort(lb.sort, columns, star + other, bool(opts.arena))
    lb.rows, lb.runs = _ranked(lb.rows, lb.runs, lb.sort)
    _mark_next(lb.rows, lb.runs, lb.sort, opts.n_bootstrap, opts.seed)
    arena_notes, lb.notes = lb.notes, []
    _notes(lb)
    lb.notes += arena_notes
    return lb


def row_mixes(lb: Leaderboard) -> list[list[str]]:
    """For each row of a mixed table, the mixed settings in which its run differs from most runs
    ("num_few_shots=0"): the MIXED mark of the HTML page and the charts. Empty lists for a table not mixed."""
    from collections import Counter

    common = {k: Counter(json.dumps(r.setting(k), default=str) for r in lb.runs).most_common(1)[0][0]
              for k in lb.mixed}
    return [[_show(k, r.setting(k)) if k == "tasks" else f"{k}={r.setting(k)}" for k in lb.mixed
             if json.dumps(r.setting(k), default=str) != common[k]] for r in lb.runs]


def _add_arena(lb: Leaderboard, judgments: list[Path], seed: int) -> None:
    from jleval.arena import rank_judgments

    ranking = rank_judgments(judgments, seed=seed)
    lb.arena = ranking
    by_model = {m["model"]: m for m in ranking["models"]}
    matched = set()
    for row in lb.rows:
        key = row["model"] if row["model"] in by_model else row["run"]
        if key not in by_model:
            row.update(dict.fromkeys(ARENA_COLUMNS))
            continue
        m = by_model[key]
        matched.add(key)
        row.update(arena_rating=m["rating"], arena_ci95_low=m["ci95"][0], arena_ci95_high=m["ci95"][1])
    unmatched = sorted(set(by_model) - matched)
    if unmatched:
        lb.notes.append(f"arena models that match no run (by model id or run folder name): {', '.join(unmatched)}; "
                        "their ratings are in the arena section only")
    i = lb.columns.index("num_few_shots")
    lb.columns[i:i] = ARENA_COLUMNS


def lower_is_better(col: str) -> bool:
    """Columns where less is better: out-of-label rates, and `<task>_<metric>` of a metric declared
    higher_is_better=False (jleval.metrics.METRICS)."""
    from jleval.metrics import METRICS

    if col.endswith("_out_of_label"):
        return True
    return any(not info.higher_is_better and col.endswith(f"_{name}") for name, info in METRICS.items())
