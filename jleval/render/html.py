"""The leaderboard as one self-contained HTML page, from templates/leaderboard.html.j2.

The page shows rank, run, AVG, the categories present, the arena rating and ≫ first; the per-task metric columns
and the settings/model columns are folded behind toggles (columns no run has a value in are left out). The run
column stays in view when scrolling sideways, and hovering a run shows its model and settings. A header click
sorts best first (ascending for rank and lower-is-better columns), a second click reverses; the caption says
which column and direction. `#click=COL,COL` in the page's URL clicks those headers on load (for scripted
checks in a headless browser)."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jleval.render.cells import best_values, display_columns, fmt

if TYPE_CHECKING:
    from jleval.table import Leaderboard

TEMPLATE = "leaderboard.html.j2"
#: Column groups in page order: (key, header label, folded by default).
GROUPS = (("head", "", False), ("overall", "Overall", False), ("category", "Categories", False),
          ("arena", "Arena", False), ("next", "", False), ("metric", "Per-task metrics", True),
          ("info", "Settings & model", True))
GROUP_ORDER = [key for key, _, _ in GROUPS]
FOLDED = [key for key, _, folded in GROUPS if folded]
MAIN = {"rank": "head", "run": "head", "AVG": "overall", "arena_rating": "arena", "better_than_next": "next"}
LABELS = {"rank": "#", "better_than_next": "≫"}
HELP = {"rank": "rank by the table's sort column", "better_than_next":
        "better than the next row beyond noise (the 95% CI of the paired bootstrap difference excludes 0)",
        "AVG": "mean of the categories present, [95% CI]"}


@dataclass
class Column:
    name: str
    label: str
    sub: str    # a second header line (the metric of a `<task>_<metric>` column)
    group: str
    numeric: bool
    first: str  # the direction of the first click: "desc" (best first) or "asc"
    help: str


@dataclass
class Cell:
    text: str   # what is shown (escaped by the template)
    ci: str     # the interval, shown small after the value ("" when none)
    key: str    # the sort key in data-v (already escaped)
    best: bool  # the best value of its column


@dataclass
class Row:
    cells: list[Cell]
    about: str  # the run's model and settings (the run cell's tooltip)
    mixed: list[str] = field(default_factory=list)  # what this row differs in, in a mixed table


def _group(col: str) -> str:
    from jleval.table import (
        ARENA_COLUMNS,
        MODEL_COLUMNS,
        SETTINGS_COLUMNS,
        SOURCE_COLUMNS,
    )
    from jleval.tasks import CATEGORIES

    if col in MAIN:
        return MAIN[col]
    if col in CATEGORIES:
        return "category"
    if col in (*ARENA_COLUMNS, *SETTINGS_COLUMNS, *MODEL_COLUMNS, *SOURCE_COLUMNS, "model", "revision",
               "diff_to_next"):
        return "info"
    return "metric"


def _column(col: str, rows: list[dict[str, Any]], task_names: set[str]) -> Column:
    from jleval.table import lower_is_better

    values = [r.get(col) for r in rows if r.get(col) is not None]
    numeric = bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    first = "asc" if col == "rank" or lower_is_better(col) or not numeric else "desc"
    label, sub = LABELS.get(col, col), ""
    task = next((t for t in sorted(task_names, key=len, reverse=True) if col.startswith(f"{t}_")), None)
    if task:
        label, sub = task, col[len(task) + 1:]
    return Column(col, label, sub, _group(col), numeric, first, HELP.get(col, col))


def _columns(lb: Leaderboard) -> list[Column]:
    """The columns shown: every display column some row has a value in (rank and run always), by group."""
    tasks = {t for r in lb.runs for t in r.scores.get("tasks", {})}
    cols = [c for c in display_columns(lb.columns)
            if c in ("rank", "run") or any(r.get(c) not in (None, "") for r in lb.rows)]
    shown = sorted((_column(c, lb.rows, tasks) for c in cols), key=lambda c: GROUP_ORDER.index(c.group))
    return shown


#: Columns whose interval lives in other columns than `<col>_ci_low/_ci_high`, and their digits.
INTERVALS = {"arena_rating": ("arena_ci95_low", "arena_ci95_high", 1)}


def _cell(row: dict[str, Any], col: Column, best: dict[str, Any]) -> Cell:
    v = row.get(col.name)
    low, high, digits = INTERVALS.get(col.name, (f"{col.name}_ci_low", f"{col.name}_ci_high", 4))
    lo, hi = row.get(low), row.get(high)
    ci = f"[{fmt(lo, digits)}, {fmt(hi, digits)}]" if None not in (v, lo, hi) else ""
    key = "" if v is None else (f"{v}" if col.numeric else html.escape(str(v)))
    return Cell(fmt(v, digits) or "—", ci, key, best.get(col.name) is not None and v == best[col.name])


def _about(row: dict[str, Any]) -> str:
    """The tooltip of a run: what model, which settings, which engine (the folded columns, in words)."""
    def some(*pairs: tuple[str, Any]) -> str:
        return " · ".join(f"{k} {fmt(v)}" if k else fmt(v) for k, v in pairs if v not in (None, ""))

    shots = row.get("num_few_shots")
    lines = [f"run {row['run']}", some(("model", row.get("model")), ("revision", row.get("revision"))),
             some(("split", row.get("split")), ("", None if shots is None else f"{shots}-shot"),
                  ("style", row.get("prompt_style")), ("max samples", row.get("max_num_samples")),
                  ("profile", row.get("profile"))),
             some(("backend", row.get("backend")), ("engine", row.get("engine_version")),
                  ("jleval", row.get("jleval_version")), ("date", row.get("date"))),
             some(("architecture", row.get("architecture")), ("params", row.get("params")),
                  ("precision", row.get("precision")), ("license", row.get("license")),
                  ("base model", row.get("base_model")), ("chat template", row.get("chat_template")),
                  ("imported from", row.get("imported")))]
    return "\n".join(line for line in lines if line)


def _group_headers(columns: list[Column]) -> list[tuple[str, str, int, bool]]:
    """(group key, label, colspan, folded) for the group header row, in column order."""
    out: list[tuple[str, str, int, bool]] = []
    for key, label, folded in GROUPS:
        n = sum(1 for c in columns if c.group == key)
        if n:
            out.append((key, f"{label} ({n})" if folded else label, n, folded))
    return out


def leaderboard_html(lb: Leaderboard) -> str:
    from jleval.table import row_mixes

    columns = _columns(lb)
    # the best value of each column, where the rows differ (a column all rows tie in marks nothing)
    best = {c: v for c, v in best_values(lb.rows, [c.name for c in columns]).items()
            if len({r.get(c) for r in lb.rows}) > 1}
    rows = [Row([_cell(row, c, best) for c in columns], _about(row), mix) for row, mix in zip(lb.rows, row_mixes(lb))]
    return _environment().get_template(TEMPLATE).render(
        notes=lb.notes, sort=lb.sort, sort_dir=next((c.first for c in columns if c.name == lb.sort), "desc"),
        profiles=lb.profiles, group=lb.group, columns=columns, groups=_group_headers(columns), rows=rows,
        left_out=lb.left_out, folded=FOLDED)


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("jleval.render", "templates"), autoescape=False,
                      undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters["h"] = html.escape
    return env
