"""Library entry points used by the CLI that need more than one module (kept out of cli.py so that the CLI
stays a thin layer and scripts can call the same functions)."""
from __future__ import annotations

from pathlib import Path

from jleval import defaults
from jleval.fsutil import atomic_write_json


def dump_prompts(out: Path, tasks="all", split=defaults.SPLIT, num_few_shots=defaults.NUM_FEW_SHOTS,
                 max_num_samples=defaults.MAX_NUM_SAMPLES, template=defaults.TEMPLATE,
                 data_dir: Path | None = None, raw_dir: Path | None = None, version=defaults.DATA_VERSION,
                 include_non_commercial=False, skipped: dict[str, str] | None = None,
                 tasks_dir: Path | None = None) -> list[tuple[Path, int]]:
    """Render every selected task's prompts and write `<out>/<task>.eval-prompt.json` (upstream's dump format).
    Tasks whose split cannot be rendered are left out, with the reason, in `skipped` (when given); when no task
    can be rendered at all, that is an error."""
    from jleval.errors import RunError
    from jleval.jaster.preprocess import preprocess
    from jleval.prompts import dump_record, few_shots_for, load_eval_set, load_template, render
    from jleval.resources import default_data_dir
    from jleval.run import check_prompt_options
    from jleval.tasks import resolve_tasks

    check_prompt_options(split, num_few_shots, max_num_samples)
    specs = resolve_tasks(tasks, include_non_commercial=include_non_commercial, tasks_dir=tasks_dir)
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    preprocess(specs, data_dir, raw_dir=raw_dir, version=version)
    tmpl = load_template(template)
    written = []
    skipped = {} if skipped is None else skipped
    for spec in specs:
        if split not in spec.splits:
            skipped[spec.name] = f"has no {split} split (splits: {', '.join(spec.splits)})"
            continue
        if not (data_dir / version / "evaluation" / split / f"{spec.name}.json").is_file():
            skipped[spec.name] = f"its {split} set was not built (raw files missing; see `jleval preprocess`)"
            continue
        data = load_eval_set(data_dir, version, split, spec.name)
        samples = data["samples"] if max_num_samples < 0 else data["samples"][:max_num_samples]
        shots = few_shots_for(data_dir, version, spec, num_few_shots)
        prompts = [render(tmpl, spec, shots, s["input"]) for s in samples]
        config = {"dump_prompts": {"split": split, "num_few_shots": len(shots), "template": tmpl.name,
                                   "template_sha256": tmpl.sha256, "data_version": version}}
        path = Path(out) / f"{spec.name}.eval-prompt.json"
        atomic_write_json(path, dump_record(spec, tmpl, samples, prompts, max_num_samples, config))
        written.append((path, len(prompts)))
    if not written:
        why = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise RunError(f"no task's prompts can be rendered ({why})",
                       "build the sets with `jleval preprocess` (and --raw-dir DIR), or pick another --split")
    return written
