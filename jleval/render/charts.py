"""PNG charts (matplotlib with the Agg backend, imported only here and only when a chart is drawn).
Every function returns PNG bytes; the writers in render.files put them on disk."""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jleval.render.cells import fmt

if TYPE_CHECKING:
    from jleval.arena.bt import ModelRating, Ranking
    from jleval.table import Leaderboard


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **kwargs)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- leaderboard


def abbreviate(name: str, width: int) -> str:
    """`name` in at most `width` characters, the middle elided ("…")."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "…" + name[-(width - 1 - head):]


def short_name(name: str, width: int = 34) -> str:
    """A run name for a chart title: up to two lines of `width` characters, broken after a separator (- _ .)
    where one is near the end of the first line, the middle elided ("…") when it is longer still."""
    name = abbreviate(name, 2 * width)
    if len(name) <= width:
        return name
    cut = max((i + 1 for i, ch in enumerate(name[:width]) if ch in "-_. "), default=0)
    cut = cut if cut > width // 2 else width
    return name[:cut] + "\n" + abbreviate(name[cut:], width)


def _title(row: dict[str, Any], mix: list[str]) -> str:
    mixed = "MIXED: " + ", ".join(mix) + "\n" if mix else ""
    return mixed + short_name(str(row["run"])) + f"\nAVG {fmt(row.get('AVG'), 3) or '—'}"


def _radar_panel(ax, row: dict[str, Any], cats: list[str], angles: list[float], mix: list[str]) -> None:
    have = [(a, row[c]) for a, c in zip(angles, cats) if row.get(c) is not None]
    color, title_color = ("#c0392b", "#c0392b") if mix else ("C0", "black")  # a run that differs: red
    if have:
        a, v = [x for x, _ in have], [y for _, y in have]
        ax.plot(a + a[:1], v + v[:1], color=color, marker="o", markersize=3)
        ax.fill(a + a[:1], v + v[:1], alpha=0.25, color=color)
    ax.set_xticks(angles)
    ax.set_xticklabels([c if row.get(c) is not None else f"{c} –" for c in cats], fontsize=9)
    for label, c in zip(ax.get_xticklabels(), cats):
        if row.get(c) is None:
            label.set_color("#999999")  # no score in this category: left out of the polygon, not drawn as 0
    ax.tick_params(axis="x", pad=4)
    ax.set_ylim(0, 1)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0])
    ax.set_yticklabels(["", "0.5", "", "1.0"], fontsize=7, color="#777777")
    ax.set_rlabel_position(180 / len(cats))  # between the first two axes, away from their labels
    ax.set_title(_title(row, mix), fontsize=9, pad=16, color=title_color)


def _radar(rows: list[dict[str, Any]], cats: list[str], mixes: list[list[str]]) -> bytes:
    """One polar panel per run; a category a run lacks is left out of its polygon (its label greyed, "–"),
    not drawn as 0; a run that differs in a mixed table's settings is drawn red and marked MIXED."""
    import numpy as np

    plt = _pyplot()
    n = len(rows)
    ncol = min(n, 3)
    nrow = (n + ncol - 1) // ncol
    fig = plt.figure(figsize=(4.6 * ncol, 4.8 * nrow))
    angles = np.linspace(0, 2 * np.pi, len(cats), endpoint=False).tolist()
    for i, (row, mix) in enumerate(zip(rows, mixes)):
        _radar_panel(fig.add_subplot(nrow, ncol, i + 1, projection="polar"), row, cats, angles, mix)
    fig.tight_layout(h_pad=2.5, w_pad=2.0)
    try:
        return _png(fig, dpi=110, bbox_inches="tight")  # titles and labels never cut at the edges
    finally:
        plt.close(fig)


def _avg_bars(rows: list[dict[str, Any]], mixes: list[list[str]]) -> bytes:
    """AVG per run with its 95% CI, horizontal bars best at the top (long run names stay readable); rows of
    a mixed table that differ are red and marked MIXED."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.42 * len(rows)))
    y = np.arange(len(rows))[::-1]
    avg = np.array([r["AVG"] for r in rows])
    lo, hi = (np.array([r["AVG"] if r.get(end) is None else r[end] for r in rows])  # no interval: no error bar
              for end in ("AVG_ci_low", "AVG_ci_high"))
    colors = ["#c0392b" if m else "C0" for m in mixes]
    ax.barh(y, avg, xerr=[avg - lo, hi - avg], capsize=3, color=colors, height=0.6)
    ax.set_yticks(y)
    ax.set_yticklabels([abbreviate(str(r["run"]), 44) for r in rows], fontsize=8)
    for yy, v, h, m in zip(y, avg, hi, mixes):
        ax.text(min(h, 1.0) + 0.01, yy, f"{v:.3f}" + ("  MIXED: " + ", ".join(m) if m else ""), va="center",
                fontsize=8, color="#c0392b" if m else "#333333")
    ax.set_xlabel("AVG (bars: 95% CI)")
    ax.set_xlim(0, 1.25 if any(mixes) else 1.1)
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.grid(axis="x", color="#eeeeee")
    fig.tight_layout()
    try:
        return _png(fig, dpi=110)
    finally:
        plt.close(fig)


def leaderboard_charts(lb: Leaderboard, out_dir: Path, stem: str = "leaderboard") -> dict[Path, bytes]:
    """A category radar per run (with 3 categories or more) and AVG with 95% CI bars: {path: PNG bytes}."""
    from jleval.table import row_mixes

    out_dir = Path(out_dir)
    charts: dict[Path, bytes] = {}
    mixes = row_mixes(lb)
    cats = lb.scored_categories
    if len(cats) >= 3:
        charts[out_dir / f"{stem}.radar.png"] = _radar(lb.rows, cats, mixes)
    keep = [i for i, r in enumerate(lb.rows) if r.get("AVG") is not None]
    if keep:
        charts[out_dir / f"{stem}.avg_ci.png"] = _avg_bars([lb.rows[i] for i in keep], [mixes[i] for i in keep])
    return charts


# ----------------------------------------------------------------------------------------------- arena


def _arena_label(r: ModelRating) -> str:
    label = f"{r.rating:.0f}" + (f" ± {r.plus_minus_68:.0f}" if r.plus_minus_68 is not None else "")
    if r.p_stronger_than_next is not None:
        label += f"   P(> next) {r.p_stronger_than_next:.2f}"
    return label


def _arena_row(ax, k: int, r: ModelRating) -> None:
    if r.ci95:
        ax.hlines(k, *r.ci95, color="#6b8fb3", lw=1.2)
    if r.ci68:
        ax.hlines(k, *r.ci68, color="#1f4e79", lw=4.0)
    ax.plot(r.rating, k, "o", color="#c0392b", ms=5, zorder=3)
    right = r.ci95[1] if r.ci95 else r.rating
    ax.text(right, k, "  " + _arena_label(r), va="center", fontsize=8)


ARENA_NOTES = {"bootstrap": "\nbars: 68% (thick) and 95% (thin) bootstrap intervals",
               "posterior": "\nbars: 68% (thick) and 95% (thin) posterior intervals"}


def arena_chart(ranking: Ranking, title: str | None = None) -> bytes:
    """Like Rakuda's ranking chart: each model's rating with its 68% (thick) and 95% (thin) intervals."""
    import numpy as np

    from jleval.arena.bt import INIT

    plt = _pyplot()
    rows = ranking.rows[::-1]  # best at the top
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.38 * len(rows)), dpi=120)
    try:
        ax.axvline(INIT, color="#bbbbbb", lw=0.8, zorder=0)
        for k, r in enumerate(rows):
            _arena_row(ax, k, r)
        ax.set_yticks(y)
        ax.set_yticklabels([r.model for r in rows], fontsize=9)
        lo = min((r.ci95[0] if r.ci95 else r.rating) for r in rows)
        hi = max((r.ci95[1] if r.ci95 else r.rating) for r in rows)
        pad = max(40.0, 0.12 * (hi - lo))
        ax.set_xlim(lo - pad, hi + (4.0 if ranking.method == "posterior" else 2.2) * pad)
        ax.set_xlabel("rating (mean 1000; 400/ln 10 points per unit of Bradley–Terry strength)"
                      + ARENA_NOTES.get(ranking.method, ""), fontsize=9)
        ax.set_title(title or "Arena ranking (Bradley–Terry)", fontsize=11)
        ax.grid(axis="x", color="#eeeeee")
        fig.tight_layout()
        return _png(fig)
    finally:
        plt.close(fig)
