"""`jleval table --compare-styles RUN_BASIC RUN_COT`: the same model with basic and chain-of-thought prompts,
per task and per category: both scores, the paired difference (CoT − basic) with a 95% bootstrap CI over the
samples both runs share, and the share of CoT outputs whose final answer could not be extracted.

This module computes; jleval.render draws the result (render.console.print_comparison, render.files.write_comparison)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from jleval.errors import UsageError
from jleval.stats import PairedResult
from jleval.table import load_run, paired_groups
from jleval.tasks import CATEGORIES

SAME = ("split", "num_few_shots", "max_num_samples", "profile")


def compare_styles(basic_dir: Path, cot_dir: Path, n_bootstrap: int = 1000, seed: int = 0,
                   profile: str | None = None) -> dict[str, Any]:
    basic, cot = load_run(Path(basic_dir), profile=profile), load_run(Path(cot_dir), profile=profile)
    styles = (basic.setting("prompt_style") or "basic", cot.setting("prompt_style") or "basic")
    if styles != ("basic", "cot"):
        raise UsageError(f"--compare-styles wants a basic run then a cot run; got {styles[0]} and {styles[1]}",
                         "pass RUN_BASIC RUN_COT (the runs' manifests record their prompt style)")
    differ = [k for k in SAME if basic.setting(k) != cot.setting(k)]
    if basic.manifest.get("model") != cot.manifest.get("model"):
        differ.append("model")
    for key in ("backend", "model_identity", "template", "chat_template", "system_prompt", "add_special_tokens",
                "backend_options"):
        a, b = basic.manifest.get("settings", {}).get(key), cot.manifest.get("settings", {}).get(key)
        if a != b and not (key == "model_identity" and (a is None or b is None)):
            differ.append(key)
    if differ:
        raise UsageError(f"the two runs differ in more than the prompt style: {', '.join(differ)}",
                         "compare runs of the same model, split, shots, sample count and profile")
    rows = []
    shared = [t for t in cot.scores["tasks"] if t in basic.scores["tasks"]]
    by_cat: dict[str, list[tuple[str, str]]] = {}
    for task in shared:
        b, c = basic.scores["tasks"][task], cot.scores["tasks"][task]
        star = c.get("star_metric") or b.get("star_metric")
        # a task without a ⭐ metric (mgsm, jsts...) still gets its row, on its first metric; it feeds no category
        metric = star or next((m for m in c.get("metrics", {}) if m in b.get("metrics", {})), None)
        if metric is None:
            continue
        res = paired_groups(cot, basic, {"_": [(task, metric)]}, n_bootstrap, seed)
        ext = c.get("cot_extraction") or {}
        rows.append({"level": "task", "name": task, "category": c.get("category"),
                     "metric": metric if star else f"{metric} (no ⭐)", **_diff(res),
                     "extraction_failure_rate": ext.get("rate"), "tasks": task,
                     "n_shared": res.n_shared if res else 0})
        if star and c.get("category"):
            by_cat.setdefault(c["category"], []).append((task, star))
    for cat in CATEGORIES:
        if cat not in by_cat:
            continue
        res = paired_groups(cot, basic, {cat: by_cat[cat]}, n_bootstrap, seed)
        names = res.tasks if res else [t for t, _ in by_cat[cat]]
        fails = [r["extraction_failure_rate"] for r in rows
                 if r["level"] == "task" and r["name"] in names and r["extraction_failure_rate"] is not None]
        rows.append({"level": "category", "name": cat, "category": cat, "metric": "⭐ mean", **_diff(res),
                     "extraction_failure_rate": sum(fails) / len(fails) if fails else None,
                     "tasks": " ".join(names), "n_shared": res.n_shared if res else 0})
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
