"""Simulated tournaments with known strengths: the check that the ranking recovers them and that its intervals
cover the truth as often as they claim (tests/test_arena_bt.py, benchmarks/arena.py, docs/arena.md).

Judges are simulated from the Bradley–Terry model itself: the answer shown first wins with probability
logistic(alpha + beta_first - beta_second). Modes:

- "single":    one order per match, drawn at random (the fit estimates alpha);
- "both":      each match judged in both orders, each verdict drawn independently; a disagreement is a tie.
               This is how jleval judges by default. It is not exactly a Bradley–Terry outcome: with a
               position bias alpha, the expected score is the mean of logistic(d + alpha) and logistic(d - alpha),
               slightly closer to 0.5 than logistic(d), so strengths are slightly compressed (measured in docs);
- "unordered": plain win/loss lines without order (alpha ignored).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jleval.arena.io import Judgment


def tournament(n_models: int, n_matches: int, seed: int, alpha: float = 0.0, mode: str = "single",
               strength_sd: float = 1.0) -> tuple[dict[str, float], list[Judgment]]:
    """True (centred) strengths by model name, and the judgment lines of `n_matches` random matches."""
    if mode not in ("single", "both", "unordered"):
        raise ValueError(f"unknown mode {mode!r}")
    rng = np.random.default_rng(seed)
    beta = rng.normal(0.0, strength_sd, n_models)
    beta -= beta.mean()
    names = [f"model-{k:02d}" for k in range(n_models)]
    a = rng.integers(0, n_models, n_matches)
    b = (a + rng.integers(1, n_models, n_matches)) % n_models  # never a self-match
    d = beta[a] - beta[b]
    truth = dict(zip(names, beta.tolist()))
    if mode == "unordered":
        a_wins = rng.random(n_matches) < 1.0 / (1.0 + np.exp(-d))
        return truth, [Judgment(names[a[k]], names[b[k]], "a" if a_wins[k] else "b") for k in range(n_matches)]
    # one array per presentation order: for every match, whether a's answer is shown first (and gets alpha)
    if mode == "single":  # one order per match, drawn at random
        a_first = [rng.random(n_matches) < 0.5]
    else:  # "both": every match with a shown first, then with b shown first
        a_first = [np.ones(n_matches, dtype=bool), np.zeros(n_matches, dtype=bool)]
    a_wins_by_order = [rng.random(n_matches) < 1.0 / (1.0 + np.exp(-(d + np.where(f, alpha, -alpha)))) for f in a_first]
    return truth, [Judgment(names[a[k]], names[b[k]], "a" if a_wins[k] else "b", first="a" if f[k] else "b",
                            match=f"sim{k}", judge="sim")
                   for k in range(n_matches) for f, a_wins in zip(a_first, a_wins_by_order)]


@dataclass
class Coverage:
    sims: int
    intervals: int  # model-level intervals checked (sims x models)
    coverage95: float
    coverage68: float
    mean_spearman: float
    min_spearman: float
    mean_abs_error: float  # |estimate - truth| in strength units, averaged over models and sims
    alpha_coverage95: float | None  # how often the 95% interval of the position term covers the true alpha


def coverage(sims: int, n_models: int = 8, n_matches: int = 600, alpha: float = 0.2, mode: str = "single",
             n_bootstrap: int = 400, method: str = "bootstrap", seed: int = 0, **rank_kw) -> Coverage:
    """Fit `sims` simulated tournaments and count how often each interval covers the true strength."""
    from scipy.stats import spearmanr

    from jleval.arena.bt import rank

    hit95 = hit68 = total = 0
    rhos, errs, alpha_hits, alpha_n = [], [], 0, 0
    for s in range(sims):
        truth, lines = tournament(n_models, n_matches, seed * 100_003 + s, alpha=alpha, mode=mode)
        r = rank(lines, n_bootstrap=n_bootstrap, seed=s, method=method, **rank_kw)
        est = {row.model: row for row in r.rows}
        names = sorted(truth)
        t = np.array([truth[m] for m in names])
        e = np.array([est[m].strength for m in names])
        rhos.append(spearmanr(t, e).statistic)
        errs.append(np.abs(t - e).mean())
        for m in names:
            ci95, ci68 = est[m].ci95, est[m].ci68
            if ci95 is None or ci68 is None:
                raise ValueError("coverage needs rating intervals: n_bootstrap must be > 0")
            lo95, hi95 = ci95
            lo68, hi68 = ci68
            rating = 1000.0 + 400.0 / np.log(10.0) * truth[m]
            hit95 += lo95 <= rating <= hi95
            hit68 += lo68 <= rating <= hi68
            total += 1
        if r.position is not None:  # (with intervals, checked above, the position term has them too)
            lo, hi = r.position["ci95_strength"]
            alpha_hits += lo <= alpha <= hi
            alpha_n += 1
    return Coverage(sims, total, float(hit95) / total, float(hit68) / total, float(np.mean(rhos)), float(np.min(rhos)),
                    float(np.mean(errs)), alpha_hits / alpha_n if alpha_n else None)
