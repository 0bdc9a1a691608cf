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


def _radar(rows: list[dict[str, Any]], cats: list[str]) -> bytes:
    """One polar panel per run; a category a run lacks is left out of its polygon (and labelled), not drawn as 0."""
    import numpy as np

    plt = _pyplot()
    n = len(rows)
    ncol = min(n, 3)
    nrow = (n + ncol - 1) // ncol
    fig = plt.figure(figsize=(4.2 * ncol, 4.2 * nrow))
    angles = np.linspace(0, 2 * np.pi, len(cats), endpoint=False).tolist()
    for i, row in enumerate(rows):
        ax = fig.add_subplot(nrow, ncol, i + 1, projection="polar")
        have = [(a, row[c]) for a, c in zip(angles, cats) if row.get(c) is not None]
        if have:
            a, v = [x for x, _ in have], [y for _, y in have]
            ax.plot(a + a[:1], v + v[:1], color="C0", marker="o", markersize=3)
            ax.fill(a + a[:1], v + v[:1], alpha=0.25, color="C0")
        ax.set_xticks(angles)
        ax.set_xticklabels([c if row.get(c) is not None else f"{c}\n(none)" for c in cats], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{row['run']}\nAVG {fmt(row.get('AVG'), 3) or '—'}", fontsize=9)
    fig.tight_layout()
    try:
        return _png(fig, dpi=110)
    finally:
        plt.close(fig)


def _avg_bars(rows: list[dict[str, Any]]) -> bytes:
    """AVG per run with its 95% CI as error bars."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(rows) + 2), 3.6))
    x = np.arange(len(rows))
    avg = np.array([r["AVG"] for r in rows])
    lo = np.array([r.get("AVG_ci_low") if r.get("AVG_ci_low") is not None else r["AVG"] for r in rows])
    hi = np.array([r.get("AVG_ci_high") if r.get("AVG_ci_high") is not None else r["AVG"] for r in rows])
    ax.bar(x, avg, yerr=[avg - lo, hi - avg], capsize=4, color="C0")
    ax.set_xticks(x)
    ax.set_xticklabels([r["run"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("AVG (95% CI)")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    try:
        return _png(fig, dpi=110)
    finally:
        plt.close(fig)


def leaderboard_charts(lb: "Leaderboard", out_dir: Path, stem: str = "leaderboard") -> dict[Path, bytes]:
    """A category radar per run (with 3 categories or more) and AVG with 95% CI bars: {path: PNG bytes}."""
    from jleval.tasks import CATEGORIES

    out_dir = Path(out_dir)
    charts: dict[Path, bytes] = {}
    cats = [c for c in CATEGORIES if any(r.get(c) is not None for r in lb.rows)]
    if len(cats) >= 3:
        charts[out_dir / f"{stem}.radar.png"] = _radar(lb.rows, cats)
    rows = [r for r in lb.rows if r.get("AVG") is not None]
    if rows:
        charts[out_dir / f"{stem}.avg_ci.png"] = _avg_bars(rows)
    return charts


# ----------------------------------------------------------------------------------------------- arena


def _arena_label(r: "ModelRating") -> str:
    label = f"{r.rating:.0f}" + (f" ± {r.plus_minus_68:.0f}" if r.plus_minus_68 is not None else "")
    if r.p_stronger_than_next is not None:
        label += f"   P(> next) {r.p_stronger_than_next:.2f}"
    return label


def _arena_row(ax, k: int, r: "ModelRating") -> None:
    if r.ci95:
        ax.hlines(k, *r.ci95, color="#6b8fb3", lw=1.2)
    if r.ci68:
        ax.hlines(k, *r.ci68, color="#1f4e79", lw=4.0)
    ax.plot(r.rating, k, "o", color="#c0392b", ms=5, zorder=3)
    right = r.ci95[1] if r.ci95 else r.rating
    ax.text(right, k, "  " + _arena_label(r), va="center", fontsize=8)


ARENA_NOTES = {"bootstrap": "\nbars: 68% (thick) and 95% (thin) bootstrap intervals",
               "posterior": "\nbars: 68% (thick) and 95% (thin) posterior intervals"}


def arena_chart(ranking: "Ranking", title: str | None = None) -> bytes:
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
