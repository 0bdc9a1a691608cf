"""The arena: open-ended answers judged pairwise by an LLM, ranked with Bradley–Terry.

    judge(judge_backend, run_dirs, out_path, ...)   -> JudgeReport   (judge.py; appends to judgments.jsonl)
    rank_files(paths, runs=None, ...)                -> Ranking       (reads judgments, checks models, fits)
    rank_judgments(paths, seed=0, ...)               -> dict          (the same, as arena.json's document)
    write_ranking(ranking, out_dir, title=None)      -> {"csv", "json", "png"} paths
    rank(judgments, ...)                             -> Ranking       (bt.py; in-memory judgments)

File formats and statistics: docs/arena.md. Heavy modules (scipy, matplotlib) load only when used.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jleval import defaults


def judge(*args: Any, **kwargs: Any):
    from jleval.arena.judge import judge as _judge

    return _judge(*args, **kwargs)


def rank(*args: Any, **kwargs: Any):
    from jleval.arena.bt import rank as _rank

    return _rank(*args, **kwargs)


def rank_files(
    paths: Sequence[Path | str],
    runs: Sequence[Path | str] | None = None,
    *,
    names: Sequence[str] | None = None,
    n_bootstrap: int = defaults.BOOTSTRAP,
    seed: int = defaults.SEED,
    method: str = "bootstrap",
    prior_sd: float | None = None,
    chains: int = 8,
    draws: int = 2500,
    burn: int = 500,
):
    """Rank the judgments in `paths` (JSONL; several files are pooled). With `runs` (run folders, named by their
    manifest's model id or by `names`), every judged model must be one of them (UnknownModelError otherwise)."""
    from jleval.arena.bt import DEFAULT_PRIOR_SD
    from jleval.arena.bt import rank as _rank
    from jleval.arena.io import check_models, read_many

    if not paths:
        from jleval.errors import UsageError

        raise UsageError("no judgments file given", "pass the JSONL file(s) written by `jleval arena judge`")
    judgments = read_many(paths)
    sources = ", ".join(str(p) for p in paths)
    if runs:
        check_models(judgments, _run_models(paths, runs, names), where=sources)
    return _rank(judgments, n_bootstrap=n_bootstrap, seed=seed, method=method,
                 prior_sd=DEFAULT_PRIOR_SD if prior_sd is None else prior_sd, chains=chains, draws=draws, burn=burn,
                 sources=sources)


def _run_models(paths: Sequence[Path | str], runs: Sequence[Path | str], names: Sequence[str] | None) -> set[str]:
    """The models the run folders answer as: their manifests' model ids (or `names`), plus the names given to
    them at judging time (--name), which the judgments' sidecars record with their run folder."""
    from jleval.arena.io import read_meta
    from jleval.arena.judge import load_answers

    known = {a.model for a in load_answers(runs, names)}
    folders = {Path(r).resolve() for r in runs}
    for p in paths:
        for model, info in ((read_meta(p) or {}).get("models") or {}).items():
            if isinstance(info, dict) and info.get("run_dir") and Path(info["run_dir"]).resolve() in folders:
                known.add(model)
    return known


def rank_judgments(paths: Sequence[Path | str], *, seed: int = 0, **kwargs: Any) -> dict[str, Any]:
    """`rank_files(...)` as the JSON document of arena.json (for `jleval table`): "models" holds one dict per
    model, best first ("model", "rating", "ci68", "ci95", "plus_minus_68", "p_stronger_than_next", ...)."""
    return rank_files(paths, seed=seed, **kwargs).to_json()


def write_ranking(ranking, out_dir: Path | str, title: str | None = None, stem: str = "arena") -> dict[str, Path]:
    """Write <out_dir>/<stem>.csv, .json and .png (all or nothing; jleval.render.files). Returns the paths."""
    from jleval.render.files import write_arena

    return write_arena(ranking, out_dir, title=title, stem=stem)
