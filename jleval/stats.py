"""The statistics behind every interval and every "is it better" in jleval: seeded percentile bootstrap over
samples, and the paired bootstrap of a difference between two runs.

The seeding is defined here once: a task's resampling stream is `default_rng([seed, crc32(task name)])`, so the
same task is resampled identically wherever it appears (a run's own CI, the AVG's replicate, a paired difference)
for the same seed and sample count.

numpy is imported inside the functions (this module is imported by the table and scoring modules, which
`jleval --help` must not pay numpy for).
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from jleval import defaults

if TYPE_CHECKING:
    import numpy as np

CI_LEVEL = 0.95
#: The largest --bootstrap accepted: replicates x samples indices are held in memory at once.
MAX_BOOTSTRAP = 100_000


def task_rng(seed: int, task: str) -> np.random.Generator:
    """The resampling stream of one task (the same in scoring, table and compare)."""
    import numpy as np

    return np.random.default_rng([seed, zlib.crc32(task.encode("utf-8"))])


def bootstrap_indices(seed: int, task: str, n: int, n_bootstrap: int) -> np.ndarray | None:
    """(n_bootstrap, n) sample indices drawn with replacement from the task's stream; None when there is
    nothing to draw (no samples or no replicates)."""
    if not n or not n_bootstrap:
        return None
    return task_rng(seed, task).integers(0, n, size=(n_bootstrap, n))


def percentile_ci(reps: np.ndarray | None, level: float = CI_LEVEL) -> list[float] | None:
    """The percentile interval of bootstrap replicates ([low, high]); None without replicates."""
    import numpy as np

    if reps is None or len(reps) == 0:
        return None
    alpha = (1 - level) / 2 * 100
    lo, hi = np.percentile(reps, [alpha, 100 - alpha])
    return [float(lo), float(hi)]


def mean_of_replicates(reps_list: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """The element-wise mean of replicate vectors (a category from its tasks, AVG from its categories);
    None as soon as one member has none."""
    import numpy as np

    if not reps_list or any(r is None for r in reps_list):
        return None
    return np.mean(cast("list[np.ndarray]", reps_list), axis=0)


@dataclass
class PairedResult:
    diff: float                 # mean(a) - mean(b), aggregated task -> category -> overall
    ci_low: float
    ci_high: float
    mean_a: float               # a's value on the shared samples, aggregated the same way
    mean_b: float
    tasks: list[str]            # the tasks that had shared samples
    n_shared: int


@dataclass
class PairedTask:
    """One task's per-sample values of runs a and b on the samples both share (same order)."""
    category: str
    task: str
    a: np.ndarray
    b: np.ndarray


def paired_bootstrap(per_task: list[PairedTask], n_bootstrap: int = defaults.BOOTSTRAP,
                     seed: int = defaults.SEED) -> PairedResult | None:
    """Bootstrap the difference a - b: each task's shared samples are resampled (the same indices for both
    runs, the task's own stream), task means are averaged within a category, categories are averaged."""
    import numpy as np

    if not per_task:
        return None
    by_cat: dict[str, list[PairedTask]] = {}
    for p in per_task:
        by_cat.setdefault(p.category, []).append(p)
    reps = np.zeros((n_bootstrap, len(by_cat)))
    point = np.zeros((3, len(by_cat)))
    for ci, cat in enumerate(sorted(by_cat)):
        task_reps, task_point = [], []
        for p in by_cat[cat]:
            d = p.a - p.b
            idx = task_rng(seed, p.task).integers(0, len(d), size=(n_bootstrap, len(d)))
            task_reps.append(d[idx].mean(axis=1))
            task_point.append((d.mean(), p.a.mean(), p.b.mean()))
        reps[:, ci] = np.mean(task_reps, axis=0)
        point[:, ci] = np.mean(task_point, axis=0)
    lo, hi = np.percentile(reps.mean(axis=1), [2.5, 97.5])
    diff, mean_a, mean_b = point.mean(axis=1)
    return PairedResult(float(diff), float(lo), float(hi), float(mean_a), float(mean_b),
                        [p.task for p in per_task], sum(len(p.a) for p in per_task))
