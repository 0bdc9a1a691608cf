"""Scored runs in other tools' formats: llm-jp-eval v1.4.1's results file, and JSON Lines for pandas/DuckDB.

    from jleval.export import export_runs
    paths = export_runs(["runs/a", "runs/b"], "out/", fmt="llm-jp-eval")   # out/a.json, out/b.json

llm-jp-eval layout (what its `evaluate_llm.py` writes, key names as upstream):
    {"scores":  {"<task>_<metric>": "0.1234", …, "<CATEGORY>": "…", "AVG": "…"},   sorted, 4 decimals as strings
     "outputs": {"<task>": [{"prompt", "input", "pred", "gold"}, …]},
     "config":  {"model", "tokenizer", "openapi", "target_dataset", "torch_dtype", "metainfo", "generator_kwargs",
                 "jleval": {the run's own record}}}
`prompt` is upstream's: the prompt template with the few-shots filled in and `{input}` left as a placeholder; it is
written only when it renders the exact prompt the run sent (the outputs' prompt_sha256), else "". Category values
are jleval's category means (missing categories 0.0, as upstream), AVG is the mean over upstream's 11 categories
(jleval's `avg_upstream`).

JSON Lines: one row per sample: run, model, split, num_few_shots, max_num_samples, task, id, input, generation,
pred, gold, scores (metric -> value), error.

A run without scores.json is scored first (the default profile); the caller is told through `notes`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jleval import defaults
from jleval.errors import OutputError, ScoreError, UsageError
from jleval.fsutil import atomic_write_many, encode_json, sha256_text

FORMATS = ("llm-jp-eval", "jsonl")
#: jleval's dtype names -> llm-jp-eval's `torch_dtype` config values.
TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


@dataclass
class RunData:
    """One scored run, joined per sample: outputs (generation, prompt hash) with scores (pred, per-sample metrics)."""

    path: Path
    manifest: dict[str, Any]
    scores: dict[str, Any]
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # task -> rows by id
    notes: list[str] = field(default_factory=list)


def load_scored(run_dir: Path) -> RunData:
    """The run with its scores (its manifest and scores.json checked against their schemas by table.load_run)."""
    from jleval.table import load_run

    run_dir = Path(run_dir)
    notes = [] if (run_dir / "scores.json").is_file() else [f"{run_dir} had no scores: scored it first"]
    run = load_run(run_dir)
    data = RunData(run_dir, run.manifest, run.scores, notes=notes)
    for task in run.scores.get("tasks", {}):
        data.samples[task] = _joined(run_dir, task)
    return data


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    from jleval import jsonl

    def fail(line: int, reason: str) -> ScoreError:
        return ScoreError(f"{path}:{line}: {reason}", f"re-score the run: jleval score {path.parent.parent}")

    return [r for _, r in jsonl.read_objects(path, fail).records]


def _joined(run_dir: Path, task: str) -> list[dict[str, Any]]:
    outputs = {r.get("id"): r for r in _read_jsonl(run_dir / "outputs" / f"{task}.jsonl")}
    rows = []
    for rec in _read_jsonl(run_dir / "scores" / f"{task}.jsonl"):
        out = outputs.get(rec.get("id"), {})
        rows.append({"id": rec.get("id"), "input": out.get("input", ""), "generation": out.get("generation"),
                     "prompt_sha256": out.get("prompt_sha256"), "pred": rec.get("pred"),
                     "gold": rec.get("gold", out.get("gold")), "scores": rec.get("scores") or {},
                     "error": rec.get("error")})
    return rows


# ------------------------------------------------------------------------------------------------ llm-jp-eval


def _fmt4(value: float) -> str:
    return f"{value:.4f}"


def upstream_scores(scores: dict[str, Any]) -> dict[str, str]:
    """llm-jp-eval's `scores` block: every computed `<task>_<metric>`, the categories and AVG, sorted by key."""
    from jleval.tasks import CATEGORIES

    out: dict[str, float] = {}
    for task, entry in scores.get("tasks", {}).items():
        for metric, m in entry.get("metrics", {}).items():
            if m.get("value") is not None:
                out[f"{task}_{metric}"] = m["value"]
    cats = scores.get("categories", {})
    for cat in CATEGORIES:
        out[cat] = cats.get(cat, {}).get("value", 0.0)
    out["AVG"] = sum(out[c] for c in CATEGORIES) / len(CATEGORIES)
    return {k: _fmt4(v) for k, v in sorted(out.items())}


def _prompt_template(data: RunData, task: str, data_dir: Path | None) -> tuple[str, str | None]:
    """(upstream's prompt template for this task, or "", why not). Checked against the prompt the run sent."""
    from jleval.errors import JlevalError

    rows = [r for r in data.samples.get(task, []) if r.get("prompt_sha256")]
    m = data.manifest
    if not rows:
        return "", "no prompt hash recorded"
    if (m.get("prompt_style") or "basic") != "basic":
        return "", "chain-of-thought prompts are not in upstream's layout"
    try:
        from jleval.prompts import few_shots_for, load_template, render
        from jleval.resources import default_data_dir
        from jleval.tasks import get_task

        spec = get_task(task)
        settings = m.get("settings", {})
        version = settings.get("data_version") or defaults.DATA_VERSION
        k = m.get("tasks", {}).get(task, {}).get("num_few_shots", m.get("num_few_shots", defaults.NUM_FEW_SHOTS))
        shots = few_shots_for(Path(data_dir or default_data_dir()), version, spec, k)
        template = load_template(settings.get("template") or m.get("template") or defaults.TEMPLATE)
        first = rows[0]
        if sha256_text(render(template, spec, shots, first["input"])) != first["prompt_sha256"]:
            return "", "the preprocessed sets here do not reproduce the run's prompts"
        return render(template, spec, shots, "{input}"), None
    except JlevalError as e:
        return "", e.message


def to_llm_jp_eval(data: RunData, data_dir: Path | None = None) -> dict[str, Any]:
    outputs: dict[str, list[dict[str, str]]] = {}
    prompt_notes: dict[str, str] = {}
    for task, rows in data.samples.items():
        prompt, why = _prompt_template(data, task, data_dir)
        if why:
            prompt_notes[task] = why
        outputs[task] = [{"prompt": prompt, "input": r["input"], "pred": r["pred"], "gold": r["gold"]}
                         for r in rows if r.get("error") is None]
    return {"scores": upstream_scores(data.scores), "outputs": outputs, "config": _config(data, prompt_notes)}


def _config(data: RunData, prompt_notes: dict[str, str]) -> dict[str, Any]:
    m = data.manifest  # read by records.read_manifest: a field that is there has its type (model: an object)
    model = m.get("model", {}).get("id")
    info = m.get("model_info", {})
    backend = m.get("settings", {}).get("backend") or m.get("backend", {}).get("backend")
    return {
        "model": {"pretrained_model_name_or_path": model, "revision": m.get("model", {}).get("revision")},
        "tokenizer": {"pretrained_model_name_or_path": model},
        "openapi": backend == "openai",
        "target_dataset": sorted(data.samples),
        "torch_dtype": TORCH_DTYPES.get(info.get("precision") or ""),
        "custom_prompt_template": None,
        "metainfo": {"version": defaults.DATA_VERSION, "basemodel_name": model, "model_type": info.get("model_type"),
                     "data_type": m.get("split"), "num_few_shots": m.get("num_few_shots"),
                     "max_num_samples": m.get("max_num_samples")},
        "generator_kwargs": {"do_sample": False, "top_p": 1.0, "repetition_penalty": 1.0},
        "jleval": {"run": data.path.name, "profile": data.scores.get("profile"),
                   "prompt_style": m.get("prompt_style"), "settings": m.get("settings"), "model_info": info or None,
                   "avg_present_categories": (data.scores.get("avg") or {}).get("value"),
                   "prompt_not_written": prompt_notes, "notes": data.notes},
    }


# ------------------------------------------------------------------------------------------------ JSON Lines


def to_jsonl_rows(data: RunData) -> list[dict[str, Any]]:
    m = data.manifest
    settings = m.get("settings", {})
    common = {"run": data.path.name, "model": m.get("model", {}).get("id"), "split": m.get("split"),
              "num_few_shots": m.get("num_few_shots"), "max_num_samples": m.get("max_num_samples"),
              "prompt_style": m.get("prompt_style"), "template": settings.get("template") or m.get("template"),
              "template_sha256": settings.get("template_sha256")}
    return [{**common, "task": task, "id": r["id"], "input": r["input"], "generation": r["generation"],
             "pred": r["pred"], "gold": r["gold"], "scores": r["scores"], "error": r["error"]}
            for task, rows in data.samples.items() for r in rows]


# ------------------------------------------------------------------------------------------------ entry point


def export_runs(run_dirs: list[Path], out_dir: Path, fmt: str = "llm-jp-eval",
                data_dir: Path | None = None) -> tuple[list[Path], list[str]]:
    """Write one file per run into out_dir (`<run>.json` or `<run>.jsonl`), all or nothing. Returns (paths,
    notes), the notes naming runs that were scored first and prompts that could not be written."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    if not run_dirs:
        raise UsageError("no run folder given", "pass one or more folders written by `jleval run`")
    names = [Path(p).name for p in run_dirs]
    if len(set(names)) != len(names):
        raise UsageError("two runs have the same folder name", "each run becomes <name>.json: rename one")
    files: dict[Path, bytes] = {}
    notes: list[str] = []
    for run_dir in run_dirs:
        data = load_scored(Path(run_dir))
        notes += data.notes
        if fmt == "jsonl":
            files[Path(out_dir) / f"{data.path.name}.jsonl"] = b"".join(
                encode_json(r, None) + b"\n" for r in to_jsonl_rows(data))
        else:
            doc = to_llm_jp_eval(data, data_dir)
            notes += [f"{data.path.name}: {t}: prompt not written ({why})"
                      for t, why in doc["config"]["jleval"]["prompt_not_written"].items()]
            files[Path(out_dir) / f"{data.path.name}.json"] = encode_json(doc) + b"\n"
    try:
        atomic_write_many(files)
    except OSError as e:
        raise OutputError(f"cannot write {e.filename or out_dir}: {e.strerror or e}",
                          "pass --out with a writable folder") from None
    return list(files), notes
