"""The display layer: everything jleval shows or writes about scores, tables, comparisons and arena rankings.

The compute modules (jleval.scoring, jleval.table, jleval.compare, jleval.arena.bt) return data and never draw;
this package draws it:

    render.console   rich terminal tables (scores summary, leaderboard, style comparison, arena ranking)
    render.files     CSV / Markdown / JSON text and the all-or-nothing writers (`write_leaderboard`, ...)
    render.html      the leaderboard page, from templates/leaderboard.html.j2
    render.charts    PNG charts (matplotlib, imported only when a chart is drawn)
    render.cells     how one value is printed (shared by every format)

Render modules import the compute modules' data types; no compute module imports this package.
"""
