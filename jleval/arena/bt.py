"""Bradley–Terry ranking of arena judgments, with bootstrap intervals and an optional Bayesian posterior.

The model (Rakuda's, jrank/make_ranking.py): the answer of model i shown first against model j wins with
probability logistic(alpha + beta_i - beta_j); `alpha` is the first-position advantage, fitted only when some
outcomes come from a single presentation order (an outcome judged in both orders, or with unknown order, has no
position term). Ties count half a win for each side: the log-likelihood of an outcome with score y in {1, 0.5, 0}
is y*d - log(1 + e^d).

A weak Gaussian prior N(0, prior_sd^2) on every strength (and on alpha) makes the fit a penalised maximum
likelihood (MAP). It changes nothing visible for models with both wins and losses, but keeps a model with only
wins (whose maximum-likelihood strength is +infinity) finite, and it pins the mean strength to 0 (the optimum
of the penalty has sum(beta) = 0 exactly), so ratings average 1000 by construction. Ratings use Rakuda's scale:
rating = 1000 + 400/ln(10) * beta (about 174 points per unit of strength).

Speed: outcomes are reduced to sufficient statistics per cell (model pair, position sign): the count and the
summed score. The full-data fit is scipy's L-BFGS-B (analytic gradient), polished by Newton steps. The bootstrap
resamples outcomes with replacement (seeded), turns each resample into cell sums with one bincount, and fits
all resamples at once with batched Newton iterations warm-started from the full-data estimate (sparse design
matrices, one batched linear solve per iteration, a per-resample backtracking line search); a resample that
does not converge falls back to L-BFGS-B.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from jleval import defaults
from jleval.arena.io import Judgment, Outcome, OutcomeStats, collect_outcomes, require_outcomes

SCALE = 400.0 / math.log(10.0)  # rating points per unit of strength (Elo's 400 per factor of 10 in odds)
INIT = 1000.0  # the mean rating
DEFAULT_PRIOR_SD = 3.0  # logits (about 520 rating points): weak


# ----- data ---------------------------------------------------------------------------------------------------

@dataclass
class BTData:
    """Outcomes encoded for the fit. Cells are unique (i < j, position sign) combinations; `obs_cell` and
    `obs_y` give each outcome's cell and the score of the cell's first-listed model i."""

    models: tuple[str, ...]
    ci: np.ndarray
    cj: np.ndarray
    cs: np.ndarray
    obs_cell: np.ndarray
    obs_y: np.ndarray
    has_position: bool

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def n_params(self) -> int:
        return self.n_models + int(self.has_position)

    def cell_sums(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(count per cell, summed score per cell) for the full data (weights None) or weighted outcomes."""
        c = len(self.ci)
        w = np.ones_like(self.obs_y) if weights is None else weights
        return (np.bincount(self.obs_cell, weights=w, minlength=c),
                np.bincount(self.obs_cell, weights=w * self.obs_y, minlength=c))


def encode(outcomes: Sequence[Outcome], models: Sequence[str] | None = None) -> BTData:
    """Encode outcomes. `models` fixes the model order (default: sorted names of the models that appear)."""
    seen = {m for o in outcomes for m in (o.model_a, o.model_b)}
    names = tuple(models) if models is not None else tuple(sorted(seen))
    index = {m: k for k, m in enumerate(names)}
    # per outcome: model a's and model b's index and the position sign (integers), and a's score
    a, b, s = np.array([(index[o.model_a], index[o.model_b], o.position) for o in outcomes],
                       dtype=np.int64).reshape(-1, 3).T
    y = np.fromiter((o.score_a for o in outcomes), dtype=float, count=len(outcomes))
    swap = a > b  # canonical orientation i < j: swap the models, flip the score and the position sign
    i, j = np.where(swap, b, a), np.where(swap, a, b)
    y, s = np.where(swap, 1.0 - y, y), np.where(swap, -s, s)
    n = len(names)
    code = (i * n + j) * 3 + (s + 1)
    uniq, obs_cell = np.unique(code, return_inverse=True)
    pair, sign = np.divmod(uniq, 3)
    ci, cj = np.divmod(pair, n)
    return BTData(names, ci, cj, sign - 1, obs_cell.astype(np.int64), y, bool(np.any(s != 0)))


# ----- the penalised likelihood -------------------------------------------------------------------------------

class _Problem:
    """Sparse design matrices shared by every fit of one data set (full data, resamples, MCMC)."""

    def __init__(self, data: BTData, prior_sd: float) -> None:
        from scipy import sparse

        self.data = data
        n, p, c = data.n_models, data.n_params, len(data.ci)
        rows = np.arange(c)
        cols = [data.ci, data.cj]
        vals = [np.ones(c), -np.ones(c)]
        rr = [rows, rows]
        if data.has_position:
            keep = data.cs != 0
            rr.append(rows[keep])
            cols.append(np.full(int(keep.sum()), n))
            vals.append(data.cs[keep].astype(float))
        r, cc, v = np.concatenate(rr), np.concatenate(cols), np.concatenate(vals)
        self.X = sparse.csr_matrix((v, (r, cc)), shape=(c, p))
        self.XT = self.X.T.tocsr()
        # row c of M holds the outer product x_c x_c^T flattened: H = sum_c v_c x_c x_c^T = (v @ M) reshaped.
        # Position entries exist only for a subset of rows, so every pair of entry kinds is aligned by row.
        o_r, o_c, o_v = [], [], []
        for (r1, c1, v1), (r2, c2, v2) in itertools.product(zip(rr, cols, vals), repeat=2):
            common, i1, i2 = np.intersect1d(r1, r2, return_indices=True)
            o_r.append(common)
            o_c.append(c1[i1] * p + c2[i2])
            o_v.append(v1[i1] * v2[i2])
        self.MT = sparse.csr_matrix((np.concatenate(o_v), (np.concatenate(o_c), np.concatenate(o_r))),
                                    shape=(p * p, c))
        self.prec = np.full(p, 1.0 / prior_sd**2)

    def margins(self, theta: np.ndarray) -> np.ndarray:
        """d per cell for each row of theta (B x P) -> (B x C)."""
        return np.asarray(self.X @ theta.T).T

    def objective(self, theta: np.ndarray, W: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Negative log posterior (up to a constant) for each row of theta: (B x P) -> (B,)."""
        d = self.margins(theta)
        return (W * np.logaddexp(0.0, d) - Y * d).sum(axis=1) + 0.5 * (self.prec * theta**2).sum(axis=1)

    def gradient(self, theta: np.ndarray, W: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.special import expit

        prob = expit(self.margins(theta))
        grad = np.asarray(self.XT @ (W * prob - Y).T).T + self.prec * theta
        return grad, prob

    def hessian(self, prob: np.ndarray, W: np.ndarray) -> np.ndarray:
        p = self.data.n_params
        v = W * prob * (1.0 - prob)
        h = np.asarray(self.MT @ v.T).T.reshape(-1, p, p)
        h[:, np.arange(p), np.arange(p)] += self.prec
        return h

    def fit_lbfgs(self, W: np.ndarray, Y: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, bool]:
        from scipy.optimize import minimize

        W2, Y2 = W[None, :], Y[None, :]

        def fun(x):
            t = x[None, :]
            g, _ = self.gradient(t, W2, Y2)
            return float(self.objective(t, W2, Y2)[0]), g[0]

        res = minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-9, "ftol": 1e-15})
        return res.x, bool(res.success)

    def newton(self, theta: np.ndarray, W: np.ndarray, Y: np.ndarray, max_iter: int = 50,
               tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
        """Batched damped Newton: theta (B x P) warm start, W/Y (B x C). Returns theta and a converged mask."""
        theta = theta.copy()
        active = np.ones(len(theta), dtype=bool)
        converged = np.zeros(len(theta), dtype=bool)
        for _ in range(max_iter):
            idx = np.flatnonzero(active)
            if idx.size == 0:
                break
            t, w, y = theta[idx], W[idx], Y[idx]
            grad, prob = self.gradient(t, w, y)
            step = np.linalg.solve(self.hessian(prob, w), grad[:, :, None])[:, :, 0]
            decrement = np.einsum("bp,bp->b", grad, step)  # Newton decrement squared
            small = decrement <= tol
            done = small | ~np.isfinite(decrement)  # NaN/inf: stop here, the caller falls back to L-BFGS-B
            converged[idx[small]] = True
            f0 = self.objective(t, w, y)
            lr = np.ones(len(idx))
            new = t - step
            f1 = self.objective(new, w, y)
            for _ in range(30):  # backtracking (Armijo) per resample
                bad = ~(f1 <= f0 - 1e-4 * lr * decrement) & ~done
                if not bad.any():
                    break
                lr[bad] *= 0.5
                new[bad] = t[bad] - lr[bad, None] * step[bad]
                f1[bad] = self.objective(new[bad], w[bad], y[bad])
            theta[idx[~done]] = new[~done]
            active[idx[done]] = False
        return theta, converged & np.isfinite(theta).all(axis=1)


# ----- results ------------------------------------------------------------------------------------------------

@dataclass
class ModelRating:
    rank: int
    model: str
    rating: float  # 1000 + SCALE * strength
    strength: float  # beta (logits), centred
    ci68: tuple[float, float] | None  # rating interval
    ci95: tuple[float, float] | None
    matches: float  # outcomes involving the model (a both-orders match counts once)
    wins: float
    losses: float
    ties: float
    p_stronger_than_next: float | None = None  # posterior probability; only with method="posterior"

    @property
    def plus_minus_68(self) -> float | None:
        """Half-width of the 68% interval in rating points (Rakuda's "±")."""
        return None if self.ci68 is None else (self.ci68[1] - self.ci68[0]) / 2


@dataclass
class Ranking:
    rows: list[ModelRating]
    position: dict[str, Any] | None  # first-position advantage: strength, rating points, intervals
    method: str  # "bootstrap" | "posterior" | "none"
    settings: dict[str, Any]
    stats: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        rows = []
        for r in self.rows:
            d = asdict(r)
            d["ci68"] = list(r.ci68) if r.ci68 else None
            d["ci95"] = list(r.ci95) if r.ci95 else None
            d["plus_minus_68"] = r.plus_minus_68
            rows.append(d)
        from jleval.records import ARENA_FORMAT

        return {"format": ARENA_FORMAT, "models": rows, "position": self.position, "method": self.method,
                "settings": self.settings,
                "stats": self.stats, "warnings": self.warnings, "diagnostics": self.diagnostics,
                "scale": {"points_per_unit_strength": SCALE, "mean_rating": INIT}}


def to_rating(strength: np.ndarray | float) -> np.ndarray | float:
    return INIT + SCALE * strength


# ----- fitting ------------------------------------------------------------------------------------------------

def fit_map(data: BTData, prior_sd: float = DEFAULT_PRIOR_SD, problem: _Problem | None = None) -> np.ndarray:
    """The penalised maximum-likelihood estimate on the full data: strengths (centred) followed by alpha."""
    prob = problem or _Problem(data, prior_sd)
    W, Y = data.cell_sums()
    x, _ = prob.fit_lbfgs(W, Y, np.zeros(data.n_params))
    theta, ok = prob.newton(x[None, :], W[None, :], Y[None, :])
    if ok[0]:
        x = theta[0]
    x = x.copy()
    x[: data.n_models] -= x[: data.n_models].mean()
    return x


def bootstrap(data: BTData, theta_hat: np.ndarray, n: int, seed: int, prior_sd: float = DEFAULT_PRIOR_SD,
              problem: _Problem | None = None, chunk: int = 250) -> tuple[np.ndarray, int]:
    """Refit `n` resamples of the outcomes (with replacement, seeded). Returns the (n x P) estimates (strengths
    centred) and how many resamples needed the L-BFGS fallback."""
    prob = problem or _Problem(data, prior_sd)
    rng = np.random.default_rng(seed)
    n_obs, n_cells = len(data.obs_y), len(data.ci)
    out = np.empty((n, data.n_params))
    fallbacks = 0
    for start in range(0, n, chunk):
        b = min(chunk, n - start)
        draws = rng.integers(0, n_obs, size=(b, n_obs))
        flat = (np.arange(b)[:, None] * n_cells + data.obs_cell[draws]).ravel()
        W = np.bincount(flat, minlength=b * n_cells).reshape(b, n_cells).astype(float)
        Y = np.bincount(flat, weights=data.obs_y[draws].ravel(), minlength=b * n_cells).reshape(b, n_cells)
        theta, ok = prob.newton(np.repeat(theta_hat[None, :], b, axis=0), W, Y)
        for k in np.flatnonzero(~ok):
            theta[k], _ = prob.fit_lbfgs(W[k], Y[k], theta_hat.copy())
            fallbacks += 1
        out[start:start + b] = theta
    out[:, : data.n_models] -= out[:, : data.n_models].mean(axis=1, keepdims=True)
    return out, fallbacks


def posterior(data: BTData, theta_hat: np.ndarray, seed: int, prior_sd: float = DEFAULT_PRIOR_SD,
              chains: int = 8, draws: int = 2500, burn: int = 500, problem: _Problem | None = None,
              ) -> tuple[np.ndarray, dict[str, Any]]:
    """Posterior draws of (strengths, alpha) under the same likelihood and N(0, prior_sd^2) priors.

    Metropolis–Hastings in numpy, `chains` chains run side by side (vectorised). Each iteration applies two
    kernels: an independence proposal from a multivariate t (4 d.o.f.) centred on the MAP estimate with the
    Laplace covariance (accepted most of the time when the posterior is near-Gaussian, as it usually is here),
    then a random-walk step scaled 2.38/sqrt(P) (robust where the posterior is skewed, e.g. a model with only
    wins). Returns the pooled draws after burn-in (strengths centred) and diagnostics (acceptance rates, the
    largest split R-hat over parameters)."""
    prob = problem or _Problem(data, prior_sd)
    rng = np.random.default_rng(seed)
    W, Y = data.cell_sums()
    Wk, Yk = np.repeat(W[None, :], chains, axis=0), np.repeat(Y[None, :], chains, axis=0)
    p = data.n_params
    _, pr = prob.gradient(theta_hat[None, :], W[None, :], Y[None, :])
    H = prob.hessian(pr, W[None, :])[0]
    cov = np.linalg.inv(H)
    cov = (cov + cov.T) / 2
    L = np.linalg.cholesky(cov)
    Hs = H  # precision of the proposal's Gaussian core
    nu = 4.0

    def log_q(t):  # independence proposal log density (up to a constant)
        z = t - theta_hat
        quad = np.einsum("bp,pq,bq->b", z, Hs, z)
        return -0.5 * (nu + p) * np.log1p(quad / nu)

    def t_draw(k):
        z = rng.standard_normal((k, p)) @ L.T
        return theta_hat + z * np.sqrt(nu / rng.chisquare(nu, size=(k, 1)))

    def log_post(t):
        return -prob.objective(t, Wk, Yk)

    theta = t_draw(chains)  # overdispersed starts
    lp, lq = log_post(theta), log_q(theta)
    rw_scale = 2.38 / math.sqrt(p)
    kept = np.empty((draws, chains, p))
    acc_ind = acc_rw = 0
    for it in range(burn + draws):
        prop = t_draw(chains)
        lp_new, lq_new = log_post(prop), log_q(prop)
        accept_ind = np.log(rng.random(chains)) < (lp_new - lp) + (lq - lq_new)
        theta[accept_ind], lp[accept_ind], lq[accept_ind] = prop[accept_ind], lp_new[accept_ind], lq_new[accept_ind]
        prop = theta + rw_scale * rng.standard_normal((chains, p)) @ L.T
        lp_new = log_post(prop)
        accept_rw = np.log(rng.random(chains)) < lp_new - lp
        theta[accept_rw], lp[accept_rw] = prop[accept_rw], lp_new[accept_rw]
        lq = log_q(theta)
        if it >= burn:
            acc_ind += int(accept_ind.sum())
            acc_rw += int(accept_rw.sum())
            kept[it - burn] = theta
    kept[:, :, : data.n_models] -= kept[:, :, : data.n_models].mean(axis=2, keepdims=True)
    diag = {"sampler": "Metropolis-Hastings (independence t4 at the MAP + random walk)", "chains": chains,
            "draws_per_chain": draws, "burn_in": burn,
            "acceptance_independence": acc_ind / (draws * chains), "acceptance_random_walk": acc_rw / (draws * chains),
            "max_split_rhat": _split_rhat(kept)}
    return kept.reshape(-1, p), diag


def _split_rhat(x: np.ndarray) -> float:
    """Largest split R-hat over parameters; x is (draws, chains, P)."""
    n = x.shape[0] // 2
    if n < 2:
        return float("nan")
    halves = np.concatenate([x[:n], x[n:2 * n]], axis=1)  # (n, 2*chains, P)
    means = halves.mean(axis=0)
    w = halves.var(axis=0, ddof=1).mean(axis=0)
    b = n * means.var(axis=0, ddof=1)
    var = (n - 1) / n * w + b / n
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(np.where(w > 0, var / w, 1.0))
    return float(np.nanmax(r))


# ----- checks -------------------------------------------------------------------------------------------------

def _first_position_share(data: BTData) -> float | None:
    """Share of single-order outcomes won (ties half) by the answer shown first; None without any."""
    pos = data.cs[data.obs_cell]  # +1: model i was shown first, -1: model j was; 0: both orders
    single = pos != 0
    if not single.any():
        return None
    y = data.obs_y[single]
    return float(np.where(pos[single] > 0, y, 1.0 - y).mean())


def _record(data: BTData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per model: matches, wins, losses, ties (a both-orders match counts once)."""
    n = data.n_models
    i, j = data.ci[data.obs_cell], data.cj[data.obs_cell]
    y = data.obs_y
    win_i, tie, win_j = (y == 1.0).astype(float), (y == 0.5).astype(float), (y == 0.0).astype(float)
    matches = np.bincount(i, minlength=n) + np.bincount(j, minlength=n)
    wins = np.bincount(i, weights=win_i, minlength=n) + np.bincount(j, weights=win_j, minlength=n)
    losses = np.bincount(i, weights=win_j, minlength=n) + np.bincount(j, weights=win_i, minlength=n)
    ties = np.bincount(i, weights=tie, minlength=n) + np.bincount(j, weights=tie, minlength=n)
    return matches.astype(float), wins, losses, ties


def _one_sided(data: BTData, prior_sd: float, wins, losses, ties) -> list[str]:
    """Models with only wins or only losses: infinite maximum-likelihood strengths, held by the prior."""
    sides = (("wins", wins, losses, "infinite", "a lower"), ("losses", losses, wins, "-infinite", "an upper"))
    out = []
    for k, m in enumerate(data.models):
        for what, these, others, limit, bound in sides:
            if these[k] > 0 and others[k] == 0 and ties[k] == 0:
                out.append(f"{m} has only {what} ({these[k]:g}): its maximum-likelihood strength is {limit}; the "
                           f"N(0, {prior_sd:g}^2) prior keeps it finite, so read its rating as {bound} bound")
    return out


def _existence_warnings(data: BTData, prior_sd: float, wins, losses, ties) -> list[str]:
    """The maximum-likelihood strengths are finite only if the "scored against" graph is strongly connected."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    out = _one_sided(data, prior_sd, wins, losses, ties)
    n = data.n_models
    i, j = data.ci[data.obs_cell], data.cj[data.obs_cell]
    y = data.obs_y
    src = np.concatenate([i[y > 0], j[y < 1]])  # an edge u -> v: u scored (won or tied) against v
    dst = np.concatenate([j[y > 0], i[y < 1]])
    g = sparse.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    n_weak, weak = connected_components(g, directed=True, connection="weak")
    if n_weak > 1:
        models = np.array(data.models)
        groups = [sorted(models[weak == c]) for c in range(n_weak)]
        out.append("the models fall into groups that never met, directly or through others: "
                   + "; ".join("{" + ", ".join(g_) + "}" for g_ in groups)
                   + " — ratings across groups are set by the prior only: schedule matches between them")
    elif not out and connected_components(g, directed=True, connection="strong")[0] > 1:
        out.append("some group of models never scored against another (the win graph is not strongly "
                   "connected): their gap is held finite by the prior; more matches will fix it")
    return out


# ----- the public entry point ---------------------------------------------------------------------------------

#: The most bootstrap resamples / posterior draws accepted (each resample is a fit held in memory at once).
MAX_RESAMPLES = 100_000
#: The widest prior accepted: a wider one adds less than float64 can hold to the fit's Hessian, which then is
#: singular (the strengths are identified only through the prior's pull on their mean).
MAX_PRIOR_SD = 1000.0


def check_options(method: str, n_bootstrap: int, seed: int, prior_sd: float, chains: int = 8, draws: int = 2500,
                  burn: int = 500) -> None:
    """Refuse settings the ranking cannot honour before any work: one line naming the option."""
    from jleval.errors import UsageError

    if method not in ("bootstrap", "posterior"):
        raise UsageError(f"unknown ranking method {method!r}", "use 'bootstrap' or 'posterior'")
    if not isinstance(prior_sd, (int, float)) or not math.isfinite(prior_sd) or not 0 < prior_sd <= MAX_PRIOR_SD:
        raise UsageError(f"--prior-sd must be a number above 0 and at most {MAX_PRIOR_SD:g}, got {prior_sd!r}",
                         "use e.g. 3.0 (logits)")
    whole_numbers = (  # option, value, lowest, highest, the range in words, fix
        ("--seed", seed, 0, math.inf, ">= 0", "e.g. --seed 0"),
        ("--bootstrap", n_bootstrap, 0, MAX_RESAMPLES, f"from 0 to {MAX_RESAMPLES}", None),
        ("--chains", chains, 1, MAX_RESAMPLES, f"from 1 to {MAX_RESAMPLES}", None),
        ("--draws", draws, 1, MAX_RESAMPLES, f"from 1 to {MAX_RESAMPLES}", None),
        ("--burn", burn, 0, MAX_RESAMPLES, f"from 0 to {MAX_RESAMPLES}", None),
    )
    for name, value, low, high, allowed, fix in whole_numbers:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise UsageError(f"{name} must be a whole number {allowed}, got {value!r}", fix)


def _outcome_warnings(ostats: OutcomeStats) -> list[str]:
    out = []
    if ostats.incomplete:
        out.append(f"{ostats.incomplete} two-order match(es) left out: one of their two verdicts is unusable")
    if ostats.both_unusable:
        out.append(f"{ostats.both_unusable} two-order match(es) left out: neither verdict is usable")
    if ostats.errors:
        out.append(f"{ostats.errors} judgment line(s) without a usable verdict left out "
                   f"({', '.join(f'{k}: {v}' for k, v in sorted(ostats.error_reasons.items()))})")
    return out


@dataclass
class _Draws:
    """The ranking's centre (strengths + position term), its resamples or posterior draws, and diagnostics."""
    center: np.ndarray
    samples: np.ndarray | None
    diagnostics: dict[str, Any]


def _draw(data: BTData, theta_hat: np.ndarray, problem: _Problem, method: str, n_bootstrap: int, seed: int,
          prior_sd: float, chains: int, draws: int, burn: int, warnings: list[str]) -> _Draws:
    if method == "bootstrap" and n_bootstrap > 0:
        samples, fallbacks = bootstrap(data, theta_hat, n_bootstrap, seed, prior_sd, problem)
        return _Draws(theta_hat, samples, {"bootstrap_resamples": n_bootstrap, "lbfgs_fallbacks": fallbacks})
    if method == "posterior":
        samples, diagnostics = posterior(data, theta_hat, seed, prior_sd, chains, draws, burn, problem)
        if diagnostics["max_split_rhat"] > 1.05:
            warnings.append(f"the posterior chains may not have converged (split R-hat "
                            f"{diagnostics['max_split_rhat']:.3f} > 1.05): raise --draws")
        return _Draws(np.median(samples, axis=0), samples, diagnostics)
    return _Draws(theta_hat, None, {})


def _rows(data: BTData, d: _Draws, method: str, q: np.ndarray | None) -> list[ModelRating]:
    n = data.n_models
    strengths = d.center[:n]
    order = np.argsort(-strengths, kind="stable")
    p_next: list[float | None] = [None] * n  # the last model has no next
    if d.samples is not None and method == "posterior":
        s = d.samples[:, order]
        p_next = [float(x) for x in (s[:, :-1] > s[:, 1:]).mean(axis=0)] + [None]
    matches, wins, losses, ties = _record(data)
    rows = []
    for r, k in enumerate(order):
        ci68 = ci95 = None
        if q is not None:
            ci68 = (float(to_rating(q[1, k])), float(to_rating(q[2, k])))
            ci95 = (float(to_rating(q[0, k])), float(to_rating(q[3, k])))
        rows.append(ModelRating(
            rank=r + 1, model=data.models[k], rating=float(to_rating(strengths[k])), strength=float(strengths[k]),
            ci68=ci68, ci95=ci95, matches=float(matches[k]), wins=float(wins[k]), losses=float(losses[k]),
            ties=float(ties[k]),
            p_stronger_than_next=p_next[r],
        ))
    return rows


def _position(data: BTData, d: _Draws, q: np.ndarray | None, warnings: list[str]) -> dict[str, Any] | None:
    if not data.has_position:
        return None
    n = data.n_models
    a = float(d.center[n])
    position: dict[str, Any] = {"strength": a, "rating_points": SCALE * a}
    first = _first_position_share(data)
    if first is not None and not 0.05 < first < 0.95:
        warnings.append(f"the judge gave {first:.0%} of its single-order verdicts to the first-shown answer: "
                        "the position term is then set by the prior more than by the data, and single-order "
                        "judging cannot tell model strength from position; judge both orders (the default)")
    if q is not None:
        position["ci95_strength"] = [float(q[0, n]), float(q[3, n])]
        position["ci68_strength"] = [float(q[1, n]), float(q[2, n])]
    return position


def rank(
    judgments: Iterable[Judgment] | None = None,
    *,
    outcomes: Sequence[Outcome] | None = None,
    n_bootstrap: int = defaults.BOOTSTRAP,
    seed: int = defaults.SEED,
    prior_sd: float = DEFAULT_PRIOR_SD,
    method: str = "bootstrap",
    chains: int = 8,
    draws: int = 2500,
    burn: int = 500,
    sources: str = "the judgments",
) -> Ranking:
    """Rank models from judgment lines (or ready `outcomes`).

    method="bootstrap": rating = the penalised MLE; 68%/95% intervals = percentiles (16/84, 2.5/97.5) of
    `n_bootstrap` seeded resamples of the outcomes (0 = no intervals).
    method="posterior": rating = posterior median; intervals = posterior quantiles; plus, for each model, the
    posterior probability that it is stronger than the model ranked just below it.
    """
    check_options(method, n_bootstrap, seed, prior_sd, chains, draws, burn)
    if outcomes is None:
        outcomes, ostats = collect_outcomes(judgments or [])
    else:
        ostats = OutcomeStats(lines=len(outcomes), unordered=len(outcomes))
    require_outcomes(outcomes, ostats, sources)
    data = encode(outcomes)
    problem = _Problem(data, prior_sd)
    theta_hat = fit_map(data, prior_sd, problem)
    _, wins, losses, ties = _record(data)
    warnings = _existence_warnings(data, prior_sd, wins, losses, ties) + _outcome_warnings(ostats)
    d = _draw(data, theta_hat, problem, method, n_bootstrap, seed, prior_sd, chains, draws, burn, warnings)
    q = None if d.samples is None else np.percentile(d.samples, [2.5, 16, 84, 97.5], axis=0)
    rows = _rows(data, d, method, q)
    position = _position(data, d, q, warnings)
    used = method if d.samples is not None else "none"
    settings: dict[str, Any] = {"method": used, "seed": seed, "prior_sd": prior_sd,
                "n_bootstrap": n_bootstrap if method == "bootstrap" else 0,
                "ties": "half a win each", "model": "Bradley-Terry with first-position term (Rakuda)",
                "prior": f"N(0, {prior_sd:g}^2) on each strength and on the position term (penalised MLE)"}
    if method == "posterior":
        settings.update({"chains": chains, "draws": draws, "burn": burn})
    stats = asdict(ostats) | {"outcomes": ostats.outcomes, "models": data.n_models}
    return Ranking(rows, position, used, settings, stats, warnings, d.diagnostics)
