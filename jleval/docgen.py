"""Generate docs/tasks.md from tasks/*.toml (`python -m jleval.docgen`); a test fails when the file is stale."""
from __future__ import annotations

import sys
from pathlib import Path

from jleval.tasks import CATEGORIES, EXTRA_CATEGORIES, TaskSpec, all_tasks

HEADER = """# Task reference

Generated from `tasks/*.toml` by `python -m jleval.docgen` — do not edit by hand (a test fails when this file is
stale). ⭐ marks the metric behind the Open Japanese LLM Leaderboard column; categories in AVG: {cats}.
Few-shots are the first N train samples (default 4); a number in the column is the task's fixed override.

"""


def render_tasks_md() -> str:
    tasks = all_tasks()
    out = [HEADER.format(cats=", ".join(CATEGORIES))]
    out.append("| task | category | metrics | output_length | few-shots | splits | licence | commercial use "
               "| in `all` |\n")
    out.append("|---|---|---|---:|---|---|---|---|---|\n")
    out += [_table_row(t) for t in tasks.values()]
    out.append("\n## Details\n")
    out += [_details(t) for t in tasks.values()]
    order = [c for c in CATEGORIES + EXTRA_CATEGORIES if any(t.category == c for t in tasks.values())]
    out.append(f"\nCategories present: {', '.join(order)}.\n")
    return "".join(out)


def _table_row(t: TaskSpec) -> str:
    metrics = ", ".join(f"{m} ⭐" if m == t.star_metric else m for m in t.metrics)
    shots = "4 (default)" if t.num_few_shots is None else str(t.num_few_shots)
    in_all = "no"
    if t.in_all:
        in_all = "yes" if t.commercial_use else "with --include-non-commercial"
    return (f"| `{t.name}` | {t.category} | {metrics} | {t.output_length} | {shots} | {', '.join(t.splits)} "
            f"| {t.license} | {'yes' if t.commercial_use else 'no'} | {in_all} |\n")


def _details(t: TaskSpec) -> str:
    out = [f"\n### {t.name}\n\n{t.description}\n\n"]
    if t.label_list:
        out.append(f"Labels: {', '.join(f'`{label}`' for label in t.label_list)}\n\n")
    out.append("Instruction (verbatim):\n\n```text\n" + t.instruction + "\n```\n\nRaw sources:\n\n")
    for s in t.sources:
        pin = f"sha256 `{s.sha256[:16]}…`" if s.sha256 else "no pinned sha256 (see note)"
        kind = f" (directory, `{s.glob}`)" if s.kind == "dir" else ""
        note = f" — {s.note}" if s.note else ""
        out.append(f"- `{s.path}`{kind}: <{s.url}>, {pin}{note}\n")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    target = Path(argv[0] if argv else Path(__file__).resolve().parents[1] / "docs" / "tasks.md")
    target.write_text(render_tasks_md(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
