"""The `jleval` command line: thin commands over the library.

Each command parses its options, calls one library function, and renders the result with rich. Errors a user
can act on (JlevalError) become one message and a non-zero exit; JLEVAL_DEBUG=1 shows the traceback.
Heavy modules (torch, transformers, vllm) are imported only inside the commands that need them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from jleval import __version__, defaults
from jleval.cli_options import backend_options
from jleval.errors import JlevalError, UsageError

app = typer.Typer(
    name="jleval",
    help="Evaluate Japanese LLMs: preprocess -> run -> score -> table (llm-jp-eval v1.4.1 compatible).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is plain: "[run]", "[[model]]", "jleval[wandb]" are shown, not read as markup
)


class _Console(Console):
    """Text that cannot be written as UTF-8 (a path with bytes that are not UTF-8, a lone surrogate) is shown
    with backslash escapes instead of failing the command."""

    def _render_buffer(self, buffer):
        return super()._render_buffer(buffer).encode("utf-8", "backslashreplace").decode("utf-8")


console = _Console(emoji=False)  # "file.jsonl:100:" must not become an emoji
err_console = _Console(stderr=True, emoji=False)


def _arena_names(name: list[str] | None, run_dirs: list[Path]) -> list[str | None] | None:
    """--name RUN_DIR=NAME items -> one name (or None) per run folder."""
    if not name:
        return None
    mapping = {}
    for item in name:
        rd, sep, nm = item.partition("=")
        if not nm:  # no "=" leaves nm empty too
            raise UsageError(f"--name {item!r} is not RUN_DIR=NAME", "e.g. --name runs/llm-jp_test_0shot=llm-jp-3-13b")
        mapping[Path(rd).resolve()] = nm
    names = [mapping.pop(Path(rd).resolve(), None) for rd in run_dirs]
    if mapping:
        raise UsageError(f"--name names a folder that is not among the runs: {', '.join(map(str, mapping))}")
    return names


def _version(value: bool) -> None:
    if value:
        console.print(f"jleval {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    pass


TasksOpt = Annotated[
    str, typer.Option("--tasks", "-t", help="'all', 'leaderboard', or a comma-separated list of task names.")
]
RawDirOpt = Annotated[
    Path | None, typer.Option("--raw-dir", help="Read raw benchmark files from DIR (offline; same layout as the "
                                                "download cache).")
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Output folder for the jaster sets (default: $JLEVAL_HOME/jaster).")
]
VersionOpt = Annotated[str, typer.Option("--version", help="Dataset version folder name.")]
TasksDirOpt = Annotated[
    Path | None, typer.Option("--tasks-dir",
        help="Folder of your own task files (<name>.toml with [files]; see docs/own-tasks.md), known alongside the "
             "built-in tasks.")
]
NcOpt = Annotated[
    bool, typer.Option("--include-non-commercial",
        help="Include non-commercial sets (xlsum_ja) in 'all' and 'leaderboard'.")
]
def _check_wandb(project: str | None) -> str | None:
    from jleval.wandb_log import check_project  # light: wandb itself is imported only when logging

    return check_project(project)


WandbOpt = Annotated[str | None, typer.Option("--wandb", callback=_check_wandb,
    help="Also log the leaderboard row, radar and per-sample table to this W&B project (pip install 'jleval[wandb]'; "
         "WANDB_MODE=offline logs locally).")]


def _warn_left_out(tasks: str, include_non_commercial: bool, tasks_dir: Path | None = None) -> None:
    from jleval.tasks import left_out_non_commercial

    names = left_out_non_commercial(tasks, include_non_commercial, tasks_dir)
    if names:
        err_console.print(f"[yellow]note:[/] left out {', '.join(names)} (non-commercial licence): pass "
                          "--include-non-commercial, or name the task, to include it"
                          + (" (the leaderboard's SUM column needs xlsum_ja)" if "xlsum_ja" in names
                             and "leaderboard" in tasks else ""))


@app.command("tasks")
def tasks_cmd(
    tasks: Annotated[str | None, typer.Option("--tasks", "-t",
        help="'all', 'leaderboard' or names (default: every task file, the rakuda arena included).")] = None,
    include_non_commercial: Annotated[bool, typer.Option(
        "--include-non-commercial/--commercial-only",
        help="List non-commercial tasks too (default), or only those licensed for commercial use.")] = True,
    tasks_dir: TasksDirOpt = None,
) -> None:
    """List tasks: category, metrics, output length, few-shots, licence, commercial use."""
    from rich import box
    from rich.table import Table

    from jleval.tasks import catalogue, resolve_tasks

    if tasks is None:
        specs = [t for t in catalogue(tasks_dir).values() if t.commercial_use or include_non_commercial]
    else:
        specs = resolve_tasks(tasks, include_non_commercial=include_non_commercial, tasks_dir=tasks_dir)

    # one metric per line, so the table fits an 80-column terminal without cutting names; names, numbers and
    # flags never wrap
    table = Table(title=f"jleval tasks ({len(specs)})", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                  caption="⭐ = the metric in the leaderboard's AVG; len = output_length (max new tokens); "
                          "shots = few-shot examples; comm. = commercial use allowed")
    for col, kw in (("task", dict(no_wrap=True, min_width=17)), ("cat.", dict(no_wrap=True)),
                    ("metrics", dict(overflow="fold", min_width=16, max_width=18)),
                    ("len", dict(justify="right", no_wrap=True)),
                    ("shots", dict(justify="right", no_wrap=True)), ("licence", dict(max_width=13)),
                    ("comm.", dict(no_wrap=True))):
        table.add_column(col, **kw)
    for s in specs:
        metrics = "\n".join(f"{m}⭐" if m == s.star_metric else m for m in s.metrics)
        shots = "4" if s.num_few_shots is None else str(s.num_few_shots)
        table.add_row(s.name, s.category, metrics, str(s.output_length), shots, s.license,
                      "yes" if s.commercial_use else "[red]no[/red]")
    console.print(table)


@app.command("preprocess")
def preprocess_cmd(
    tasks: TasksOpt = "all",
    raw_dir: RawDirOpt = None,
    out: DataDirOpt = None,
    version: VersionOpt = defaults.DATA_VERSION,
    include_non_commercial: NcOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild sets that already exist.")] = False,
    tasks_dir: TasksDirOpt = None,
) -> None:
    """Turn raw benchmark files into jaster evaluation sets (llm-jp-eval v1.4.1 splits and layout)."""
    from jleval.jaster.preprocess import preprocess
    from jleval.resources import default_data_dir
    from jleval.tasks import resolve_tasks

    specs = resolve_tasks(tasks, include_non_commercial=include_non_commercial, tasks_dir=tasks_dir)
    _warn_left_out(tasks, include_non_commercial, tasks_dir)
    from jleval.render.progress import PreprocessProgress

    with PreprocessProgress(err_console) as (on_task, reporter):
        report = preprocess(specs, out or default_data_dir(), raw_dir=raw_dir, version=version, force=force,
                            reporter=reporter, on_task=on_task)
    _print_preprocess_report(report, version)
    if not report.ok:
        what, hint = "Some raw files are missing", ("pass --raw-dir DIR holding these files, or run without "
                                                    "--raw-dir on a machine with network")
        if any(s.files for s in specs if s.name in {r.task for r in report.results if r.missing}):
            what, hint = "Some files are missing", ("write the files your task files name under [files] (paths are "
                                                    "relative to the task file)")
        err_console.print(f"[yellow]{what}: {escape(hint)}.[/]")
        raise typer.Exit(code=3)


def _print_preprocess_report(report, version: str) -> None:
    from rich.table import Table

    table = Table(title=f"jaster {version} -> {report.out_dir}")
    splits = ("train", "dev", "test")
    table.add_column("task", justify="left")
    table.add_column("status", justify="left")
    for col in splits:
        table.add_column(col, justify="right")
    colours = {"built": "green", "cached": "cyan", "partial": "yellow", "missing": "red"}
    for r in report.results:
        table.add_row(r.task, f"[{colours[r.status]}]{r.status}[/]", *(str(r.sizes.get(s, "-")) for s in splits))
    console.print(table)
    for w in report.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}")
    for r in report.results:
        for w in r.warnings:
            err_console.print(f"[yellow]warning:[/] {w}")
        for m in r.missing:
            err_console.print(f"[red]{r.task}: missing[/] {escape(m)}")


SplitOpt = Annotated[str, typer.Option("--split", help="Which split to evaluate: dev (the leaderboard's) or test.")]
ShotsOpt = Annotated[int, typer.Option("--num-few-shots",
    help="Few-shot examples: the first N train samples (0-shot tasks stay 0).")]
MaxOpt = Annotated[int, typer.Option("--max-num-samples", help="Evaluate the first N samples of each set (-1 = all).")]
TemplateOpt = Annotated[str, typer.Option("--template",
    help="Prompt layout: v1.4.1 (default, upstream's Alpaca-JA), v2, or a Jinja2 file.")]


@app.command("prompts")
def prompts_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the <task>.eval-prompt.json files.")],
    tasks: TasksOpt = "all",
    split: SplitOpt = defaults.SPLIT,
    num_few_shots: ShotsOpt = defaults.NUM_FEW_SHOTS,
    max_num_samples: MaxOpt = defaults.MAX_NUM_SAMPLES,
    template: TemplateOpt = defaults.TEMPLATE,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Preprocessed sets (default: $JLEVAL_HOME/jaster).")] = None,
    raw_dir: RawDirOpt = None,
    version: VersionOpt = defaults.DATA_VERSION,
    include_non_commercial: NcOpt = False,
    tasks_dir: TasksDirOpt = None,
) -> None:
    """Write the rendered prompts in upstream's <task>.eval-prompt.json dump format, to inspect and diff."""
    from jleval.api import dump_prompts

    _warn_left_out(tasks, include_non_commercial, tasks_dir)
    skipped: dict[str, str] = {}
    written = dump_prompts(out, tasks=tasks, split=split, num_few_shots=num_few_shots,
                           max_num_samples=max_num_samples, template=template, data_dir=data_dir, raw_dir=raw_dir,
                           version=version, include_non_commercial=include_non_commercial, skipped=skipped,
                           tasks_dir=tasks_dir)
    for path, n in written:
        console.print(f"{path}  ({n} prompts)")
    for task, why in skipped.items():
        err_console.print(f"[yellow]skipped {task}:[/] {escape(why)}")
    if skipped:
        raise typer.Exit(3)


@app.command("run")
@backend_options
def run_cmd(
    model: Annotated[str, typer.Argument(help="Model id or local folder (or a served model's name for --backend "
                                              "openai).")],
    backend_options: dict[str, Any],
    tasks: TasksOpt = "all",
    backend: Annotated[str, typer.Option("--backend",
        help="auto | vllm | hf | openai | oracle | majority")] = defaults.BACKEND,
    split: SplitOpt = defaults.SPLIT,
    num_few_shots: ShotsOpt = defaults.NUM_FEW_SHOTS,
    max_num_samples: MaxOpt = defaults.MAX_NUM_SAMPLES,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of run folders.")] = Path("runs"),
    run_name: Annotated[str | None, typer.Option(
        "--run-name", help="Run folder name (default: from model, split, shots, and a short hash of the other settings "
                           "that change outputs).")] = None,
    template: TemplateOpt = defaults.TEMPLATE,
    prompt_style: Annotated[str, typer.Option("--prompt-style",
        help="basic (default) or cot (chain of thought).")] = defaults.PROMPT_STYLE,
    chat_template: Annotated[bool, typer.Option("--chat-template/--no-chat-template",
        help="Wrap prompts in the tokenizer's chat template.")] = False,
    system_prompt: Annotated[str | None, typer.Option(
        "--system-prompt", help="System message (with --chat-template).")] = None,
    add_special_tokens: Annotated[bool, typer.Option(
        "--add-special-tokens/--no-add-special-tokens", help="Prepend BOS (off on the leaderboard).")] = False,
    stop_rule: Annotated[bool, typer.Option("--stop-at-blank-line/--no-stop-at-blank-line",
        help="Stop where v1.4.1 post-processing cuts anyway.")] = True,
    revision: Annotated[str | None, typer.Option("--revision", help="Model revision (branch, tag or commit).")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Preprocessed sets (default: $JLEVAL_HOME/jaster).")] = None,
    raw_dir: RawDirOpt = None,
    version: VersionOpt = defaults.DATA_VERSION,
    include_non_commercial: NcOpt = False,
    tasks_dir: TasksDirOpt = None,
    score: Annotated[bool, typer.Option("--score/--no-score", help="Score the run when it finishes.")] = True,
    wandb: WandbOpt = None,
) -> None:
    """Run MODEL over every task in one batched pass; outputs are cached per sample and a re-run resumes."""
    from jleval.run import RunOptions

    if wandb and not score:  # checked before the run, not after it
        raise UsageError("--wandb logs scores: it needs --score", "drop --no-score, or log later with "
                         f"`jleval score RUN_DIR --wandb {wandb}`")
    _warn_left_out(tasks, include_non_commercial, tasks_dir)
    opts = RunOptions(model=model, backend=backend, tasks=tasks, split=split, max_num_samples=max_num_samples,
                      num_few_shots=num_few_shots, template=template, prompt_style=prompt_style,
                      chat_template=chat_template, system_prompt=system_prompt,
                      add_special_tokens=add_special_tokens, stop_rule=stop_rule, revision=revision,
                      data_dir=data_dir, raw_dir=raw_dir, version=version,
                      include_non_commercial=include_non_commercial, out=out, run_name=run_name, tasks_dir=tasks_dir,
                      backend_options=backend_options)
    result = _run_with_progress(opts)
    total = _print_run_summary(result)
    if score:
        from jleval import scoring

        _print_scores(scoring.score_run(result.run_dir, tasks_dir=tasks_dir), result.run_dir)  # the default profile
        _log_wandb([result.run_dir], wandb)
    if total["errors"] or result.skipped_tasks:
        raise typer.Exit(3)


def _run_with_progress(opts):
    from jleval.run import run

    try:
        from jleval.render.progress import RunProgress

        with RunProgress(err_console) as progress:
            return run(opts, progress=progress)
    except KeyboardInterrupt:  # typer would turn it into a silent exit 130
        err_console.print("[red]interrupted[/]: every completion written so far is kept; re-run the same command "
                          "to resume")
        raise typer.Exit(130) from None


def _print_run_summary(result) -> dict[str, int]:
    from jleval.run import suffix_note

    for task, why in result.skipped_tasks.items():
        err_console.print(f"[yellow]skipped {task}:[/] {escape(why)}")
    total = {k: sum(c[k] for c in result.counts.values()) for k in ("total", "cached", "generated", "errors")}
    console.print(f"[bold]{result.run_dir}[/]: {total['total']} samples in {len(result.counts)} tasks "
                  f"({total['generated']} generated, {total['cached']} from cache, {total['errors']} errors)")
    note = suffix_note(result.run_dir, result.name_settings)
    if note:
        console.print(note, markup=False, highlight=False)
    if result.skipped_tasks:
        err_console.print(f"[yellow]{len(result.skipped_tasks)} of {len(result.counts) + len(result.skipped_tasks)} "
                          f"requested tasks were skipped ({', '.join(result.skipped_tasks)}); the reasons are above "
                          "(exit status 3).[/]")
    if total["errors"]:
        err_console.print(f"[yellow]{total['errors']} requests failed (the reasons are in the outputs' `error` field); "
                          "re-run the same command to retry them.[/]")
    return total


def _log_wandb(run_dirs, project) -> None:
    if project:
        from jleval.wandb_log import log_runs

        for folder in log_runs(run_dirs, project):
            err_console.print(f"W&B: logged to {folder}")  # stderr: `score --json` output stays JSON


def _print_scores(s, run_dir) -> None:
    from jleval.render.console import print_scores

    print_scores(s, run_dir, console=console)
    console.print(f"scores: {Path(run_dir) / 'scores.json'}  (per sample: {Path(run_dir) / 'scores'}/)")


def _comma_list(text: str | None) -> list[str] | None:
    """--tasks a,b -> ["a", "b"]; None (every task) when not given."""
    return [t.strip() for t in text.split(",")] if text else None


def _print_wrote(paths) -> None:
    for p in paths:
        console.print(f"wrote {p}")


ProfileOpt = Annotated[str, typer.Option("--profile",
    help="llm-jp-eval-1.4.1 (leaderboard-comparable, default) or jleval (upstream bugs fixed).")]


@app.command("score")
def score_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders written by `jleval run` (runs/<name>).")],
    profile: ProfileOpt = defaults.PROFILE,
    bootstrap: Annotated[int, typer.Option("--bootstrap",
        help="Bootstrap replicates for the 95% CIs (0 = none).", min=0)] = defaults.BOOTSTRAP,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.", min=0)] = defaults.SEED,
    tasks: Annotated[str | None, typer.Option("--tasks", help="Comma-separated subset of the run's tasks.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print scores.json instead of the tables.")] = False,
    tasks_dir: TasksDirOpt = None,
    wandb: WandbOpt = None,
) -> None:
    """Score cached outputs (no GPU): writes RUN/scores.json and RUN/scores/<task>.jsonl."""
    from jleval import scoring
    from jleval.fsutil import dumps_json

    for run_dir in run_dirs:
        s = scoring.score_run(run_dir, profile=profile, n_bootstrap=bootstrap, seed=seed, tasks=_comma_list(tasks),
                              tasks_dir=tasks_dir)
        if as_json:
            print(dumps_json(s))
        else:
            _print_scores(s, run_dir)
    _log_wandb(run_dirs, wandb)


@app.command("table")
def table_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders (runs/<name>); unscored runs are scored first.")],
    out: Annotated[Path | None, typer.Option("--out", "-o",
        help="Output file (default: leaderboard.csv; style-comparison.csv with --compare-styles). A CSV also "
             "gets .md, .html and PNG charts beside it.")] = None,
    fmt: Annotated[str | None, typer.Option("--format",
        help="csv | md | html | json (default: from --out's extension, else csv).")] = None,
    sort: Annotated[str | None, typer.Option("--sort",
        help="AVG (the default), a category (NLI, QA, …), a metric column, or arena_rating with --arena (the default "
             "when the runs have arena answers only).")] = None,
    tasks: Annotated[str | None, typer.Option("--tasks",
        help="Only these tasks' metric columns (comma-separated).")] = None,
    allow_mixed: Annotated[bool, typer.Option("--allow-mixed",
        help="Rank runs with different settings together (the table is marked MIXED).")] = False,
    group: Annotated[str | None, typer.Option("--group",
        help="Rank this group of comparable runs (the names are printed; default: the largest group).")] = None,
    all_groups: Annotated[bool, typer.Option("--all-groups",
        help="One table per group of comparable runs, files named <out stem>.<group>.<ext>.")] = False,
    profile: Annotated[str | None, typer.Option("--profile", help="Re-score with this profile first.")] = None,
    arena: Annotated[list[Path] | None, typer.Option(
        "--arena", help="Judgments JSONL from `jleval arena judge`: adds arena ratings.")] = None,
    compare_styles: Annotated[bool, typer.Option(
        "--compare-styles", help="Compare two runs, basic vs chain-of-thought, per task and category.")] = False,
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="Write the PNG charts.")] = True,
    tasks_dir: TasksDirOpt = None,
    wandb: WandbOpt = None,
) -> None:
    """The combined leaderboard: AVG, categories, ⭐ metrics, CIs, and whether each run beats the next."""
    from jleval import table
    from jleval.render import console as show
    from jleval.render import files

    if compare_styles:
        from jleval import compare

        if len(run_dirs) != 2:
            raise UsageError("--compare-styles takes exactly two runs: RUN_BASIC RUN_COT")
        ignored = [flag for flag, given in (("--sort", sort is not None), ("--tasks", tasks), ("--arena", arena),
                                            ("--allow-mixed", allow_mixed), ("--group", group is not None),
                                            ("--all-groups", all_groups), ("--no-charts", not charts),
                                            ("--wandb", wandb)) if given]
        if ignored:
            raise UsageError(f"{', '.join(ignored)} do(es) not apply to --compare-styles",
                             "compare the two runs as they are (every shared task), with --out and --format")
        result = compare.compare_styles(run_dirs[0], run_dirs[1], profile=profile)
        show.print_comparison(result, console=console)
        _print_wrote(files.write_comparison(result, out or Path("style-comparison.csv"), fmt=fmt))
        return
    given_out, out = out is not None, out or Path("leaderboard.csv")
    tables = table.build_tables(run_dirs, sort=sort, allow_mixed=allow_mixed,
                                tasks=_comma_list(tasks), profile=profile,
                                arena_judgments=arena, tasks_dir=tasks_dir, group=group, all_groups=all_groups)
    written = files.write_leaderboards(tables, out, fmt=fmt, charts=charts, per_group=all_groups)
    for lb in tables:
        show.print_leaderboard(lb, console=console)
    show.print_left_out(tables, console=err_console)
    for p in written:
        console.print(f"wrote {p if given_out else p.resolve()}")
    if not given_out:
        err_console.print(f"no --out: wrote {out} (and its companions) into the current folder; pass --out to choose")
    if wandb:
        from jleval.wandb_log import log_leaderboard

        for lb in tables:
            err_console.print(f"W&B: logged to {log_leaderboard(lb, wandb)}")


@app.command("export")
def export_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders (runs/<name>); unscored runs are scored first.")],
    out: Annotated[Path, typer.Option("--out", "-o",
        help="Folder for the files: <run>.json (llm-jp-eval) or <run>.jsonl.")],
    fmt: Annotated[str, typer.Option("--format",
        help="llm-jp-eval (its results file layout) | jsonl (one row per sample with its scores).")] = "llm-jp-eval",
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Preprocessed sets, for the prompt templates (default: $JLEVAL_HOME/jaster).")] = None,
) -> None:
    """Write scored runs in llm-jp-eval's results format (or JSON Lines), one file per run."""
    from jleval.export import export_runs

    paths, notes = export_runs(run_dirs, out, fmt=fmt, data_dir=data_dir)
    for n in notes:
        console.print(f"[yellow]note:[/] {escape(n)}")
    _print_wrote(paths)


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="An llm-jp-eval results JSON, or a JSON Lines file of generations (task, "
                                              "id, generation).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The new run folder, e.g. runs/their-model.")],
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Preprocessed sets, for JSON Lines without gold/input (default: "
                           "$JLEVAL_HOME/jaster).")] = None,
    split: Annotated[str, typer.Option("--split",
        help="JSON Lines without a split field: the split the ids index (dev or test).")] = "dev",
    score: Annotated[bool, typer.Option("--score/--no-score",
        help="Score the imported run and compare with the file's own scores.")] = True,
) -> None:
    """Turn another tool's results into a run folder that `jleval score` and `jleval table` accept."""
    from jleval import importer

    res = importer.import_results(file, out, data_dir=data_dir, split=split)
    for n in res.notes:
        console.print(f"[yellow]note:[/] {escape(n)}")
    console.print(f"imported {sum(res.tasks.values())} samples of {len(res.tasks)} task(s) into {res.run_dir}")
    if score:
        from jleval import scoring
        from jleval.render.console import print_scores

        s = scoring.score_run(res.run_dir)
        print_scores(s, res.run_dir, console=console)
        for d in importer.score_differences(s, res.file_scores):
            console.print(f"[yellow]differs from the file:[/] {escape(d)}")


@app.command("view")
def view_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(
        help="One run folder, or two to compare side by side on the same samples.")],
    out: Annotated[Path, typer.Option("--out", "-o",
        help="Folder for the report (index.html + data/); an earlier report there is replaced.")],
    tasks: Annotated[str | None, typer.Option("--tasks",
        help="Only these tasks (comma-separated; default: every task with outputs).")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Preprocessed sets the prompts are re-rendered from (default: "
                           "$JLEVAL_HOME/jaster).")] = None,
    tasks_dir: TasksDirOpt = None,
) -> None:
    """A static, offline HTML report of every sample: prompt, generation, gold, answer, metrics; filter, search."""
    from jleval.view import build_view

    report = build_view(run_dirs, out, data_dir=data_dir, tasks_dir=tasks_dir,
                        tasks=[t.strip() for t in tasks.split(",") if t.strip()] if tasks else None)
    for w in report.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}")
    console.print(f"{report.n_samples} samples of {len(report.tasks)} tasks in {report.n_chunks} data files "
                  f"({report.bytes_total / 1e6:.1f} MB)")
    console.print(f"open {report.index}")


@app.command("sweep")
def sweep_cmd(
    sweep_file: Annotated[Path, typer.Argument(
        help="SWEEP.toml: [run] (the task selection, defaults) and one [[model]] table per model (docs/gpu.md).")],
    dry_run: Annotated[bool, typer.Option("--dry-run",
        help="Print the plan (models, backends, options, run folders) and run nothing.")] = False,
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="Write the leaderboard's PNG charts.")] = True,
) -> None:
    """Many models x one task selection: run each (resumable), score, and write one leaderboard."""
    from jleval import sweep

    plan = sweep.load(sweep_file)
    for row in sweep.plan_rows(plan):
        options = " ".join(f"{k}={v}" for k, v in row["options"].items())
        console.print(f"{row['name']}: {row['model']} --backend {row['backend']} {options}".rstrip()
                      + f" -> {row['run_dir']} ({row['state']})", highlight=False, soft_wrap=True)
    if dry_run:
        console.print(f"{len(plan.models)} model(s), "
                      f"{'one after another' if plan.parallel == 1 else f'{plan.parallel} at once'}; "
                      f"leaderboard -> {plan.leaderboard}")
        return
    result = sweep.run_sweep(plan, say=lambda s: err_console.print(f"[cyan]{escape(s)}[/]", soft_wrap=True))
    if result.leaderboard is not None:
        from jleval.render import console as show
        from jleval.render import files

        show.print_leaderboard(result.leaderboard, console=console)
        _print_wrote(files.write_leaderboard(result.leaderboard, plan.leaderboard, charts=charts))
    for name, why in result.failed.items():
        err_console.print(f"[red]{escape(name)} failed:[/] {escape(why)}", highlight=False, soft_wrap=True)
    if not result.ran:
        raise JlevalError(f"no model of {sweep_file} could run ({len(result.failed)} failed, reasons above)",
                          "fix the models named above, then re-run the same command")
    errors = sweep.errors_in(result)
    if errors:
        err_console.print(f"[yellow]{errors} requests failed; re-run the same command to retry them[/]")
    if result.failed or errors:
        raise typer.Exit(3)


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for everything the demo writes.")] = Path("demo-out"),
    max_num_samples: Annotated[int, typer.Option("--max-num-samples", help="Samples per task.")] = 20,
) -> None:
    """The whole pipeline offline: bundled sample -> tiny model + oracle + majority -> scores -> leaderboard."""
    from jleval.demo import run_demo
    from jleval.render.console import print_leaderboard

    result = run_demo(out, max_num_samples=max_num_samples, say=lambda s: err_console.print(f"[cyan]{s}[/]"))
    print_leaderboard(result.leaderboard, console=console)
    checks = ", ".join(f"{t} {v:.1f}" for t, v in sorted(result.oracle_exact_match.items()))
    console.print(f"[green]sanity check passed:[/] the oracle scores 1.0 on every exact-match task ({checks})")
    console.print("\n[bold]Files written[/]")
    for p in result.files:
        console.print(f"  {p}")
    for name, d in result.run_dirs.items():
        console.print(f"  {d}/  ({name}: manifest.json, outputs/, scores.json)")
    console.print(f"\nDone in {result.seconds:.0f} s. The sample is a tiny excerpt: these scores say nothing about a "
                  f"model.")
    import shutil

    if shutil.which("jleval") is None:  # e.g. after `make demo`, with .venv not activated
        here = Path(sys.executable).parent
        console.print(f"\n`jleval` is not on your PATH: run [bold]source {here / 'activate'}[/] first "
                      f"(or call {here / 'jleval'}).")
    console.print("[bold]Next[/]: jleval tasks | jleval preprocess --tasks all --raw-dir RAW | "
                  "jleval run MODEL --tasks leaderboard | jleval table runs/*  (see docs/quickstart.md)")


arena_app = typer.Typer(help="Rakuda-style arena: judge open-ended answers pairwise, rank with Bradley–Terry.",
                        no_args_is_help=True, rich_markup_mode=None)
app.add_typer(arena_app, name="arena")


@arena_app.command("judge")
@backend_options
def arena_judge_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(
        help="Run folders of `jleval run MODEL --tasks rakuda --split test` (two or more).")],
    judge_model: Annotated[str, typer.Option("--judge",
        help="Judge model: Hub id or folder (vllm/hf), or the served model's name (--backend openai).")],
    backend_options: dict[str, Any],
    backend: Annotated[str, typer.Option("--backend", help="auto | vllm | hf | openai")] = defaults.BACKEND,
    out: Annotated[Path, typer.Option("--out", "-o",
        help="Judgments JSONL (appended; a re-run resumes).")] = Path("judgments.jsonl"),
    n: Annotated[int | None, typer.Option("--n",
        help="Matches to judge (balanced pairwise-n) (default: every match).")] = None,
    single_order: Annotated[bool, typer.Option("--single-order/--both-orders",
        help="One presentation order per match (a position term is fitted) instead of both (disagreement = "
             "tie).")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the match schedule.", min=0)] = defaults.SEED,
    prompt: Annotated[str | None, typer.Option("--prompt",
        help="Judge prompt: a name in prompts/ or a file (default: rakuda_judge_ja.txt).")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Judge's maximum new tokens.", min=1)] = 2048,
    system_role: Annotated[bool, typer.Option("--system-role/--no-system-role",
        help="Send the instructions as a system message (off: prepended to the user turn).")] = True,
    retry_errors: Annotated[bool, typer.Option("--retry-errors",
        help="Also re-judge verdicts that could not be parsed.")] = False,
    name: Annotated[list[str] | None, typer.Option(
        "--name", help="RUN_DIR=NAME: the model's name in the arena (default: the manifest's model id). "
                       "Repeatable.")] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Judge model revision.")] = None,
) -> None:
    """Judge the runs' rakuda answers pairwise with an LLM judge; verdicts are appended to --out as they arrive."""
    from jleval.arena.judge import check_inputs, judge
    from jleval.backends import load_backend
    from jleval.fsutil import check_writable

    names = _arena_names(name, run_dirs)
    check_inputs(run_dirs, n=n, prompt=prompt, names=names)  # every input checked before the judge is loaded
    check_writable(out.parent)
    judge_backend = load_backend(backend, judge_model, revision=revision, **backend_options)
    try:
        report = _judge_with_progress(judge, judge_backend, run_dirs, out, n=n, both_orders=not single_order,
                                      seed=seed, prompt=prompt, max_tokens=max_tokens, system_role=system_role,
                                      retry_errors=retry_errors, names=names)
    finally:
        judge_backend.close()
    _print_judge_report(report)
    if report.judge_errors:
        raise typer.Exit(3)


def _judge_with_progress(judge, judge_backend, run_dirs, out, **kwargs):
    from jleval.render.progress import JudgeProgress

    try:
        with JudgeProgress(err_console) as progress:
            return judge(judge_backend, run_dirs, out, **kwargs, progress=progress)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]: every verdict written so far is kept; re-run the same command "
                          "to resume")
        raise typer.Exit(130) from None


def _print_judge_report(report) -> None:
    console.print(f"[bold]{report.out_path}[/]: {report.judged} verdicts judged now, {report.already_done} already "
                  f"there, {report.scheduled} scheduled ({len(report.models)} models)")
    if report.rejudged:
        err_console.print(f"[yellow]{report.rejudged} verdicts were made on answers that changed since (a run folder "
                          "was re-run): judged again; the new lines supersede the old ones in the ranking[/]")
    if report.verdict_errors:
        err_console.print(f"[yellow]{report.verdict_errors} verdicts had no usable [[1]]/[[2]]/[[3]] marker "
                          "(kept as errors, left out of the ranking; --retry-errors re-asks them)[/]")
    for model, k in report.missing_answers.items():
        err_console.print(f"[yellow]{model}: {k} questions without an answer (left out of its matches)[/]")
    usable = report.already_done + report.judged - report.verdict_errors - report.judge_errors
    if report.too_long:
        err_console.print(f"[yellow]{report.too_long} judge prompts do not fit the judge's context with --max-tokens "
                          "output tokens: recorded as failed judge calls, not sent (lower --max-tokens or use a judge "
                          "with a longer context)[/]")
    if report.judge_errors:
        if usable <= 0:
            raise JlevalError(f"every judge call failed ({report.judge_errors}); no verdict to rank",
                              "check the judge (its server, key or model; the `error` field of each line in "
                              f"{report.out_path} says why), then re-run the same command")
        err_console.print(f"[yellow]{report.judge_errors} judge calls failed; re-run the same command to retry them[/]")
    console.print(f"next: jleval arena rank {report.out_path}")


@arena_app.command("rank")
def arena_rank_cmd(
    judgments: Annotated[list[Path], typer.Argument(
        help="Judgments JSONL file(s) (pooled); run folders among them count as --runs.")],
    runs: Annotated[list[Path] | None, typer.Option(
        "--runs", help="Run folders: every judged model must be one of them (--runs A B C, or --runs A --runs "
                       "B).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o",
        help="Folder for arena.csv, arena.json, arena.png.")] = Path("arena"),
    bootstrap: Annotated[int, typer.Option("--bootstrap",
        help="Bootstrap resamples for the 68%/95% intervals (0 = none).")] = defaults.BOOTSTRAP,
    posterior: Annotated[bool, typer.Option("--posterior",
        help="Bayesian posterior (MCMC) instead of the bootstrap; adds P(stronger than next).")] = False,
    seed: Annotated[int, typer.Option("--seed",
        help="Seed of the bootstrap resamples or the posterior sampler.", min=0)] = defaults.SEED,
    prior_sd: Annotated[float, typer.Option("--prior-sd",
        help="Sd of the N(0, sd²) prior on strengths, in logits.")] = 3.0,
    draws: Annotated[int, typer.Option("--draws", help="Posterior draws per chain.")] = 2500,
    chains: Annotated[int, typer.Option("--chains", help="Posterior chains.")] = 8,
    title: Annotated[str | None, typer.Option("--title", help="Chart title.")] = None,
) -> None:
    """Rank models from judgments with Bradley–Terry (ratings: mean 1000, 400/ln 10 per unit of strength)."""
    from jleval.arena import rank_files, write_ranking
    from jleval.render.console import print_arena

    if bootstrap < 0 or draws < 1 or chains < 1 or not 0 < prior_sd < float("inf"):  # refuses nan too
        raise UsageError("--bootstrap must be 0 or more, --draws and --chains 1 or more, --prior-sd above 0")
    _check_title(title)
    # `--runs A B C` gives A to --runs and B, C as arguments: a folder is never a judgments file, so it is a run
    runs = [*(runs or []), *(p for p in judgments if p.is_dir())]
    judgments = [p for p in judgments if not p.is_dir()]
    if not judgments:
        raise UsageError("no judgments file given (only run folders)",
                         "jleval arena rank judgments.jsonl --runs runs/A runs/B")
    ranking = rank_files(judgments, runs=runs, n_bootstrap=bootstrap, seed=seed,
                         method="posterior" if posterior else "bootstrap", prior_sd=prior_sd, chains=chains,
                         draws=draws)
    print_arena(ranking, console=console, err_console=err_console)
    _print_wrote(write_ranking(ranking, out, title=title).values())


def _check_title(title: str | None) -> None:
    """--title is drawn on the chart: it must be UTF-8 text."""
    if title is None:
        return
    try:
        title.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("--title holds characters that are not UTF-8 text",
                         "pass the chart title as UTF-8 text") from None


def main() -> None:
    """Console-script entry point: the one error boundary."""
    try:
        app()
    except JlevalError as e:
        if os.environ.get("JLEVAL_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/] {escape(e.message)}", highlight=False, soft_wrap=True)
        if e.hint:
            err_console.print(f"  [bold]fix:[/] {escape(e.hint)}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/] (everything written so far is kept; re-run to resume)")
        sys.exit(130)
    except OSError as e:  # the file system refused (permissions, disk full, a folder where a file should be)
        if os.environ.get("JLEVAL_DEBUG"):
            raise
        what = f"{e.filename}" + (f" -> {e.filename2}" if getattr(e, "filename2", None) else "")
        err_console.print(f"[bold red]error:[/] {escape(e.strerror or type(e).__name__)}"
                          + (f": {escape(what)}" if e.filename else f" ({escape(str(e))})"),
                          highlight=False, soft_wrap=True)
        err_console.print("  [bold]fix:[/] check that path: its permissions, the free space on its disk, and that "
                          "nothing of another kind (a folder, a broken link) is in the way; files written before "
                          "are kept, and no file is left half-written", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
