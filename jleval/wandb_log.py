"""Optional Weights & Biases logging (`--wandb PROJECT` on run, score and table; `pip install 'jleval[wandb]'`).

What is logged, as llm-jp-eval's users know it from its own W&B runs:
    leaderboard_table  one row per jleval run: run_name, the llm-jp-eval score keys (`<task>_<metric>`, the
                       categories, AVG: llm-jp-eval's mean over all 11 categories), jleval's AVG over the
                       categories present, the model columns and the settings
    radar_table        run_name, category, score (W&B draws its radar chart from it), and `radar_chart`, jleval's
                       own radar PNG
    output_table       one row per sample: run_name, basemodel_name, target_dataset, num_few_shots, data_type, id,
                       input, pred, true, generation, scores (JSON), error
and the run's settings as the W&B run's config. `wandb` is imported only here, only when asked. W&B's own
environment variables apply: WANDB_MODE=offline logs into WANDB_DIR (default ./wandb) without network, for a later
`wandb sync`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jleval.errors import JlevalError, UsageError

if TYPE_CHECKING:
    from jleval.table import Leaderboard

OUTPUT_COLUMNS = ("run_name", "basemodel_name", "target_dataset", "num_few_shots", "data_type", "id", "input",
                  "pred", "true", "generation", "scores", "error")


#: W&B's own rule for a project name (wandb_settings.validate_project): at most 128 characters, none of these.
PROJECT_MAX = 128
PROJECT_FORBIDDEN = "/\\#?%:"


def check_project(project: str | None) -> str | None:
    """Refuse, before anything runs, a --wandb project name W&B would refuse after the work is done."""
    if project is None:
        return None
    bad = sorted({c for c in project if c in PROJECT_FORBIDDEN})
    problems = [(bad, f"contains {' '.join(repr(c) for c in bad)}"), (not project.strip(), "is empty"),
                (len(project) > PROJECT_MAX, f"is longer than {PROJECT_MAX} characters")]  # the first one is said
    for found, why in problems:
        if found:
            raise UsageError(f"--wandb {project!r}: the W&B project name {why}",
                             f"a project name of at most {PROJECT_MAX} characters without / \\ # ? % : (the "
                             "entity goes in $WANDB_ENTITY, not in front of the project)")
    return project


def _wandb():
    try:
        import wandb
    except ImportError:
        raise UsageError("--wandb needs the wandb package", "pip install 'jleval[wandb]' (or pip install wandb)") \
            from None
    return wandb


def _number(v: Any) -> Any:
    return float(v) if isinstance(v, str) and v.replace(".", "", 1).isdigit() else v


def leaderboard_rows(lb: Leaderboard) -> tuple[list[str], list[list[Any]]]:
    """The leaderboard table: upstream's score keys per run, then jleval's columns that are not scores."""
    from jleval.export import upstream_scores
    from jleval.table import MODEL_COLUMNS, SETTINGS_COLUMNS

    ups = [upstream_scores(run.scores) for run in lb.runs]
    keys = sorted({k for u in ups for k in u})
    extra = ["AVG_present_categories", "model", *MODEL_COLUMNS, *SETTINGS_COLUMNS, "imported"]
    rows = {row["run"]: row for row in lb.rows}  # run names are unique in a leaderboard
    data = []
    for run, u in zip(lb.runs, ups):
        row = rows[run.name]
        values = [_number(u.get(k)) for k in keys]
        data.append([run.name, *values, row.get("AVG"), *[_plain(row.get(c)) for c in extra[1:]]])
    return ["run_name", *keys, *extra], data


def _plain(v: Any) -> Any:
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)


def radar_rows(lb: Leaderboard) -> list[list[Any]]:
    from jleval.tasks import CATEGORIES

    return [[row["run"], c, row.get(c)] for row in lb.rows for c in CATEGORIES if row.get(c) is not None]


def output_rows(run_dir: Path) -> list[list[Any]]:
    from jleval.export import load_scored, to_jsonl_rows

    data = load_scored(run_dir)
    return [[r["run"], r["model"], r["task"], r["num_few_shots"], r["split"], r["id"], r["input"], r["pred"],
             r["gold"], r["generation"], json.dumps(r["scores"], ensure_ascii=False), r["error"]]
            for r in to_jsonl_rows(data)]


def _radar_image(wandb, lb: Leaderboard):
    import io

    from PIL import Image

    from jleval.render.charts import leaderboard_charts

    charts = leaderboard_charts(lb, Path("."), "w")
    png = charts.get(Path("w.radar.png"))
    return None if png is None else wandb.Image(Image.open(io.BytesIO(png)))


def log_leaderboard(lb: Leaderboard, project: str, name: str | None = None) -> Path:
    """One W&B run holding the whole leaderboard (every run of `lb`): the three tables and the radar chart.
    Returns the W&B run's local folder."""
    wandb = _wandb()
    columns, data = leaderboard_rows(lb)
    config = {"jleval_runs": [r.name for r in lb.runs], "sort": lb.sort, "mixed": lb.mixed,
              "settings": {r.name: r.manifest.get("settings") for r in lb.runs}}
    try:
        run = wandb.init(project=project, name=name or "+".join(r.name for r in lb.runs)[:120], config=config,
                         job_type="evaluation")
        run.log({"leaderboard_table": wandb.Table(columns=columns, data=data)})
        run.log({"radar_table": wandb.Table(columns=["run_name", "category", "score"], data=radar_rows(lb))})
        image = _radar_image(wandb, lb)
        if image is not None:
            run.log({"radar_chart": image})
        outputs = [row for r in lb.runs for row in output_rows(r.path)]
        run.log({"output_table": wandb.Table(columns=list(OUTPUT_COLUMNS), data=outputs)})
        folder = Path(run.dir).parent
        run.finish()
    except JlevalError:
        raise
    except Exception as e:  # noqa: BLE001 - W&B's own errors (no API key online, a refused connection): the scores are saved
        raise JlevalError(f"W&B logging to project {project!r} failed: {type(e).__name__}: {e}",
                          "the scores are saved; log in (wandb login) or set WANDB_MODE=offline and "
                          "`wandb sync` later") from None
    return folder


def log_runs(run_dirs: list[Path], project: str) -> list[Path]:
    """One W&B run per jleval run (for `run --wandb` and `score --wandb`)."""
    from jleval.table import build

    return [log_leaderboard(build([Path(d)]), project, name=Path(d).name) for d in run_dirs]
