"""How one value is printed, the same in every format: floats with 4 digits, missing values empty."""
from __future__ import annotations

import math
from typing import Any

#: The leaderboard columns shown with their interval ("0.8123 [0.79, 0.83]") in Markdown and HTML.
CI_SUFFIXES = ("_ci_low", "_ci_high")
#: Columns that are never shown in Markdown/HTML (the CSV and JSON keep them).
HIDDEN = ("diff_ci_low", "diff_ci_high", "engine_version", "jleval_version", "mixed", "complete")


def fmt(v: Any, digits: int = 4) -> str:
    """A cell: "" for missing or NaN, true/false for bools, `digits` decimals for floats."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def fmt_ci(v: float | None, ci: list[float] | None = None, digits: int = 4) -> str:
    """A value with its interval, "—" when missing (the scores summary)."""
    if v is None:
        return "—"
    s = f"{v:.{digits}f}"
    if ci:
        s += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    return s


def with_ci(row: dict[str, Any], col: str) -> str:
    """A leaderboard cell with its `<col>_ci_low/_ci_high` interval, "—" when missing."""
    v = fmt(row.get(col))
    lo, hi = row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
    return f"{v} [{fmt(lo)}, {fmt(hi)}]" if v and lo is not None else (v or "—")


def display_columns(columns: list[str]) -> list[str]:
    """The leaderboard columns Markdown and HTML show (intervals go into their value's cell)."""
    return [c for c in columns if not c.endswith(CI_SUFFIXES) and c not in HIDDEN]


#: Numeric columns that are settings or differences, not scores: never marked best.
NOT_RANKED = ("rank", "num_few_shots", "max_num_samples", "diff_to_next", "avg_upstream", "params")


def best_values(rows: list[dict[str, Any]], cols: list[str]) -> dict[str, Any]:
    """The best value of every score column among `rows` (the lowest where lower is better)."""
    from jleval.table import lower_is_better

    best = {}
    for c in cols:
        vals: list[float] = [r[c] for r in rows
                             if isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)]
        if vals and c not in NOT_RANKED:
            best[c] = min(vals) if lower_is_better(c) else max(vals)
    return best
