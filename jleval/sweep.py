"""`jleval sweep SWEEP.toml`: many models x one task selection -> runs -> scores -> one leaderboard.

    out = "runs"                      # folder of run folders (relative paths: from the sweep file's folder)
    leaderboard = "leaderboard.csv"   # the combined table (.md/.html/.png beside a .csv)
    parallel = 1                      # models at once; above 1 each model runs in its own process (with
                                      # `ray = "HEAD:PORT"`: as parallel jobs on one Ray cluster)
    [run]                             # the task selection, and defaults for every model (any model key)
    tasks = "leaderboard"
    max_num_samples = 100
    [[model]]
    id = "llm-jp/llm-jp-3-1.8b"       # Hub id or folder (required)
    name = "llm-jp-3-1.8b"            # run folder name (default: from the id, split and shots)
    backend = "vllm"
    chat_template = true
    dtype = "bfloat16"
    tensor_parallel_size = 2

The schema is closed: an unknown key, or a value of the wrong type, is one error naming the file and the key,
before anything runs. A model that fails (it will not load, its server is down) is reported and the sweep goes
on with the others. Each model is an ordinary `jleval run` (same cache, same resume), so the same command
re-run resumes the whole sweep: finished models come from their caches, unfinished ones continue.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jleval._toml import tomllib
from jleval.errors import JlevalError, RunError, UsageError
from jleval.run import RunOptions, default_run_name, recorded_options

#: Keys shared by every model (the one task selection): only in [run].
TASK_KEYS = {"tasks": str, "split": str, "num_few_shots": int, "max_num_samples": int, "template": str,
             "prompt_style": str, "stop_at_blank_line": bool, "include_non_commercial": bool, "data_dir": str,
             "raw_dir": str, "version": str, "tasks_dir": str}
#: RunOptions fields a model may set (in [[model]], or as a default in [run]).
RUN_KEYS = {"backend": str, "revision": str, "chat_template": bool, "system_prompt": str,
            "add_special_tokens": bool}
#: Engine options, as `jleval run` takes them (docs/gpu.md), passed to the backend.
ENGINE_KEYS = {"dtype": str, "tensor_parallel_size": int, "pipeline_parallel_size": int, "data_parallel_size": int,
               "max_model_len": int, "gpu_memory_utilization": float, "trust_remote_code": bool,
               "distributed_executor_backend": str, "batch_size": int, "device": str, "base_url": str,
               "api_key_env": str, "concurrency": int, "endpoint": str, "tokenizer": str, "vllm_extensions": bool,
               "request_timeout": float, "max_retries": int, "ray": str, "replicas": (int, str)}
MODEL_KEYS = {"id": str, "name": str, **RUN_KEYS, **ENGINE_KEYS}
TOP_KEYS = {"out": str, "leaderboard": str, "parallel": int, "run": dict, "model": list}
_OPTION_NAMES = {"request_timeout": "timeout"}  # the backend's own name for a CLI option
_FIELD_NAMES = {"stop_at_blank_line": "stop_rule"}  # the RunOptions field of a sweep key (else the same name)
_PATHS = ("out", "data_dir", "raw_dir", "tasks_dir")  # RunOptions fields that are paths


@dataclass
class SweepModel:
    name: str
    options: RunOptions


@dataclass
class Sweep:
    path: Path
    out: Path
    leaderboard: Path
    parallel: int
    models: list[SweepModel]


@dataclass
class SweepResult:
    sweep: Sweep
    ran: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"run_dir", "counts"}
    failed: dict[str, str] = field(default_factory=dict)  # name -> why (one line)
    leaderboard: Any = None  # table.Leaderboard over the models that ran


# ---- reading ---------------------------------------------------------------------------------------------
def _check_keys(path: Path, where: str, table: dict[str, Any], schema: dict[str, Any]) -> None:
    for key, value in table.items():
        if key not in schema:
            hint = (f"{key} is shared by every model: set it in [run]" if key in TASK_KEYS else
                    f"the keys there are: {', '.join(sorted(schema))} (see docs/gpu.md)")
            raise UsageError(f"{path}: unknown key {key!r} in {where}", hint)
        kind = schema[key]
        if not _has_type(value, kind):
            names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise UsageError(f"{path}: {where}: {key} must be a {names}, not {value!r}")


def _has_type(value: Any, kind: type | tuple[type, ...]) -> bool:
    """isinstance, except that true/false is no int or float, and an integer is also a float (TOML's 1 for 1.0)."""
    if isinstance(value, bool) and kind in (int, float):
        return False
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


def load(path: Path | str) -> Sweep:
    """Read and check a sweep file (closed schema); nothing runs."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"sweep file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not valid TOML: {err}") from None
    _check_keys(path, "the top level", data, TOP_KEYS)
    shared = data.get("run", {})
    _check_keys(path, "[run]", shared, {**TASK_KEYS, **RUN_KEYS, **ENGINE_KEYS})
    models = data.get("model", [])
    if not models or not all(isinstance(m, dict) for m in models):
        raise UsageError(f"{path}: no [[model]] tables", 'add one [[model]] table per model, with id = "..."')
    base = path.parent
    out = base / data.get("out", "runs")
    parallel = data.get("parallel", 1)
    if parallel < 1:
        raise UsageError(f"{path}: parallel must be 1 or more, not {parallel}")
    sweep = Sweep(path, out, base / data.get("leaderboard", "leaderboard.csv"), parallel, [])
    for n, table in enumerate(models, start=1):
        _check_keys(path, f"[[model]] number {n}", table, MODEL_KEYS)
        if "id" not in table:
            raise UsageError(f"{path}: [[model]] number {n} has no id", 'add id = "HUB/ID" or id = "path/to/folder"')
        sweep.models.append(_model(path, base, out, shared, table))
    names = [m.name for m in sweep.models]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise UsageError(f"{path}: two models would write the same run folder {dup[0]!r}",
                         "give each [[model]] its own name = \"...\"")
    return sweep


def _model(path: Path, base: Path, out: Path, shared: dict[str, Any], table: dict[str, Any]) -> SweepModel:
    merged = {**shared, **table}
    model_id = merged["id"]
    if Path(model_id).parts and not Path(model_id).is_absolute() and (base / model_id).exists():
        model_id = str(base / model_id)  # a folder given relative to the sweep file
    engine = {_OPTION_NAMES.get(k, k): v for k, v in merged.items() if k in ENGINE_KEYS}
    if "replicas" in engine:
        engine["replicas"] = str(engine["replicas"])
    fields = {_FIELD_NAMES.get(k, k): base / v if k in _PATHS else v
              for k, v in merged.items() if k in TASK_KEYS or k in RUN_KEYS}  # paths: from the sweep file's folder
    opts = RunOptions(model=model_id, out=out, backend_options=engine, **fields)
    name = table.get("name") or default_run_name(model_id, opts)
    opts.run_name = name
    return SweepModel(name, opts)


# ---- running ---------------------------------------------------------------------------------------------
def plan_rows(sweep: Sweep) -> list[dict[str, Any]]:
    """What a sweep would do, model by model (for --dry-run; a --base-url password masked)."""
    rows = []
    for m in sweep.models:
        run_dir = sweep.out / m.name
        state = "resume" if (run_dir / "manifest.json").is_file() else "new"
        rows.append({"name": m.name, "model": m.options.model, "backend": m.options.backend,
                     "options": recorded_options(m.options.backend_options), "run_dir": str(run_dir),
                     "state": state})
    return rows


def _run_here(m: SweepModel) -> dict[str, Any]:
    from jleval.run import run

    result = run(m.options)
    return {"run_dir": str(result.run_dir), "counts": result.counts}


def _options_json(opts: RunOptions) -> str:
    d = dict(vars(opts))
    for k in _PATHS:
        d[k] = None if d[k] is None else str(d[k])
    return json.dumps(d)


def _run_child(m: SweepModel) -> dict[str, Any]:
    """One model in its own process (`python -m jleval.sweep`): its engine, GPU memory and Ray driver end
    with it."""
    proc = subprocess.run([sys.executable, "-m", "jleval.sweep", _options_json(m.options)], capture_output=True,
                          text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise RunError(f"the run of {m.name} died: {tail}")
    reply = json.loads(lines[-1])
    if "error" in reply:
        raise RunError(reply["error"], reply.get("hint"))
    return reply


def run_sweep(sweep: Sweep, say: Callable[[str], None] = lambda s: None) -> SweepResult:
    """Run every model (one after another, or `parallel` at once in child processes), then score them all into
    one leaderboard (written by the caller to `sweep.leaderboard`). A model that fails is recorded in `failed`
    and the others go on."""
    from jleval import table

    result = SweepResult(sweep)

    def one(m: SweepModel, runner: Callable[[SweepModel], dict[str, Any]]) -> None:
        say(f"{m.name}: running {m.options.model} ({m.options.backend})")
        try:
            result.ran[m.name] = runner(m)
            say(f"{m.name}: done")
        except JlevalError as err:
            result.failed[m.name] = err.message + (f" (fix: {err.hint})" if err.hint else "")
            say(f"{m.name}: FAILED: {err.message} (the sweep goes on)")

    if sweep.parallel > 1:
        with ThreadPoolExecutor(max_workers=sweep.parallel) as pool:
            list(pool.map(lambda m: one(m, _run_child), sweep.models))
    else:
        for m in sweep.models:
            one(m, _run_here)
    done = [Path(result.ran[m.name]["run_dir"]) for m in sweep.models if m.name in result.ran]
    if done:
        result.leaderboard = table.build(done, allow_mixed=True, tasks_dir=sweep.models[0].options.tasks_dir)
    return result


def errors_in(result: SweepResult) -> int:
    """Requests that came back with an error, over the models that ran (a re-run retries them)."""
    return sum(c.get("errors", 0) for r in result.ran.values() for c in r["counts"].values())


def _child_main(argv: list[str]) -> int:
    d = json.loads(argv[0])
    for k in _PATHS:
        d[k] = None if d[k] is None else Path(d[k])
    try:
        reply = _run_here(SweepModel(d["run_name"], RunOptions(**d)))
    except JlevalError as err:
        print(json.dumps({"error": err.message, "hint": err.hint}), flush=True)
        return 1
    print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
