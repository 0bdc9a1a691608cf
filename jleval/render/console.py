"""rich terminal tables: the scores summary of one run, the leaderboard, the style comparison."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jleval.render.cells import best_values, fmt, fmt_ci

if TYPE_CHECKING:
    from rich.console import Console

    from jleval.table import Leaderboard


def _console(console: Console | None) -> Console:
    from rich.console import Console

    return console or Console(emoji=False)


# ----------------------------------------------------------------------------------------------- scores


def _category_table(scores: dict[str, Any], title: str):
    from rich.markup import escape
    from rich.table import Table

    cat = Table(title=title, show_lines=False)
    cat.add_column("category")
    cat.add_column("score [95% CI]", justify="right")
    cat.add_column("tasks")
    avg = scores.get("avg")
    if avg:
        cat.add_row("[bold]AVG[/bold]", f"[bold]{fmt_ci(avg['value'], avg['ci95'])}[/bold]",
                    f"{avg['n_categories']} categories")
    up = scores.get("avg_upstream")
    if up and scores.get("missing_categories"):
        cat.add_row("AVG (upstream, missing=0)", fmt_ci(up["value"], up["ci95"]), "")
    for name, c in {**scores["categories"], **scores.get("categories_extra", {})}.items():
        cat.add_row(name, fmt_ci(c["value"], c["ci95"]), ", ".join(c["tasks"]))
    for name, why in scores.get("missing_categories", {}).items():
        cat.add_row(f"[yellow]{name}[/yellow]", "[yellow]missing[/yellow]", escape(why))
    return cat


def _task_rows(name: str, t: dict[str, Any]):
    """The rows of one task in the per-task table: one per metric, the task's counts on the first."""
    ool = t.get("out_of_label")
    rate = f"{ool['rate']:.1%}" if ool and ool["rate"] is not None else ""
    errors = str(t["n_errors"]) if t["n_errors"] else ""
    for k, (metric, m) in enumerate(t["metrics"].items()):
        star = "⭐" if metric == t.get("star_metric") else ""
        value = fmt_ci(m["value"], m["ci95"]) if m["value"] is not None else "[yellow]not computed[/yellow]"
        task, counts = (name, (str(m["n"]), errors, rate)) if k == 0 else ("", ("", "", ""))
        yield (task, f"{metric}{star}", value, *counts)


def _task_table(scores: dict[str, Any]):
    from rich.console import JustifyMethod
    from rich.table import Table

    tt = Table(show_lines=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("task", "left"), ("metric", "left"), ("value [95% CI]", "right"), ("n", "right"), ("errors", "right"),
        ("out-of-label", "right"))
    for col, just in columns:
        tt.add_column(col, justify=just)
    for name, t in scores["tasks"].items():
        for row in _task_rows(name, t):
            tt.add_row(*row)
    return tt


def print_scores(scores: dict[str, Any], run_dir=None, console: Console | None = None) -> None:
    """A summary of scores.json content: AVG and categories with CIs, then one row per task and metric."""
    from rich.markup import escape

    console = _console(console)
    if not scores.get("tasks") and scores.get("skipped_tasks"):  # e.g. a run of the rakuda task alone
        for name, why in scores["skipped_tasks"].items():
            console.print(f"{escape(name)}: {escape(why)}")
        return
    title = f"{run_dir}  (profile {scores['profile']})" if run_dir else f"profile {scores['profile']}"
    console.print(_category_table(scores, title))
    console.print(_task_table(scores))
    for w in scores.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")


# ----------------------------------------------------------------------------------------------- leaderboard


def _leaderboard_cell(v: Any, best: Any, highlight: bool) -> str:
    """A score as ".812" (the leading 0 dropped, only there: a rating of 1090.5 stays 1090.5)."""
    if isinstance(v, float):
        s = fmt(v, 1 if abs(v) >= 10 else 3).removeprefix("0")
    else:
        s = fmt(v) if v is not None else "[dim]—[/dim]"
    return f"[bold green]{s}[/]" if highlight and best is not None and v == best else s


def _main_columns(lb: Leaderboard, present: list[str]) -> list[str]:
    """rank, run, AVG (when a row has one), the categories present, the arena rating, ≫; and the sort column."""
    has_avg = any(r.get("AVG") is not None for r in lb.rows)
    cols = ["rank", "run", *(["AVG"] if has_avg else []), *present, *(["arena_rating"] if lb.arena else []),
            "better_than_next"]
    if lb.sort not in cols:  # sorted by a metric column: show it
        cols.insert(2, lb.sort)
    return cols


#: How the leaderboard's columns are laid out: the run name folds onto more lines, scores stay on one.
RUN_COLUMN: dict[str, Any] = {"justify": "left", "no_wrap": False, "overflow": "fold", "min_width": 8}
SCORE_COLUMN: dict[str, Any] = {"justify": "right", "no_wrap": True, "overflow": "ellipsis", "min_width": None}


def print_leaderboard(lb: Leaderboard, console: Console | None = None) -> None:
    """The leaderboard's main columns (rank, run, AVG, the categories present, ≫), best values in green."""
    from rich import box
    from rich.table import Table

    from jleval.tasks import CATEGORIES

    console = _console(console)
    present = lb.scored_categories
    cols = _main_columns(lb, present)
    best = best_values(lb.rows, cols)
    group = f"group {lb.group}; " if lb.group else ""
    t = Table(title=f"jleval leaderboard (profile {lb.profiles}; sorted by {lb.sort}; {group}≫ = better than the "
                    "next row beyond noise)",
              box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    short = {"rank": "#", "better_than_next": "≫"}
    for c in cols:
        t.add_column(short.get(c, c), **(RUN_COLUMN if c == "run" else SCORE_COLUMN))
    for row in lb.rows:
        t.add_row(*(_leaderboard_cell(row.get(c), best.get(c), len(lb.rows) > 1) for c in cols))
    console.print(t)
    if missing := [c for c in CATEGORIES if c not in present]:
        console.print(f"[dim]no run has a score in: {', '.join(missing)}[/]")
    for n in lb.notes:
        console.print(f"[yellow]{n}[/]")


def print_left_out(tables: list[Leaderboard], console: Console | None = None) -> None:
    """One line per run given that is in no table, with the reason; with one table also the runs of the other
    groups (and how to rank them)."""
    from rich.markup import escape

    console = _console(console)
    several = len(tables) > 1
    left = [x for x in tables[0].left_out if not (several and x.group)]
    if left:
        console.print(f"[yellow]left out ({len(left)}):[/]")
    for x in left:
        console.print(f"  {escape(x.run)}: {escape(x.reason)}", soft_wrap=True)
    if not several and len(tables[0].groups) > 1:
        console.print("[dim]one table per group: --all-groups[/]")


# ----------------------------------------------------------------------------------------------- comparison


def _comparison_row(r: dict[str, Any]) -> tuple[str, ...]:
    diff = "—" if r["diff"] is None else f"{r['diff']:+.3f} [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}]"
    if r["significant"]:
        diff = f"[bold]{diff}[/]"
    rate = r["extraction_failure_rate"]
    name = r["name"] if r["level"] == "task" else f"[bold]{r['name']}[/]"
    return (name, r["metric"], fmt(r["basic"], 3) or "—", fmt(r["cot"], 3) or "—", diff,
            "—" if rate is None else f"{rate:.1%}")


def print_comparison(result: dict[str, Any], console: Console | None = None) -> None:
    """The basic-vs-CoT comparison: one row per task and per category, the paired difference in bold when its
    interval excludes 0."""
    from rich.table import Table

    console = _console(console)
    t = Table(title=f"basic vs chain-of-thought: {result['model'].get('id') if result['model'] else ''}")
    for c in ("", "metric", "basic", "CoT", "CoT − basic [95% CI]", "no answer"):
        t.add_column(c, justify="left" if c in ("", "metric") else "right")
    for r in result["rows"]:
        t.add_row(*_comparison_row(r))
    console.print(t)
    console.print(result["note"])


# ----------------------------------------------------------------------------------------------- arena


def print_arena(ranking, console: Console | None = None, err_console: Console | None = None) -> None:
    """The arena ranking: rating, ± (68%), 95% interval, P(> next), W-L-T; then the position term and warnings."""
    from rich.table import Table

    console = _console(console)
    table = Table(title=f"arena ({ranking.stats['outcomes']} matches, {ranking.method})")
    for col in ("#", "model", "rating", "± (68%)", "95% interval", "P(> next)", "W-L-T"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in ranking.rows:
        table.add_row(str(r.rank), r.model, f"{r.rating:.0f}",
                      "" if r.plus_minus_68 is None else f"{r.plus_minus_68:.0f}",
                      "" if r.ci95 is None else f"{r.ci95[0]:.0f}–{r.ci95[1]:.0f}",
                      "" if r.p_stronger_than_next is None else f"{r.p_stronger_than_next:.2f}",
                      f"{r.wins:g}-{r.losses:g}-{r.ties:g}")
    console.print(table)
    if ranking.position:
        console.print(f"first-position advantage: {ranking.position['rating_points']:+.0f} rating points")
    for w in ranking.warnings:
        (err_console or console).print(f"[yellow]warning:[/] {w}")
