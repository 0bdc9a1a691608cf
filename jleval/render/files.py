"""CSV, Markdown and JSON text of leaderboards, style comparisons and arena rankings, and the writers that put
them on disk all or nothing (everything is rendered first; a path that cannot be written leaves no new file)."""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jleval.errors import OutputError, UsageError
from jleval.render.cells import display_columns, fmt, with_ci

if TYPE_CHECKING:
    from jleval.arena.bt import Ranking
    from jleval.table import Leaderboard

FORMATS = ("csv", "md", "html", "json")
#: The format each --out extension names (any other extension: csv).
EXTENSIONS = {**{f: f for f in FORMATS}, "markdown": "md", "htm": "html"}


def format_for(out: Path, fmt_: str | None) -> str:
    """--format, or when it is not given, the one --out's extension names (csv when it names none)."""
    if fmt_ is not None:
        if fmt_ not in FORMATS:
            raise UsageError(f"unknown format {fmt_!r}", "use csv, md, html or json")
        return fmt_
    return EXTENSIONS.get(Path(out).suffix.lower().lstrip("."), "csv")


def _csv(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()


def _json_text(doc: Any) -> str:
    from jleval.fsutil import dumps_json

    return dumps_json(doc) + "\n"


def _write_all(files: dict[Path, bytes], out: Path) -> list[Path]:
    from jleval.fsutil import atomic_write_many

    try:
        atomic_write_many(files)
    except OSError as e:
        raise OutputError(f"cannot write {e.filename or out}: {e.strerror or e}",
                          "pass --out with a writable path") from None
    return list(files)


# ----------------------------------------------------------------------------------------------- leaderboard


def leaderboard_csv(lb: Leaderboard) -> str:
    return _csv(lb.columns, ([fmt(row.get(c)) for c in lb.columns] for row in lb.rows))


def leaderboard_markdown(lb: Leaderboard) -> str:
    cols = display_columns(lb.columns)
    out = [f"> {n}\n" for n in lb.notes] + ["\n" if lb.notes else ""]
    out.append("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
    for row in lb.rows:
        out.append("| " + " | ".join(with_ci(row, c).replace("|", "\\|") for c in cols) + " |\n")
    out.append(f"\nProfile: {lb.profiles}. Sorted by {lb.sort}. `better_than_next`: the 95% CI of the paired "
               "bootstrap difference to the next row (over the samples both runs share) excludes 0.\n")
    if lb.group:
        out.append(f"\nGroup of comparable runs: `{lb.group}`.\n")
    if lb.left_out:
        out.append("\nLeft out:\n\n" + "".join(f"- `{x.run}`: {x.reason}\n" for x in lb.left_out))
    return "".join(out)


def leaderboard_json(lb: Leaderboard) -> str:
    return _json_text(lb.to_json())


def leaderboard_html(lb: Leaderboard) -> str:
    from jleval.render.html import leaderboard_html as page

    return page(lb)


LEADERBOARD_TEXT: dict[str, Callable[[Leaderboard], str]] = {
    "csv": leaderboard_csv, "md": leaderboard_markdown, "html": leaderboard_html, "json": leaderboard_json}


def _leaderboard_files(lb: Leaderboard, out: Path, fmt: str, charts: bool) -> dict[Path, bytes]:
    files: dict[Path, bytes] = {out: LEADERBOARD_TEXT[fmt](lb).encode("utf-8")}
    if fmt == "csv":
        for suffix, other in ((".html", "html"), (".md", "md")):
            files.setdefault(out.with_suffix(suffix), LEADERBOARD_TEXT[other](lb).encode("utf-8"))
    if charts:
        from jleval.render.charts import leaderboard_charts

        files.update(leaderboard_charts(lb, out.parent, out.stem))
    return files


def group_path(out: Path, group: str | None) -> Path:
    """Where the table of one group goes with --all-groups: `leaderboard.csv` -> `leaderboard.<group>.csv`."""
    return out if not group else out.with_name(f"{out.stem}.{group}{out.suffix}")


def write_leaderboard(lb: Leaderboard, out: Path, fmt: str | None = None, charts: bool = True) -> list[Path]:
    """Write the table in `fmt` (from --out's extension when None); a CSV also gets its Markdown and HTML pages
    beside it; charts go beside `out` as `<stem>.radar.png` / `<stem>.avg_ci.png`. Everything is rendered first
    and written all or nothing: a path that cannot be written leaves no new file behind. Returns the paths."""
    return write_leaderboards([lb], out, fmt, charts)


def write_leaderboards(tables: Sequence[Leaderboard], out: Path, fmt: str | None = None, charts: bool = True,
                       per_group: bool = False) -> list[Path]:
    """`write_leaderboard` for several tables at once, all or nothing; with `per_group` each table's files are
    named after its group (`group_path`), else every table is written to `out` (pass one table)."""
    out = Path(out)
    if out.name in ("", ".", ".."):  # charts and pages are named after --out: it must name a file
        raise UsageError(f"--out {str(out)!r} does not name a file", "e.g. --out leaderboard.csv")
    fmt = format_for(out, fmt)
    files: dict[Path, bytes] = {}
    for lb in tables:
        files.update(_leaderboard_files(lb, group_path(out, lb.group) if per_group else out, fmt, charts))
    return _write_all(files, out)


# ----------------------------------------------------------------------------------------------- comparison

COMPARISON_COLUMNS = ("level", "name", "category", "metric", "basic", "cot", "diff", "diff_ci_low", "diff_ci_high",
                      "significant", "extraction_failure_rate", "n_shared", "tasks")


def comparison_csv(result: dict[str, Any]) -> str:
    return _csv(COMPARISON_COLUMNS, ([fmt(r.get(c)) for c in COMPARISON_COLUMNS] for r in result["rows"]))


def comparison_markdown(result: dict[str, Any]) -> str:
    cols = COMPARISON_COLUMNS
    lines = [f"> {result['note']}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in result["rows"]:
        lines.append("| " + " | ".join((fmt(r.get(c)) or "—").replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_comparison(result: dict[str, Any], out: Path, fmt: str | None = None) -> list[Path]:
    """Write the comparison as CSV, Markdown or JSON (from `fmt`, else from the extension of `out`), atomically."""
    out = Path(out)
    fmt = format_for(out, fmt)
    if fmt == "html":
        raise UsageError("--compare-styles writes csv, md or json", "pass --out style-comparison.csv (or .md, .json)")
    text = {"csv": comparison_csv, "md": comparison_markdown, "json": _json_text}[fmt](result)
    return _write_all({out: text.encode("utf-8")}, out)


# ----------------------------------------------------------------------------------------------- arena

ARENA_COLUMNS = ("rank", "model", "rating", "plus_minus_68", "ci68_low", "ci68_high", "ci95_low", "ci95_high",
                 "p_stronger_than_next", "strength", "matches", "wins", "losses", "ties")


def _r1(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def arena_rows(ranking: Ranking) -> list[dict[str, Any]]:
    """Flat rows (the CSV's columns), ratings rounded to 0.1 point."""
    out = []
    for r in ranking.rows:
        ci68, ci95 = r.ci68 or (None, None), r.ci95 or (None, None)  # no interval: both ends empty
        out.append({
            "rank": r.rank, "model": r.model, "rating": _r1(r.rating), "plus_minus_68": _r1(r.plus_minus_68),
            "ci68_low": _r1(ci68[0]), "ci68_high": _r1(ci68[1]), "ci95_low": _r1(ci95[0]), "ci95_high": _r1(ci95[1]),
            "p_stronger_than_next": None if r.p_stronger_than_next is None else round(r.p_stronger_than_next, 4),
            "strength": round(r.strength, 5), "matches": r.matches, "wins": r.wins, "losses": r.losses,
            "ties": r.ties,
        })
    return out


def arena_csv(ranking: Ranking) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=ARENA_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(arena_rows(ranking))  # None is written as an empty cell
    return buf.getvalue()


def arena_json(ranking: Ranking) -> str:
    from jleval.fsutil import dumps_json

    return dumps_json(ranking.to_json(), indent=2) + "\n"


def write_arena(ranking: Ranking, out_dir: Path | str, title: str | None = None,
                stem: str = "arena") -> dict[str, Path]:
    """Write <out_dir>/<stem>.csv, .json and .png, all or nothing. Returns the paths by kind."""
    from jleval.render.charts import arena_chart

    out = Path(out_dir)
    paths = {"csv": out / f"{stem}.csv", "json": out / f"{stem}.json", "png": out / f"{stem}.png"}
    _write_all({paths["csv"]: arena_csv(ranking).encode("utf-8"), paths["json"]: arena_json(ranking).encode("utf-8"),
                paths["png"]: arena_chart(ranking, title)}, out)
    return paths
