"""`jleval run`: one batched pass over every task, a per-sample cache, and crash-safe resume.

    runs/<name>/manifest.json          every setting that affects a score (see docs/file-formats.md)
    runs/<name>/outputs/<task>.jsonl   one line per completion, appended + flushed as it completes

A run is three steps: **plan** (check the options, build what data is missing, render every prompt, decide the
run folder: `plan_run`), **generate** (under the folder's lock: read what the folder already holds, send only the
missing requests to the backend, append each completion as it arrives: `_resume`, `_generate`) and **record**
(the manifest, before and after generating: `_record_start`, `_record_finish`).

Every task's requests go to the backend together (vLLM schedules them all; prefix caching shares the few-shot
prefixes). A request is keyed by sha256(model identity, prompt/messages, decoding settings, BOS policy); a
re-run reuses a row only when its key, sample id, input and gold all match (a gold fixed in the evaluation set
is generated and scored again), so a killed run (even `kill -9`) loses at most the requests in flight. A
truncated last line (a crash mid-write) is cut off before appending, never duplicated or parsed (jleval.jsonl).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jleval import __version__, defaults, jsonl, records
from jleval.errors import BackendError, JlevalError, OutputError, RunError, UsageError
from jleval.fsutil import atomic_write_json, check_writable, exclusive, sha256_file, sha256_text
from jleval.tasks import TaskSpec, resolve_tasks
from jleval.types import Completion, DataSource, GenParams, Request

#: Settings that must match to resume into an existing run folder (anything else is informational);
#: max_num_samples may grow (earlier samples come from the cache), never shrink.
IDENTITY_KEYS = (
    "model", "revision", "backend", "split", "num_few_shots", "max_num_samples", "template", "template_sha256",
    "prompt_style", "chat_template", "system_prompt", "add_special_tokens", "stop_rule", "data_version",
    "decoding", "backend_options", "model_identity",
)
#: Backend options that change what a model generates (they are part of the run's identity and cache keys).
#: Every other option (batch size, concurrency, server URL, retries, parallel layout, memory share, device)
#: changes how fast, not what: it may differ between the sessions of one run (a resume with a smaller batch
#: after an out-of-memory, or fewer requests in flight after 429s), and each session's values are recorded in
#: the manifest's `sessions`.
OUTPUT_OPTIONS = frozenset({"dtype", "max_model_len", "endpoint", "tokenizer", "vllm_extensions", "device"})
#: Values that mean "not set": an option given with its default is the same run as one left out.
OPTION_DEFAULTS = {"dtype": "auto", "endpoint": "auto", "vllm_extensions": True, "device": "auto"}
#: Settings that change outputs beyond model, split, shots and style, with their defaults: any other value puts a
#: short hash of them into the default run name, so that such runs never share a folder.
NAME_SETTINGS: dict[str, Any] = {
    "template": defaults.TEMPLATE, "chat_template": False, "system_prompt": None, "add_special_tokens": False,
    "stop_rule": True, "revision": None, "data_version": defaults.DATA_VERSION, "backend_options": {},
}
BLANK_LINE = "\n\n"


@dataclass
class RunOptions:
    model: str
    backend: str = defaults.BACKEND
    tasks: str | list[str] = "all"
    split: str = defaults.SPLIT
    max_num_samples: int = defaults.MAX_NUM_SAMPLES  # -1 = all, as upstream
    num_few_shots: int = defaults.NUM_FEW_SHOTS
    template: str = defaults.TEMPLATE
    prompt_style: str = defaults.PROMPT_STYLE
    chat_template: bool = False
    system_prompt: str | None = None
    add_special_tokens: bool = False
    stop_rule: bool = True  # stop each request where the v1.4.1 post-processing cuts anyway (first blank line)
    revision: str | None = None
    data_dir: Path | None = None
    raw_dir: Path | None = None
    version: str = defaults.DATA_VERSION
    include_non_commercial: bool = False
    out: Path = Path("runs")
    run_name: str | None = None
    tasks_dir: Path | None = None  # the user's own task files (--tasks-dir)
    backend_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskPlan:
    spec: TaskSpec
    requests: list[Request]
    samples: list[dict]
    data_sha256: str
    few_shots: int
    cot_prompt_sha256: str | None = None
    shots_sha256: str | None = None  # the train file the few-shots are taken from

    @property
    def gen(self) -> GenParams:
        """The decoding of the task's requests (all alike); a task without requests: its output length."""
        return self.requests[0].gen if self.requests else GenParams(max_tokens=self.spec.output_length)


@dataclass
class RunPlan:
    """Step 1: everything decided before the run folder is touched."""

    opts: RunOptions
    backend_name: str  # "auto" resolved
    settings: dict[str, Any]
    fingerprint: str
    data_dir: Path
    run_dir: Path
    plans: list[TaskPlan]
    skipped: dict[str, str]  # task -> why


@dataclass
class Resume:
    """What the run folder already holds: its manifest ({} for a new run) and what is left to generate."""

    old: dict[str, Any]
    misses: list[tuple[TaskPlan, Request, str]]  # (task, request, cache key)
    counts: dict[str, dict[str, int]]  # task -> {"total", "cached", "generated", "errors"}


@dataclass
class RunResult:
    run_dir: Path
    counts: dict[str, dict[str, int]]  # task -> {"total", "cached", "generated", "errors"}
    skipped_tasks: dict[str, str]  # task -> why
    #: the settings off their defaults that the default folder name's hash suffix stands for ({}: no suffix)
    name_settings: dict[str, Any] = field(default_factory=dict)


#: progress(task, None, total, cached) once per task before generation starts, then progress(task, completion,
#: total, 0) for each completion as it is written.
ProgressFn = Callable[[str, Completion | None, int, int], None]


def run(opts: RunOptions, progress: ProgressFn | None = None, backend=None) -> RunResult:
    """Run (or resume) an evaluation: plan, generate what the run folder lacks, record. Returns per-task counts.
    Raises RunError/BackendError/OutputError with every completion so far kept on disk. A backend this call
    loads is closed on every path; one passed in is left open for its owner."""
    plan = plan_run(opts)
    with _run_lock(plan.run_dir), contextlib.ExitStack() as owned:
        resume = _resume(plan)
        manifest, session = _draft_manifest(plan, resume)
        backend = _acquire_backend(plan, resume, backend, owned)
        _record_start(plan, resume, manifest, backend, progress)
        if resume.misses:
            _generate(backend, resume.misses, plan.run_dir / "outputs", resume.counts, progress)
            manifest["backend"] = backend.describe()  # what the session learned (a halved batch, replicas)
        _record_finish(plan, resume, manifest, session)
    return RunResult(plan.run_dir, resume.counts, plan.skipped,
                     {} if opts.run_name else changed_settings(plan.settings))


# ----- step 1: plan -------------------------------------------------------------------------------------------

def plan_run(opts: RunOptions) -> RunPlan:
    """Check the options, build the missing evaluation sets, render every request and pick the run folder."""
    from jleval.jaster.preprocess import preprocess
    from jleval.prompts import load_template
    from jleval.resources import default_data_dir

    check_run_options(opts)
    specs = resolve_tasks(opts.tasks, include_non_commercial=opts.include_non_commercial, tasks_dir=opts.tasks_dir)
    check_writable(Path(opts.out))
    backend_name = resolve_backend(opts.backend)  # an unknown backend is refused before any preprocessing
    template = load_template(opts.template)
    data_dir = Path(opts.data_dir) if opts.data_dir else default_data_dir()
    preprocess(specs, data_dir, raw_dir=opts.raw_dir, version=opts.version)  # builds only what is missing
    settings = _settings(opts, template.name, template.sha256, backend_name, model_identity_of(opts, backend_name))
    fingerprint = model_fingerprint(settings)
    plans, skipped = plan_tasks(opts, specs, data_dir, fingerprint)
    if not plans:
        why = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise RunError(f"no task can run ({why})", "build the sets with `jleval preprocess` (and --raw-dir DIR)")
    return RunPlan(opts, backend_name, settings, fingerprint, data_dir, run_dir_for(opts, specs, settings),
                   plans, skipped)


def check_run_options(opts: RunOptions) -> None:
    check_prompt_options(opts.split, opts.num_few_shots, opts.max_num_samples)
    if opts.system_prompt is not None and not opts.chat_template:
        raise UsageError("--system-prompt needs --chat-template (the plain prompt has no system turn)",
                         "add --chat-template, or put the text in a --template file")
    if opts.prompt_style not in ("basic", "cot"):
        raise UsageError(f"unknown prompt style {opts.prompt_style!r}", "use basic or cot")
    name = opts.run_name
    if name is not None and (not name.strip() or Path(name).name != name or name in (".", "..") or "\x00" in name):
        raise UsageError(f"--run-name {name!r} is not a plain folder name", "e.g. --run-name my-model-dev")


def check_prompt_options(split: str, num_few_shots: int, max_num_samples: int) -> None:
    """The checks `run` and `prompts` share: a known split, a non-negative shot count, -1 or a positive
    sample count."""
    if split not in ("train", "dev", "test"):
        raise UsageError(f"unknown split {split!r}", "use --split dev (the leaderboard's default) or test")
    if num_few_shots < 0:
        raise UsageError(f"--num-few-shots must be 0 or more, not {num_few_shots}")
    if max_num_samples == 0 or max_num_samples < -1:
        raise UsageError(f"--max-num-samples must be a positive number or -1 (all samples), not {max_num_samples}")


def default_run_name(model: str, opts: RunOptions, settings: dict[str, Any] | None = None) -> str:
    """<model>_<split>_<N>shot[_<style>][_<hash>]: the hash (8 hex digits) of every setting in NAME_SETTINGS
    that is not at its default, so that runs whose outputs differ never share a default folder."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", model.rstrip("/").split("/")[-1] if Path(model).exists() else model)
    name = f"{base}_{opts.split}_{opts.num_few_shots}shot" + (
        "" if opts.prompt_style == "basic" else f"_{opts.prompt_style}")
    changed = changed_settings(settings)
    return name + (f"_{sha256_text(json.dumps(changed, sort_keys=True, ensure_ascii=False))[:8]}" if changed else "")


def changed_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """The settings of NAME_SETTINGS off their defaults (with the template's sha256 when the template is one):
    what the hash suffix of a default run folder name stands for."""
    if not settings:
        return {}
    changed = {k: settings.get(k) for k, v in NAME_SETTINGS.items() if settings.get(k) != v}
    if "template" in changed:
        changed["template_sha256"] = settings["template_sha256"]
    return changed


def suffix_note(run_dir: Path | str, changed: dict[str, Any]) -> str | None:
    """One line saying what a default run folder's hash suffix stands for (None: no such suffix)."""
    if not changed:
        return None
    digest = sha256_text(json.dumps(changed, sort_keys=True, ensure_ascii=False))[:8]
    if f"_{digest}" not in Path(run_dir).name:
        return None
    # the settings' values are JSON values: repr() is str() for all but strings, which it quotes
    shown = ", ".join(f"{k}={v!r}" for k, v in sorted(changed.items()) if k != "template_sha256")
    return (f"run folder {Path(run_dir).name}: the suffix _{digest} hashes the settings that differ from the "
            f"defaults: {shown} (pass --run-name to choose the name)")


def run_dir_for(opts: RunOptions, specs: list[TaskSpec], settings: dict[str, Any]) -> Path:
    """--run-name, or the default name; a default folder holding more samples than asked (a run grows, never
    shrinks) gives way to <name>_n<N>."""
    if opts.run_name:
        return Path(opts.out) / opts.run_name
    shots = max((spec.few_shots(opts.num_few_shots) for spec in specs), default=opts.num_few_shots)
    run_dir = Path(opts.out) / default_run_name(opts.model, dataclasses.replace(opts, num_few_shots=shots), settings)
    there = _samples_there(run_dir / "manifest.json")
    if there is not None and not grows(there, opts.max_num_samples):
        run_dir = run_dir.with_name(f"{run_dir.name}_n{opts.max_num_samples}")
    return run_dir


def _samples_there(manifest_path: Path) -> int | None:
    """The max_num_samples of the run in a folder (None: no run there, or a manifest the resume will refuse)."""
    if not manifest_path.is_file():
        return None
    with contextlib.suppress(JlevalError):
        n = records.read_manifest(manifest_path, RunError).get("settings", {}).get("max_num_samples")
        return n if isinstance(n, int) else None
    return None


def grows(there: Any, now: int) -> bool:
    """A run of `there` samples per task may be resumed with `now`: as many or more (-1 = all)."""
    return isinstance(there, int) and (now == -1 or (there != -1 and now >= there))


def _settings(opts: RunOptions, template_name: str, template_sha: str, backend_name: str,
              identity: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": opts.model, "model_identity": identity, "revision": opts.revision, "backend": backend_name,
        "split": opts.split,
        "num_few_shots": opts.num_few_shots, "max_num_samples": opts.max_num_samples,
        "template": template_name, "template_sha256": template_sha, "prompt_style": opts.prompt_style,
        "chat_template": opts.chat_template, "system_prompt": opts.system_prompt,
        "add_special_tokens": opts.add_special_tokens, "stop_rule": opts.stop_rule,
        "data_version": opts.version,
        "decoding": {"temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0},
        "backend_options": {k: v for k, v in sorted(opts.backend_options.items())
                            if v is not None and k in OUTPUT_OPTIONS and OPTION_DEFAULTS.get(k, object()) != v},
    }


def model_fingerprint(settings: dict[str, Any]) -> str:
    """The model part of every cache key: what the model is (a local folder's content digest, or the Hub id and
    revision), the resolved backend, and the options that change its outputs."""
    ident = {k: settings[k] for k in ("model_identity", "revision", "backend", "backend_options")}
    return sha256_text(json.dumps(ident, sort_keys=True, ensure_ascii=False))[:16]


def resolve_backend(name: str) -> str:
    """The backend a run really uses ("auto" resolved), so that a run started on a GPU (vllm) and resumed on a
    CPU machine (hf) is refused rather than mixing two engines' outputs in one run."""
    from jleval.backends import resolve_backend_name

    return resolve_backend_name(name)


def model_identity_of(opts: RunOptions, backend_name: str) -> dict[str, Any]:
    """A local folder by the digest of its config, tokenizer and weight files (so new weights saved over the same
    folder are not served from the old cache), a Hub id by id + revision; a served model by its name."""
    from jleval.backends._common import is_local_model, model_identity

    if backend_name in ("hf", "vllm") and is_local_model(opts.model):
        return model_identity(opts.model, opts.revision)
    return {"model": opts.model, "revision": opts.revision}


def stops_for(spec: TaskSpec, opts: RunOptions) -> tuple[str, ...]:
    """The stop rule: v1.4.1 scores only the text before the first blank line, so generating past it is waste.
    Not applied to open-ended (arena) answers or chain-of-thought outputs, whose answer may follow a blank line."""
    if not opts.stop_rule or spec.category == "ARENA" or opts.prompt_style != "basic":
        return ()
    return (BLANK_LINE,)


def plan_tasks(opts: RunOptions, specs: list[TaskSpec], data_dir: Path,
               fingerprint: str | None = None) -> tuple[list[TaskPlan], dict[str, str]]:
    """Every task's requests, rendered; the tasks that cannot run, with the reason."""
    from jleval.prompts import load_template

    template = load_template(opts.template)
    plans, skipped = [], {}
    for spec in specs:
        why = _why_not(opts, spec, data_dir)
        if why:
            skipped[spec.name] = why
        else:
            plans.append(_plan_task(opts, spec, data_dir, template))
    return plans, skipped


def _split_path(data_dir: Path, version: str, split: str, task: str) -> Path:
    return data_dir / version / "evaluation" / split / f"{task}.json"


def _why_not(opts: RunOptions, spec: TaskSpec, data_dir: Path) -> str | None:
    from jleval import cot

    if opts.split not in spec.splits:
        return f"has no {opts.split} split (splits: {', '.join(spec.splits)})"
    if not _split_path(data_dir, opts.version, opts.split, spec.name).is_file():
        return f"its {opts.split} set was not built (raw files missing; see `jleval preprocess`)"
    if opts.prompt_style == "cot" and spec.name not in cot.COT_TASKS:
        return "has no chain-of-thought prompt (see docs/cot.md for the tasks that have one)"
    return None


def _prompt_parts(opts: RunOptions, spec: TaskSpec, data_dir: Path) -> tuple[TaskSpec, list[dict], GenParams,
                                                                              str | None]:
    """(the spec to render with, the few-shots, the decoding, the CoT prompt's sha256) for the prompt style."""
    from jleval.prompts import few_shots_for

    if opts.prompt_style == "cot":
        from jleval import cot

        c = cot.plan_task(spec, opts.num_few_shots)
        return c.spec, c.shots, c.gen, c.sha256
    shots = few_shots_for(data_dir, opts.version, spec, opts.num_few_shots)
    return spec, shots, GenParams(max_tokens=spec.output_length, stop=stops_for(spec, opts)), None


def _plan_task(opts: RunOptions, spec: TaskSpec, data_dir: Path, template) -> TaskPlan:
    from jleval.prompts import load_eval_set, messages_for, render

    data = load_eval_set(data_dir, opts.version, opts.split, spec.name)
    samples = data["samples"] if opts.max_num_samples < 0 else data["samples"][: opts.max_num_samples]
    render_spec, shots, gen, cot_sha = _prompt_parts(opts, spec, data_dir)
    chat = opts.chat_template or spec.category == "ARENA"
    reqs = []
    for i, s in enumerate(samples):
        prompt = render(template, render_spec, shots, s["input"])
        reqs.append(Request(task=spec.name, sample_id=i, prompt=prompt, gen=gen,
                            messages=messages_for(prompt, opts.system_prompt) if chat else None,
                            add_special_tokens=opts.add_special_tokens, gold=s["output"], label_list=spec.label_list))
    train_path = _split_path(data_dir, opts.version, "train", spec.name)
    shots_sha = sha256_file(train_path) if shots and opts.prompt_style == "basic" and train_path.is_file() else None
    return TaskPlan(spec, reqs, samples, sha256_file(_split_path(data_dir, opts.version, opts.split, spec.name)),
                    len(shots), cot_sha, shots_sha)


# ----- step 2: what the folder holds, and generating the rest ---------------------------------------------

def _run_lock(run_dir: Path):
    return exclusive(run_dir / ".lock", RunError(f"another jleval run is writing into {run_dir}",
                                                 "wait for it to finish, or pass another --run-name"))


def _check_resume(manifest_path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The manifest of the run already in the folder ({}: none), refused when that run's identity settings
    differ from this one's."""
    if not manifest_path.is_file():
        return {}

    def fail(reason: str) -> RunError:
        return RunError(f"{manifest_path} is corrupt ({reason}), so this run cannot be resumed safely",
                        "restore it, or pass another --run-name (the outputs there are kept as they are)")

    old: dict[str, Any] = dict(records.read_manifest(manifest_path, fail, required=("settings",)))
    there = old["settings"]
    if diff := _changed_identity(there, settings):
        lines = "; ".join(f"{k}: {there.get(k)!r} there vs {settings.get(k)!r} now" for k in diff)
        grow = " (a run may grow: --max-num-samples as large as the one there, or -1)" \
            if "max_num_samples" in diff else ""
        raise RunError(f"{manifest_path.parent} holds a run with different settings ({lines})",
                       f"re-run with the same settings to resume{grow}, or pass another --run-name / --out")
    return old


def _changed_identity(there: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The IDENTITY_KEYS whose values differ between the run there and this one (in that order)."""
    same = {k: there.get(k) == now.get(k) for k in IDENTITY_KEYS}
    # a run may grow (its earlier samples come from the cache), never shrink
    same["max_num_samples"] = grows(there.get("max_num_samples"), now["max_num_samples"])
    if "local_digest" in now["model_identity"]:
        same["model"] = True  # ./m and /abs/m: the content digest (model_identity) decides
    return [k for k, ok in same.items() if not ok]


def read_outputs(path: Path, repair: bool = False) -> list[dict]:
    """The complete rows of an outputs JSONL (the crash-cut-tail rule of jleval.jsonl: a last line without its
    newline is ignored, and with repair=True cut off so the next append starts on a clean line). Every row must
    be an object with a string `key`; a bad line is a RunError naming the file and line."""
    if repair:
        jsonl.repair(path)

    def fail(n: int, reason: str) -> RunError:
        return RunError(f"{path}, line {n}: {reason}",
                        "the outputs file was edited or corrupted: remove that line (it will be regenerated)")

    return [rec for _, rec in jsonl.read_objects(path, fail, key="key").records]


def _resume(plan: RunPlan) -> Resume:
    """The old manifest (checked against this run's settings) and, per task, the requests whose rows are not
    on disk yet. A row is reused when its key, sample id, input and gold match: a sample whose gold changed in
    the evaluation set is generated again (and the new row, later in the file, is the one scored)."""
    old = _check_resume(plan.run_dir / "manifest.json", plan.settings)
    outputs_dir = plan.run_dir / "outputs"
    outputs_dir.mkdir(parents=True, exist_ok=True)
    misses: list[tuple[TaskPlan, Request, str]] = []
    counts = {}
    for p in plan.plans:
        path = outputs_dir / f"{p.spec.name}.jsonl"
        rows = read_outputs(path, repair=True)
        _check_rows_belong(path, rows, p, plan.fingerprint, old)
        done = {(r["key"], r.get("id")): r for r in rows if not r.get("error")}
        c = counts[p.spec.name] = {"total": len(p.requests), "cached": 0, "generated": 0, "errors": 0}
        for r in p.requests:
            k = r.key(plan.fingerprint)
            if _same_sample(done.get((k, r.sample_id)), p.samples[r.sample_id]):
                c["cached"] += 1
            else:
                misses.append((p, r, k))
    return Resume(old, misses, counts)


def _same_sample(row: dict | None, sample: dict) -> bool:
    return row is not None and row.get("input") == sample["input"] and row.get("gold") == sample["output"]


def _check_rows_belong(path: Path, rows: list[dict], p: TaskPlan, fingerprint: str, old: dict[str, Any]) -> None:
    """Refuse rows another model made: a row for the same prompt, with the decoding the manifest records for
    its task, whose key still differs can only come from another model (a manifest copied from another run)."""
    entry = old.get("tasks", {}).get(p.spec.name, {})
    if entry.get("max_tokens") != p.gen.max_tokens or entry.get("stop") != list(p.gen.stop):
        return  # a task the manifest does not record, or whose decoding changed since: its rows are regenerated
    by_id: dict[Any, Request] = {r.sample_id: r for r in p.requests}  # looked up with whatever id a row holds
    for row in rows:
        req = by_id.get(row.get("id"))
        if req is None or row.get("prompt_sha256") != sha256_text(req.prompt) or row["key"] == req.key(fingerprint):
            continue
        raise RunError(f"{path}: the row for sample {row['id']} was generated by another model than "
                       f"{path.parent.parent / 'manifest.json'} records (a manifest copied from another run?)",
                       "keep each model's run in its own folder (--run-name), with its own manifest.json")


def make_backend(plan: RunPlan):
    """The run's backend, loaded like any other (the baselines too: backends/baselines.py)."""
    from jleval.backends import load_backend

    opts = plan.opts
    if opts.backend_options.get("ray") is not None:  # the same engine, its replicas in Ray actors
        from jleval.backends.ray import RayBackend

        options = {k: v for k, v in opts.backend_options.items() if k not in ("ray", "replicas")}
        return RayBackend(plan.backend_name, opts.model, address=opts.backend_options["ray"],
                          replicas=opts.backend_options.get("replicas"), revision=opts.revision,
                          expected_identity=plan.settings["model_identity"], run_dir=plan.run_dir, **options)
    # the backend `auto` resolved to when the run was planned (resolved once: the choice is printed once)
    return load_backend(plan.backend_name, opts.model, data=DataSource(plan.data_dir, opts.version),
                        revision=opts.revision, **opts.backend_options)


def _acquire_backend(plan: RunPlan, resume: Resume, backend, owned: contextlib.ExitStack):
    """The backend to generate with: the one given, or one loaded now (closed by `owned` on every path) when
    anything is left to generate. A model that fails to load leaves no empty run folder."""
    if not resume.misses:
        return backend
    try:
        if backend is None:
            backend = make_backend(plan)
            owned.callback(_close_quietly, backend)  # closed on every path: success, error, Ctrl-C
        _check_chat_template(backend, resume.misses)
    except BaseException:
        _drop_if_empty(plan.run_dir, plan.run_dir / "manifest.json")
        raise
    return backend


def _drop_if_empty(run_dir: Path, manifest_path: Path) -> None:
    """Remove a run folder this invocation created and left without a manifest or any output."""
    if manifest_path.exists():
        return
    outputs = run_dir / "outputs"
    if outputs.is_dir() and any(outputs.iterdir()):
        return
    with contextlib.suppress(OSError):
        if outputs.is_dir():
            outputs.rmdir()
        (run_dir / ".lock").unlink(missing_ok=True)
        run_dir.rmdir()


def _close_quietly(backend) -> None:
    """Close a backend this run opened (engine processes, worker pools, HTTP clients); a failure to close
    must not hide the run's own outcome, whose outputs are already on disk."""
    with contextlib.suppress(Exception):
        backend.close()


def _check_chat_template(backend, misses) -> None:
    """Fail before generating anything when chat messages cannot be rendered (a model without a chat template)."""
    first = next((r for _, r, _ in misses if r.messages is not None), None)
    if first is not None and getattr(backend, "name", None) in ("hf", "vllm"):
        backend.apply_chat_template(first.messages)


# ----- step 3: record -------------------------------------------------------------------------------------

def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def recorded_options(options: dict[str, Any]) -> dict[str, Any]:
    """The backend options as a manifest records them: sorted, a password in --base-url masked."""
    recorded = dict(sorted(options.items()))
    if isinstance(recorded.get("base_url"), str):
        from jleval.backends._openai_net import redact_urls

        recorded["base_url"] = redact_urls(recorded["base_url"])
    return recorded


def _draft_manifest(plan: RunPlan, resume: Resume) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest of this session (written once the backend is up) and its `sessions` entry."""
    manifest = _manifest(plan.opts, plan.settings, plan.plans, plan.skipped, resume.old, plan.fingerprint)
    session = {"started_at": _now(), "backend_options": recorded_options(plan.opts.backend_options),
               "requests": len(resume.misses)}
    manifest["sessions"] = list(resume.old.get("sessions", [])) + [session]
    return manifest, session


def _record_start(plan: RunPlan, resume: Resume, manifest: dict[str, Any], backend,
                  progress: ProgressFn | None) -> None:
    from jleval.modelinfo import for_run  # the model columns, read from its files (no weights loaded)

    if backend is not None:
        manifest["backend"] = backend.describe()
    elif "backend" in resume.old:  # everything came from the cache: the engine that made it stays
        manifest["backend"] = resume.old["backend"]
    manifest["model_info"] = for_run(plan.opts.model, plan.opts.revision, plan.backend_name, manifest.get("backend"))
    atomic_write_json(plan.run_dir / "manifest.json", manifest)
    if progress:
        for p in plan.plans:
            progress(p.spec.name, None, len(p.requests), resume.counts[p.spec.name]["cached"])


def _record_finish(plan: RunPlan, resume: Resume, manifest: dict[str, Any], session: dict[str, Any]) -> None:
    manifest["finished_at"] = session["finished_at"] = _now()
    session.update({k: sum(c[k] for c in resume.counts.values()) for k in ("generated", "errors")})
    manifest["counts"] = {**resume.old.get("counts", {}), **resume.counts}
    atomic_write_json(plan.run_dir / "manifest.json", manifest)


def _manifest(opts, settings, plans, skipped, old, fingerprint) -> dict[str, Any]:
    from jleval.environment import capture

    tasks = dict(old.get("tasks", {}))
    for p in plans:
        tasks[p.spec.name] = _task_entry(p)
    return {
        "format": records.MANIFEST_FORMAT,
        "jleval_version": __version__,
        "created_at": old.get("created_at") or _now(),
        "model": {"id": opts.model, "revision": opts.revision},
        "settings": settings,
        "model_fingerprint": fingerprint,
        "split": opts.split, "num_few_shots": opts.num_few_shots, "max_num_samples": opts.max_num_samples,
        "prompt_style": opts.prompt_style, "template": settings["template"],
        "tasks": dict(sorted(tasks.items())),
        "skipped_tasks": skipped,
        "environment": capture(),
    }


def _task_entry(p: TaskPlan) -> dict[str, Any]:
    return {
        "category": p.spec.category, "metrics": list(p.spec.metrics), "star_metric": p.spec.star_metric,
        "label_list": list(p.spec.label_list), "output_length": p.spec.output_length,
        "num_few_shots": p.few_shots, "n_samples": len(p.requests), "data_sha256": p.data_sha256,
        "max_tokens": p.gen.max_tokens,
        "task_file_sha256": sha256_file(p.spec.file) if p.spec.file else None,
        "stop": list(p.gen.stop),
        **({"cot_prompt_sha256": p.cot_prompt_sha256} if p.cot_prompt_sha256 else {}),
        **({"few_shots_sha256": p.shots_sha256} if p.shots_sha256 else {}),
    }


def _output_row(req: Request, key: str, sample: dict, comp: Completion) -> dict[str, Any]:
    return {
        "id": req.sample_id, "key": key, "input": sample["input"], "prompt_sha256": sha256_text(req.prompt),
        "gold": sample["output"], "generation": comp.text, "finish_reason": comp.finish_reason,
        "prompt_tokens": comp.prompt_tokens, "completion_tokens": comp.completion_tokens,
        "latency_s": None if comp.latency_s is None else round(comp.latency_s, 4), "error": comp.error,
    }


class _Outputs:
    """The run's outputs files, one appender per task (flushed per row, fsync'd at most once a second: the OS
    keeps flushed lines across a kill; fsync is for power loss). A failure to write is the file's problem, never
    the backend's: it is raised as an OutputError naming the file."""

    def __init__(self, outputs_dir: Path) -> None:
        self.dir = outputs_dir
        self.files: dict[str, jsonl.Appender] = {}

    def write(self, task: str, row: dict[str, Any]) -> None:
        path = self.dir / f"{task}.jsonl"
        try:
            if task not in self.files:
                self.files[task] = jsonl.Appender(path, fsync_every=1.0)
            self.files[task].write(row)
        except OSError as e:
            raise _output_error(path, e) from None

    def close(self) -> None:
        for f in self.files.values():
            with contextlib.suppress(OSError):
                f.close()


def _output_error(path: Path, e: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {e.strerror or e}",
                       "free space on that disk (or fix its permissions), then re-run the same command to resume: "
                       "every completion written so far is kept")


def _warn(message: str) -> None:
    logging.getLogger("jleval").warning("warning: %s", message)  # stderr, unless the caller configures logging


def _generate(backend, misses, outputs_dir: Path, counts, progress) -> None:
    from jleval.backends._context import generate_within_context

    requests = [r for _, r, _ in misses]
    out = _Outputs(outputs_dir)
    try:
        # prompts longer than the model's context become error rows up front, named per task in a warning
        for idx, comp in generate_within_context(backend, requests, _warn):
            p, req, key = misses[idx]
            out.write(p.spec.name, _output_row(req, key, p.samples[req.sample_id], comp))
            c = counts[p.spec.name]
            c["errors" if comp.error else "generated"] += 1
            if progress:
                progress(p.spec.name, comp, c["total"], 0)
    except JlevalError:
        raise
    except Exception as e:  # an engine crash: keep what we have, say how to resume
        raise BackendError(f"the {getattr(backend, 'name', 'inference')} backend failed mid-run: {type(e).__name__}: "
                           f"{e}",
                           "every completion so far is saved; fix the cause and re-run the same command to "
                           "resume") from e
    finally:
        out.close()
