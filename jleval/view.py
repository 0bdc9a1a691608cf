"""`jleval view RUN [RUN2] --out DIR`: a static, offline HTML report of every sample of a run (or two side by side).

    DIR/index.html          the page (CSS and JS from jleval/templates/view/, no network)
    DIR/data/meta.js        runs, tasks, each task's shared prompt prefix, the chunk table with per-filter counts
    DIR/data/cNNNNN.js      the samples, CHUNK_SIZE per file, loaded by the page only when shown or searched

Each sample carries its input, gold, the prompt the model saw (re-rendered from the preprocessed set with the
run's recorded settings and checked against the run's prompt sha256), and per run: the generation, the
extracted answer, every per-sample metric value, right/wrong by the task's main metric, and any error.
Chunks are plain <script> files (a page opened from disk may not fetch() files), so a 100k-sample run opens at
once and only the shown chunks are parsed.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jleval import defaults
from jleval.errors import JlevalError, UsageError
from jleval.fsutil import _umask, check_writable, read_json_object, sha256_text

CHUNK_SIZE = 250
TEMPLATES = Path(__file__).resolve().parent / "templates" / "view"
MARKER = ".jleval-view"
#: filters whose per-chunk counts the page knows without loading the chunk
FILTERS = ("all", "wrong_any", "wrong_0", "wrong_1", "error_any", "differ")


@dataclass
class RunData:
    name: str
    path: Path
    manifest: dict[str, Any]
    scores: dict[str, Any]
    task_names: list[str] = field(default_factory=list)  # tasks with an outputs file
    # one task at a time is loaded (`load_task`), so a large run never sits in memory whole
    outputs: dict[str, dict[int, dict]] = field(default_factory=dict)  # task -> id -> outputs row
    per_sample: dict[str, dict[int, dict]] = field(default_factory=dict)  # task -> id -> scores/<task>.jsonl row
    #: task -> id -> the re-rendered prompt (1 when it is the task's frame around the input: head + input + tail)
    prompts: dict[str, dict[int, str | int]] = field(default_factory=dict)
    frames: dict[str, dict[str, str]] = field(default_factory=dict)  # task -> {"head", "tail"}
    prompt_notes: dict[str, str] = field(default_factory=dict)  # task -> why prompts are missing or unverified


@dataclass
class ViewReport:
    out_dir: Path
    index: Path
    n_samples: int
    n_chunks: int
    bytes_total: int
    largest_file: int
    tasks: list[str]
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- reading


def load_run_data(run_dir: Path, tasks_dir: Path | None = None) -> RunData:
    """A run's manifest and scores (scoring the run first when it has none), each checked against its schema in
    jleval.records, so a field that is there has its type; its tasks are read by load_task."""
    from jleval.records import read_manifest, read_scores
    from jleval.scoring import score_run

    run_dir = Path(run_dir)
    if read_json_object(run_dir / "manifest.json") is None:  # missing or unreadable
        raise UsageError(f"{run_dir} is not a run folder (no readable manifest.json)",
                         "pass a folder written by `jleval run` (runs/<name>)")
    manifest = dict(read_manifest(run_dir / "manifest.json", _corrupt(
        run_dir / "manifest.json", "restore it, or re-run `jleval run` with the run's settings into a new folder")))
    if read_json_object(run_dir / "scores.json") is None or not (run_dir / "scores").is_dir():
        scores = score_run(run_dir, tasks_dir=tasks_dir)
    else:
        scores = dict(read_scores(run_dir / "scores.json", _corrupt(
            run_dir / "scores.json", f"score the run again: jleval score {run_dir}")))
    return RunData(run_dir.name, run_dir, manifest, scores,
                   task_names=[p.stem for p in sorted((run_dir / "outputs").glob("*.jsonl"))])


def _corrupt(path: Path, hint: str) -> Callable[[str], UsageError]:
    """The error for a run file whose content is wrong (the reason reads after the file's name)."""
    def fail(reason: str) -> UsageError:
        return UsageError(f"{path} {reason}", hint)

    return fail


def load_task(run: RunData, task: str, data_dir: Path | None, tasks_dir: Path | None) -> None:
    """Read one task's outputs, per-sample scores and prompts into `run` (and forget any other task's)."""
    for table in (run.outputs, run.per_sample, run.prompts, run.frames):
        table.clear()
    if task not in run.task_names:
        return
    run.outputs[task] = _outputs_by_id(run.path / "outputs" / f"{task}.jsonl")
    run.per_sample[task] = _scores_by_id(run.path / "scores" / f"{task}.jsonl")
    _attach_prompts(run, task, data_dir, tasks_dir)


def _outputs_by_id(path: Path) -> dict[int, dict]:
    from jleval.run import read_outputs

    out: dict[int, dict] = {}
    for row in read_outputs(path):  # objects, each checked by read_outputs
        if isinstance(row.get("id"), int):
            if row["id"] not in out or row.get("error") is None or out[row["id"]].get("error") is not None:
                out[row["id"]] = row  # the last good line wins, as when scoring
    return out


def _scores_by_id(path: Path) -> dict[int, dict]:
    if not path.is_file():
        return {}
    # only "\n" ends a line (jleval.jsonl's rule): U+2028 and U+0085 may sit inside an answer
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip())
    return {r["id"]: r for r in rows if isinstance(r, dict) and isinstance(r.get("id"), int)}


def _attach_prompts(run: RunData, task: str, data_dir: Path | None, tasks_dir: Path | None) -> None:
    """Re-render the task's prompts with the run's settings; a prompt is kept only when its sha256 is the one the
    run recorded, so the page never shows a prompt the model did not see."""
    try:
        prompts = _render_prompts(run, task, data_dir, tasks_dir)
    except JlevalError as e:
        run.prompt_notes[task] = f"prompt not shown: {e.message}"
        return
    rows = run.outputs[task]
    ok = {i: p for i, p in prompts.items() if i in rows and rows[i].get("prompt_sha256") == sha256_text(p)}
    del prompts
    run.frames[task], run.prompts[task] = _factor_prompts(ok, {i: r.get("input") or "" for i, r in rows.items()})
    if len(ok) < len(rows):
        run.prompt_notes[task] = (f"prompt not shown for {len(rows) - len(ok)} of {len(rows)} samples: the "
                                  "preprocessed set or the template differs from the one this run used")


def _render_prompts(run: RunData, task: str, data_dir: Path | None, tasks_dir: Path | None) -> dict[int, str]:
    from jleval.resources import default_data_dir
    from jleval.run import RunOptions, plan_tasks
    from jleval.tasks import get_task

    s = run.manifest.get("settings", {})
    spec = get_task(task, tasks_dir)
    opts = RunOptions(model=str(s.get("model", "")), split=s.get("split", defaults.SPLIT),
                      max_num_samples=int(s.get("max_num_samples", defaults.MAX_NUM_SAMPLES)),
                      num_few_shots=int(s.get("num_few_shots", defaults.NUM_FEW_SHOTS)),
                      template=s.get("template", defaults.TEMPLATE),
                      prompt_style=s.get("prompt_style", defaults.PROMPT_STYLE),
                      chat_template=bool(s.get("chat_template")), system_prompt=s.get("system_prompt"),
                      version=s.get("data_version", defaults.DATA_VERSION))
    plans, skipped = plan_tasks(opts, [spec], Path(data_dir) if data_dir else default_data_dir(), "")
    if not plans:
        raise UsageError(skipped.get(task, "its set is not available"))
    return {r.sample_id: r.prompt for r in plans[0].requests}


# ----------------------------------------------------------------------------------------------- samples


def main_metric(task_scores: dict[str, Any]) -> str | None:
    """The metric that decides right/wrong: the ⭐ metric, else the first one listed."""
    metrics = list(task_scores.get("metrics", {}))
    star = task_scores.get("star_metric")
    if star in metrics:
        return star
    return metrics[0] if metrics else None


def _task_scores(run: RunData, task: str) -> dict[str, Any]:
    """The task's entry in the run's scores ({} when it has none)."""
    return run.scores["tasks"].get(task, {})


def _is_correct(rec: dict, task_scores: dict[str, Any]) -> bool | None:
    """Right/wrong by the task's main metric: its value at the top of its scale (None when there is no value)."""
    metric = main_metric(task_scores)
    value = (rec.get("scores") or {}).get(metric)  # None when there is no main metric: JSON keys are strings
    if value is None:
        return None
    scale = task_scores["metrics"][metric].get("scale")  # the main metric is one of the task's metrics
    return value >= (100.0 if scale == "0-100" else 1.0) - 1e-9


#: (key in the scores/<task>.jsonl row, short key in the chunk), then the same for the outputs row
_SCORE_KEYS = (("pred", "pred"), ("scores", "s"), ("out_of_label", "ool"), ("extracted", "ext"))
_OUTPUT_KEYS = (("finish_reason", "fr"), ("prompt_tokens", "pt"), ("completion_tokens", "ct"))


def _side(run: RunData, task: str, sid: int) -> dict[str, Any] | None:
    """One run's view of one sample (None when the run has no output for it); short keys keep chunks small."""
    row = run.outputs.get(task, {}).get(sid)
    if row is None:
        return None
    rec = run.per_sample.get(task, {}).get(sid, {})
    side: dict[str, Any] = {"gen": row.get("generation") or "", "ok": None}
    if row.get("error"):
        side["err"] = str(row["error"])
    else:
        side["ok"] = _is_correct(rec, _task_scores(run, task))
    optional = [(short, rec.get(key)) for key, short in _SCORE_KEYS]
    optional += [(short, row.get(key)) for key, short in _OUTPUT_KEYS]
    optional.append(("p", run.prompts.get(task, {}).get(sid)))
    side.update((short, value) for short, value in optional if value is not None)
    return side


def _split_prompt(prompt: str, text: str) -> tuple[str, str] | None:
    """(what comes before the sample's input, what comes after) in its prompt, or None when the input is not in it."""
    pos = prompt.rfind(text) if text else -1
    return None if pos < 0 else (prompt[:pos], prompt[pos + len(text):])


def _factor_prompts(prompts: dict[int, str], inputs: dict[int, str]) -> tuple[dict[str, str], dict[int, str | int]]:
    """Store a task's prompt frame once: a prompt that is `head + input + tail` with the task's most common head
    (instruction and few-shots) and tail becomes 1; any other keeps its full text. Returns (frame, prompts)."""
    from collections import Counter

    frames = Counter(f for i, p in prompts.items() if (f := _split_prompt(p, inputs[i])) is not None)
    if not frames:
        return {"head": "", "tail": ""}, dict(prompts)
    head, tail = frames.most_common(1)[0][0]
    return {"head": head, "tail": tail}, {i: 1 if p == head + inputs[i] + tail else p for i, p in prompts.items()}


def task_order(runs: list[RunData], tasks_dir: Path | None) -> list[str]:
    from jleval.tasks import catalogue

    order = list(catalogue(tasks_dir))
    names = {t for r in runs for t in r.task_names}
    return sorted(names, key=lambda t: (order.index(t) if t in order else len(order), t))


def _sample(runs: list[RunData], task: str, sid: int) -> dict[str, Any]:
    """One sample aligned across the runs ("xd": the runs' inputs differ, i.e. different data or settings)."""
    present = [row for r in runs if (row := r.outputs.get(task, {}).get(sid)) is not None]
    first = present[0]
    differ = len({x.get("input") for x in present}) > 1
    return {"i": sid, "in": first.get("input") or "", "g": first.get("gold") or "",
            "r": [_side(r, task, sid) for r in runs], **({"xd": 1} if differ else {})}


def flags(sample: dict) -> dict[str, bool]:
    """Which of FILTERS the sample passes (the page uses the same rules, in view.js `passes`)."""
    sides = sample["r"]
    oks = [s.get("ok") if s else None for s in sides]
    return {"all": True, "wrong_any": any(o is False for o in oks),
            "wrong_0": oks[0] is False, "wrong_1": len(oks) > 1 and oks[1] is False,
            "error_any": any(bool(s and s.get("err")) for s in sides),
            "differ": len(oks) > 1 and None not in oks[:2] and oks[0] != oks[1]}


# ----------------------------------------------------------------------------------------------- writing


def _js(call: str, *args: Any) -> str:
    """`call(arg, ...);` with JSON arguments: U+2028/2029 (line ends in older JS engines) and '<' escaped."""
    text = ",".join(json.dumps(a, ensure_ascii=False, separators=(",", ":")) for a in args)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("<", "\\u003c")
    return f"{call}({text});\n"


def _run_meta(run: RunData) -> dict[str, Any]:
    m = run.manifest
    settings, model = m.get("settings", {}), m.get("model", {})
    return {"name": run.name, "path": str(run.path), "model": model.get("id"),
            "revision": model.get("revision"), "backend": settings.get("backend"),
            "split": settings.get("split"), "shots": settings.get("num_few_shots"),
            "max_num_samples": settings.get("max_num_samples"), "prompt_style": settings.get("prompt_style"),
            "template": settings.get("template"), "chat_template": settings.get("chat_template"),
            "profile": run.scores.get("profile"), "avg": (run.scores.get("avg") or {}).get("value")}


def _task_meta(runs: list[RunData], task: str) -> dict[str, Any]:
    per_run = []
    for r in runs:
        ts = _task_scores(r, task)
        per_run.append({"metrics": {k: v.get("value") for k, v in ts.get("metrics", {}).items()},
                        "main": main_metric(ts), **r.frames.get(task, {"head": "", "tail": ""}),
                        "note": r.prompt_notes.get(task)})
    return {"name": task, "runs": per_run}


def _write_data(data: Path, runs: list[RunData], tasks: list[str], chunk_size: int, warnings: list[str],
                data_dir: Path | None, tasks_dir: Path | None) -> tuple[dict[str, Any], int]:
    """Write every task's chunks, one task (and one chunk of samples) in memory at a time; returns (meta, n)."""
    chunks: list[dict[str, Any]] = []
    task_meta, n = [], 0
    for task in tasks:
        for r in runs:
            load_task(r, task, data_dir, tasks_dir)
        ids = sorted({i for r in runs for i in r.outputs.get(task, {})})
        meta = _task_meta(runs, task)
        meta.update({"n": len(ids), "first_chunk": len(chunks)})
        differ = 0
        for start in range(0, len(ids), chunk_size):
            part = [_sample(runs, task, sid) for sid in ids[start:start + chunk_size]]
            differ += sum(1 for s in part if s.get("xd"))
            (data / f"c{len(chunks):05d}.js").write_text(_js("jlevalChunk", len(chunks), part), encoding="utf-8")
            chunks.append({"task": task, "n": len(part),
                "counts": {f: sum(flags(s)[f] for s in part) for f in FILTERS}})
        if differ:
            warnings.append(f"{task}: {differ} sample(s) have different inputs in the two runs (different data or "
                            "settings); they are marked")
        meta["chunks"] = len(chunks) - meta["first_chunk"]
        task_meta.append(meta)
        n += len(ids)
    return {"runs": [_run_meta(r) for r in runs], "tasks": task_meta, "chunks": chunks,
            "filters": list(FILTERS), "warnings": warnings}, n


def _render_index(meta: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    title = " vs ".join(r["name"] for r in meta["runs"])
    return env.get_template("index.html.j2").render(title=title, runs=meta["runs"],
                                                    css=(TEMPLATES / "view.css").read_text(encoding="utf-8"),
                                                    js=(TEMPLATES / "view.js").read_text(encoding="utf-8"))


def _check_out(out: Path) -> None:
    if out.name in ("", ".", ".."):  # the report replaces --out as a whole: never the current or a parent folder
        raise UsageError(f"--out {str(out)!r} does not name a folder of its own", "e.g. --out view/")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise UsageError(f"--out {out} exists and is not a report written by `jleval view`",
                         "pass a new folder (or an earlier `jleval view` folder, which is replaced)")
    check_writable(out.parent)


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Replace `out` by the finished `tmp` folder, so a failure never leaves a half-written report."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_view(run_dirs: list[Path], out: Path, *, data_dir: Path | None = None, tasks_dir: Path | None = None,
               tasks: list[str] | None = None, chunk_size: int = CHUNK_SIZE) -> ViewReport:
    """Write the report for one run, or two side by side (aligned by task and sample id)."""
    if not 1 <= len(run_dirs) <= 2:
        raise UsageError(f"`jleval view` takes one or two run folders, not {len(run_dirs)}",
                         "jleval view RUN [RUN2] --out DIR")
    if chunk_size < 1:
        raise UsageError("chunk_size must be 1 or more")
    out = Path(out)
    _check_out(out)
    runs = [load_run_data(Path(d), tasks_dir) for d in run_dirs]
    names = task_order(runs, tasks_dir)
    if tasks:
        unknown = [t for t in tasks if t not in names]
        if unknown:
            raise UsageError(f"no outputs for {', '.join(unknown)} in these "
                             f"runs", f"tasks with outputs: {', '.join(names)}")
        names = [t for t in names if t in tasks]
    if not names:
        raise UsageError(f"{run_dirs[0]} has no outputs to show", "run `jleval run` into it first")
    warnings: list[str] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a report folder is as readable as any other
        (tmp / "data").mkdir()
        meta, n = _write_data(tmp / "data", runs, names, chunk_size, warnings, data_dir, tasks_dir)
        (tmp / "data" / "meta.js").write_text(_js("jlevalMeta", meta), encoding="utf-8")
        (tmp / "index.html").write_text(_render_index(meta), encoding="utf-8")
        (tmp / MARKER).write_text("written by `jleval view`; the folder is replaced when it runs again\n",
                                  encoding="utf-8")
        sizes = [p.stat().st_size for p in tmp.rglob("*") if p.is_file()]
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ViewReport(out, out / "index.html", n, len(meta["chunks"]), sum(sizes), max(sizes), names, warnings)

