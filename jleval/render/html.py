"""The leaderboard as one self-contained HTML page (click a header to sort), from templates/leaderboard.html.j2."""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jleval.render.cells import best_values, display_columns, fmt, with_ci

if TYPE_CHECKING:
    from jleval.table import Leaderboard

TEMPLATE = "leaderboard.html.j2"


@dataclass
class Cell:
    text: str   # what is shown (escaped by the template)
    key: str    # the sort key in data-v (already escaped)
    best: bool  # the best value of its column


def _cell(row: dict[str, Any], col: str, best: dict[str, Any]) -> Cell:
    from jleval.tasks import CATEGORIES

    v = row.get(col)
    text = with_ci(row, col) if col in ("AVG", *CATEGORIES) else (fmt(v) or "—")
    key = "" if v is None else (f"{v}" if isinstance(v, (int, float)) else html.escape(str(v)))
    return Cell(text, key, best.get(col) is not None and v == best[col])


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("jleval.render", "templates"), autoescape=False,
                      undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters["h"] = html.escape
    return env


def leaderboard_html(lb: "Leaderboard") -> str:
    cols = display_columns(lb.columns)
    best = best_values(lb.rows, cols)
    rows = [[_cell(row, c, best) for c in cols] for row in lb.rows]
    return _environment().get_template(TEMPLATE).render(notes=lb.notes, sort=lb.sort, profiles=lb.profiles, columns=cols, rows=rows)
