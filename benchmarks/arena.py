"""Arena ranking: speed against naive baselines, and interval coverage on simulated tournaments.

    .venv/bin/python benchmarks/arena.py                 # speed + full coverage study (a few minutes)
    .venv/bin/python benchmarks/arena.py --quick         # speed + a small coverage study
    .venv/bin/python benchmarks/arena.py --skip-coverage # speed only

Speed: 20 models, 5,000 single-order judgments (first-position term fitted), 1,000 bootstrap resamples, on
2 threads. jleval's `rank()` (cell sufficient statistics, batched Newton warm-started at the full-data fit) is
timed end to end; the baselines refit resamples one at a time from zero with scipy's L-BFGS-B, (a) on the
per-judgment log-likelihood with finite-difference gradients (as Rakuda's make_ranking.py does) and (b) with
an analytic gradient. Baselines run `--baseline-resamples` resamples (default 100) and are extrapolated
linearly to 1,000 (the per-resample cost is constant); pass --baseline-resamples 1000 to time them in full.

Coverage: for each scenario, many tournaments with known strengths are simulated (jleval.arena.simulate);
we count how often the 68% and 95% intervals contain the true rating, and the Spearman correlation between
estimated and true strengths.
"""
from __future__ import annotations

import argparse
import json
import os
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "2")

import numpy as np  # noqa: E402 - after the thread limits above: the BLAS reads them when numpy loads


def naive_bootstrap(outcomes, models, n_resamples, seed, analytic_grad, prior_sd=3.0):
    """Per-resample refits from zero, one scipy.optimize.minimize call each, on per-judgment arrays."""
    from scipy.optimize import minimize
    from scipy.special import expit

    index = {m: k for k, m in enumerate(models)}
    i = np.array([index[o.model_a] for o in outcomes])
    j = np.array([index[o.model_b] for o in outcomes])
    y = np.array([o.score_a for o in outcomes])
    s = np.array([o.position for o in outcomes], dtype=float)
    n = len(models)
    rng = np.random.default_rng(seed)

    def nll(theta, ii, jj, yy, ss):
        d = theta[ii] - theta[jj] + theta[n] * ss
        return float(np.sum(np.logaddexp(0.0, d) - yy * d) + 0.5 * np.sum(theta**2) / prior_sd**2)

    def nll_grad(theta, ii, jj, yy, ss):
        d = theta[ii] - theta[jj] + theta[n] * ss
        r = expit(d) - yy
        g = np.bincount(ii, r, minlength=n + 1) - np.bincount(jj, r, minlength=n + 1)
        g[n] = np.sum(r * ss)
        return nll(theta, ii, jj, yy, ss), g + theta / prior_sd**2

    out = np.empty((n_resamples, n + 1))
    for b in range(n_resamples):
        k = rng.integers(0, len(y), len(y))
        args = (i[k], j[k], y[k], s[k])
        if analytic_grad:
            res = minimize(nll_grad, np.zeros(n + 1), args=args, jac=True, method="L-BFGS-B")
        else:
            res = minimize(nll, np.zeros(n + 1), args=args, method="L-BFGS-B")
        out[b] = res.x
    return out


def speed(baseline_resamples: int) -> dict:
    from jleval.arena.bt import rank
    from jleval.arena.io import collect_outcomes
    from jleval.arena.simulate import tournament

    _, lines = tournament(20, 5000, seed=2024, alpha=0.25)
    rank(lines[:200], n_bootstrap=10)  # warm imports (scipy, sparse) out of the timing
    t0 = time.perf_counter()
    r = rank(lines, n_bootstrap=1000, seed=0)
    ours = time.perf_counter() - t0
    outcomes, _ = collect_outcomes(lines)
    models = sorted({m for o in outcomes for m in (o.model_a, o.model_b)})
    result = {"models": 20, "judgments": 5000, "resamples": 1000, "threads": os.environ["OMP_NUM_THREADS"],
              "jleval_rank_s": ours, "lbfgs_fallbacks": r.diagnostics.get("lbfgs_fallbacks")}
    for label, grad in (("naive_numeric_grad", False), ("naive_analytic_grad", True)):
        t0 = time.perf_counter()
        naive_bootstrap(outcomes, models, baseline_resamples, 0, grad)
        el = time.perf_counter() - t0
        result[f"{label}_s_for_{baseline_resamples}"] = el
        result[f"{label}_s_per_1000"] = el * 1000 / baseline_resamples
    return result


SCENARIOS = [
    # name, n_models, n_matches, alpha, mode, method
    ("single order, position bias 0.2 (8 models, 600 matches)", 8, 600, 0.2, "single", "bootstrap"),
    ("both orders, position bias 0.2 (8 models, 600 matches)", 8, 600, 0.2, "both", "bootstrap"),
    ("both orders, strong position bias 0.6 (8 models, 600 matches)", 8, 600, 0.6, "both", "bootstrap"),
    ("plain lines, no order (8 models, 600 matches)", 8, 600, 0.0, "unordered", "bootstrap"),
    ("Rakuda-sized: single order, bias 0.2 (14 models, 1,400 matches)", 14, 1400, 0.2, "single", "bootstrap"),
    ("sparse: single order (10 models, 150 matches)", 10, 150, 0.2, "single", "bootstrap"),
    ("posterior (MCMC), single order (8 models, 600 matches)", 8, 600, 0.2, "single", "posterior"),
]


def coverage_study(sims: int, posterior_sims: int) -> list[dict]:
    from jleval.arena.simulate import coverage

    rows = []
    for name, m, n, alpha, mode, method in SCENARIOS:
        k = posterior_sims if method == "posterior" else sims
        t0 = time.perf_counter()
        kw = {"draws": 1500, "burn": 300} if method == "posterior" else {}
        c = coverage(k, n_models=m, n_matches=n, alpha=alpha, mode=mode, n_bootstrap=500, method=method,
                     seed=7, **kw)
        rows.append({"scenario": name, "sims": c.sims, "intervals": c.intervals, "coverage95": c.coverage95,
                     "coverage68": c.coverage68, "alpha_coverage95": c.alpha_coverage95,
                     "mean_spearman": c.mean_spearman, "min_spearman": c.min_spearman,
                     "mean_abs_error": c.mean_abs_error, "seconds": time.perf_counter() - t0})
        print(f"  {name}: 95% {c.coverage95:.3f}, 68% {c.coverage68:.3f}, spearman {c.mean_spearman:.3f} "
              f"({c.intervals} intervals, {rows[-1]['seconds']:.1f} s)", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small coverage study (30 sims per scenario)")
    ap.add_argument("--skip-coverage", action="store_true")
    ap.add_argument("--sims", type=int, default=500, help="simulated tournaments per bootstrap scenario")
    ap.add_argument("--posterior-sims", type=int, default=200, help="simulated tournaments for the MCMC scenario")
    ap.add_argument("--baseline-resamples", type=int, default=100)
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()

    print("speed: 20 models, 5,000 judgments, 1,000 bootstrap resamples, 2 threads", flush=True)
    sp = speed(args.baseline_resamples)
    print(f"  jleval rank():                          {sp['jleval_rank_s']:6.2f} s (L-BFGS fallbacks: "
          f"{sp['lbfgs_fallbacks']})")
    for label in ("naive_numeric_grad", "naive_analytic_grad"):
        per = sp[f"{label}_s_per_1000"]
        print(f"  {label:<38} {per:6.1f} s per 1,000 resamples (measured on {args.baseline_resamples}), "
              f"{per / sp['jleval_rank_s']:.0f}x slower")
    out = {"speed": sp}
    if not args.skip_coverage:
        sims = 30 if args.quick else args.sims
        psims = 15 if args.quick else args.posterior_sims
        print(f"coverage: {sims} tournaments per scenario ({psims} for the posterior), 500 resamples each", flush=True)
        out["coverage"] = coverage_study(sims, psims)
        print("\n| scenario | tournaments | intervals | 95% coverage | 68% coverage | position 95% "
              "| Spearman (mean / min) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in out["coverage"]:
            a = "—" if r["alpha_coverage95"] is None else f"{r['alpha_coverage95']:.3f}"
            print(f"| {r['scenario']} | {r['sims']} | {r['intervals']} | {r['coverage95']:.3f} | "
                  f"{r['coverage68']:.3f} | {a} | {r['mean_spearman']:.3f} / {r['min_spearman']:.3f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
