"""`jleval table --compare-styles RUN_BASIC RUN_COT`: the same model with basic and chain-of-thought prompts,
per task and per category: both scores, the paired difference (CoT − basic) with a 95% bootstrap CI over the
samples both runs share, and the share of CoT outputs whose final answer could not be extracted.

This module computes; jleval.render draws the result (render.console.print_comparison,
render.files.write_comparison)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from jleval import defaults
from jleval.errors import UsageError
from jleval.stats import PairedResult
from jleval.table import ScoredRun, load_run, paired_groups
from jleval.tasks import CATEGORIES

SAME = ("split", "num_few_shots", "max_num_samples", "profile")


#: Settings two runs must share, beside the model, to be compared as basic vs CoT.
SAME_SETTINGS = ("backend", "model_identity", "template", "chat_template", "system_prompt", "add_special_tokens",
                 "backend_options")


def _check_pair(basic: ScoredRun, cot: ScoredRun) -> None:
    """A basic run then a CoT run of the same model and settings, or a one-line UsageError."""
    styles = (basic.setting("prompt_style") or "basic", cot.setting("prompt_style") or "basic")
    if styles != ("basic", "cot"):
        raise UsageError(f"--compare-styles wants a basic run then a cot run; got {styles[0]} and {styles[1]}",
                         "pass RUN_BASIC RUN_COT (the runs' manifests record their prompt style)")
    values = {k: (basic.setting(k), cot.setting(k)) for k in SAME}
    values["model"] = (basic.manifest.get("model"), cot.manifest.get("model"))
    values.update({k: (basic.manifest.get("settings", {}).get(k), cot.manifest.get("settings", {}).get(k))
                   for k in SAME_SETTINGS})
    if None in values["model_identity"]:  # recorded by one run only: not counted as a difference
        del values["model_identity"]
    differ = [k for k, (a, b) in values.items() if a != b]
    if differ:
        raise UsageError(f"the two runs differ in more than the prompt style: {', '.join(differ)}",
                         "compare runs of the same model, split, shots, sample count and profile")


def _task_row(basic: ScoredRun, cot: ScoredRun, task: str, n_bootstrap: int, seed: int
              ) -> tuple[dict[str, Any] | None, str | None]:
    """A task's row (None when the two runs share no metric) and its ⭐ metric (None: it feeds no category)."""
    b, c = basic.scores["tasks"][task], cot.scores["tasks"][task]
    star = c.get("star_metric") or b.get("star_metric")
    # a task without a ⭐ metric (mgsm, jsts...) still gets its row, on its first metric; it feeds no category
    metric = star or next((m for m in c.get("metrics", {}) if m in b.get("metrics", {})), None)
    if metric is None:
        return None, None
    res = paired_groups(cot, basic, {"_": [(task, metric)]}, n_bootstrap, seed)
    row = {"level": "task", "name": task, "category": c.get("category"),
           "metric": metric if star else f"{metric} (no ⭐)", **_diff(res),
           "extraction_failure_rate": c.get("cot_extraction", {}).get("rate"), "tasks": task,
           "n_shared": res.n_shared if res else 0}
    return row, star if c.get("category") else None


def _category_row(basic: ScoredRun, cot: ScoredRun, cat: str, members: list[tuple[str, str | None]],
                  task_rows: list[dict[str, Any]], n_bootstrap: int, seed: int) -> dict[str, Any]:
    res = paired_groups(cot, basic, {cat: members}, n_bootstrap, seed)
    names = res.tasks if res else [t for t, _ in members]
    fails = [r["extraction_failure_rate"] for r in task_rows
             if r["name"] in names and r["extraction_failure_rate"] is not None]
    return {"level": "category", "name": cat, "category": cat, "metric": "⭐ mean", **_diff(res),
            "extraction_failure_rate": sum(fails) / len(fails) if fails else None,
            "tasks": " ".join(names), "n_shared": res.n_shared if res else 0}


def compare_styles(basic_dir: Path, cot_dir: Path, n_bootstrap: int = defaults.BOOTSTRAP, seed: int = defaults.SEED,
                   profile: str | None = None) -> dict[str, Any]:
    """Basic vs CoT per task and per category: both scores and the paired difference on shared samples."""
    basic, cot = load_run(Path(basic_dir), profile=profile), load_run(Path(cot_dir), profile=profile)
    _check_pair(basic, cot)
    rows: list[dict[str, Any]] = []
    by_cat: dict[str, list[tuple[str, str | None]]] = {}
    for task in cot.scores["tasks"]:
        if task not in basic.scores["tasks"]:
            continue
        row, star = _task_row(basic, cot, task, n_bootstrap, seed)
        if row is None:
            continue
        rows.append(row)
        if star:
            by_cat.setdefault(row["category"], []).append((task, star))
    task_rows = list(rows)
    rows += [_category_row(basic, cot, cat, by_cat[cat], task_rows, n_bootstrap, seed)
             for cat in CATEGORIES if cat in by_cat]
    return {"basic": str(basic.path), "cot": str(cot.path), "model": cot.manifest.get("model"), "rows": rows,
            "note": "basic, CoT and diff = CoT − basic are all computed on the samples both runs share "
                    "(paired bootstrap, 95% CI); a category row averages only the tasks both runs have (column "
                    "`tasks`), so it can differ from either run's category score; CoT outputs without an "
                    "extractable answer count as wrong (empty answer)"}


def _diff(res: PairedResult | None) -> dict[str, Any]:
    if res is None:
        return {"basic": None, "cot": None, "diff": None, "diff_ci_low": None, "diff_ci_high": None,
                "significant": None}
    return {"basic": res.mean_b, "cot": res.mean_a, "diff": res.diff, "diff_ci_low": res.ci_low,
            "diff_ci_high": res.ci_high, "significant": res.ci_low > 0 or res.ci_high < 0}
