"""The Pareto k̂ diagnostic of a fitted guide: is q close enough to the posterior to trust?

Draw S values z_s ~ q from the fitted guide and take the log importance weights
log w_s = log p(y, z_s) - log q(z_s).  Fit a generalized Pareto distribution (GPD),
F(x) = 1 - (1 + k x / sigma)^(-1/k), to the exceedances of the M = min(S/5, 3 sqrt(S)) largest weights
over the next one; its shape k̂ estimates how heavy the weights' right tail is (the number of finite
moments of the weights is about 1/k).  Yao, Vehtari, Simpson & Gelman, "Yes, but did it work?:
Evaluating variational inference", ICML 2018: k̂ < 0.7 the guide is usable (importance sampling
with it would converge at a practical rate), above it the guide misses mass the posterior has.
Thresholds and tail size: Vehtari, Simpson, Gelman, Yao & Gabry, "Pareto smoothed importance
sampling", JMLR 25 (2024).

The GPD fit is the empirical-Bayes estimator of Zhang & Stephens, "A new and efficient estimation
method for the generalized Pareto distribution", Technometrics 51 (2009), with the weakly
informative prior on k of Vehtari et al. (k shrunk towards 0.5 as if by 10 extra points), as in
ArviZ's ``_gpdfit`` and the loo R package.
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro

from .compile_options import once
from .keys import (  # the draws' keys on the host: JAX's, without a compile
    prng_key,
    split,
)
from .posterior import kept

USABLE = 0.7  # Yao et al. 2018; Vehtari et al. 2024, section 3.2.4


def gpd_fit(x: np.ndarray) -> tuple[float, float]:
    """(k, sigma) of a GPD (location 0) fitted to the positive, ascending sample ``x``: Zhang &
    Stephens (2009): theta = -k/sigma is the posterior mean over m = 30 + sqrt(n) grid points
    theta_j = 1/x_(n) + (1 - sqrt(m/(j - 1/2))) / (3 x_(n/4)), each weighted by the profile
    likelihood L(theta) = n (log(-theta/k(theta)) - k(theta) - 1), k(theta) = -mean log(1 - theta x);
    then k = mean log(1 - theta x) (the sign of Zhang & Stephens' k flipped, so k > 0 is a heavy
    tail), sigma = -k/theta, and k shrunk towards 0.5: (n k + 10 * 0.5) / (n + 10)."""
    x = np.asarray(x, np.float64)
    n = len(x)
    m = 30 + int(np.sqrt(n))
    b = 1 - np.sqrt(m / (np.arange(1, m + 1) - 0.5))
    b = b / (3 * x[int(n / 4 + 0.5) - 1]) + 1 / x[-1]
    k = np.log1p(-b[:, None] * x).mean(axis=1)
    len_scale = n * (np.log(-(b / k)) - k - 1)
    with np.errstate(over="ignore"):  # exp(+large): weight 0, as intended
        weights = 1 / np.exp(len_scale - len_scale[:, None]).sum(axis=1)
    keep = weights >= 10 * np.finfo(float).eps
    weights, b = weights[keep], b[keep]
    b_post = np.sum(b * weights / weights.sum())
    k_post = np.log1p(-b_post * x).mean()
    sigma = -k_post / b_post
    return float((n * k_post + 10 * 0.5) / (n + 10)), float(sigma)


def pareto_khat(log_weights: np.ndarray) -> float:
    """k̂ of the log importance weights: the GPD shape of the largest M = min(S/5, 3 sqrt(S)) weights'
    exceedances over the (M+1)-th largest (ArviZ's ``psislw`` with r_eff = 1)."""
    lw = np.asarray(log_weights, np.float64)
    lw = lw[np.isfinite(lw)] if np.any(np.isfinite(lw)) else lw
    if len(lw) < 10:
        return float("inf")
    lw = np.sort(lw - lw.max())
    m = int(np.ceil(min(0.2 * len(lw), 3 * np.sqrt(len(lw)))))
    cutoff = lw[-m - 1]
    tail = np.exp(lw[-m:]) - np.exp(cutoff)
    tail = tail[tail > 0]
    if len(tail) < 5:
        # flat at the top (equal weights: no tail to speak of), or a few weights so much larger
        # than the rest that the others vanish beside them in float64: an infinitely heavy tail
        return float("inf") if np.exp(cutoff) == 0.0 else float("-inf")
    return gpd_fit(tail)[0]


def verdict(khat: float) -> str:
    """k̂ in plain words (Yao et al. 2018's thresholds)."""
    if khat < 0.5:
        return "usable: the guide matches the posterior well (k̂ < 0.5)"
    if khat < USABLE:
        return "usable: the guide is close to the posterior (0.5 ≤ k̂ < 0.7); the means are trustworthy, the tails less so"
    return ("not to be trusted: the guide misses mass the posterior has (k̂ ≥ 0.7); try a richer family "
            "(guide = full_rank or flow), more steps, or via stl")


REJECTED_NOTED = 0.01  # a fit that rejected more than this fraction of its draws says so in its verdict


def rejected_note(rejected: int | None, draws: int | None) -> str | None:
    """What the verdict adds when a fit rejected more than ``REJECTED_NOTED`` of its Monte-Carlo
    draws (a non-finite log joint or gradient: ``backend/finite_particles.py``), else None."""
    if not rejected or not draws or rejected <= REJECTED_NOTED * draws:
        return None
    return (f"{100 * rejected / draws:.1f}% of the fit's draws were rejected (non-finite log joint or gradient) "
            "and it averaged over the rest, so it did not see the posterior where those fell; look for what "
            "fails there (in float32, a Cholesky or log of a value near 0: more jitter, a bounded parameter)")


def guide_draws(model, with_values: bool):
    """A ``make`` for ``kept``: the compiled ``(unconstrained, data, keys) -> log weights [n]`` of the
    fitted guide's draws, log p(y, z_s) - log q(z_s) over the full data, with ``with_values`` preceded
    by the draws of the latents ``{latent: [n, ...]}``."""
    from .guide_draw import GuideDraws
    from .sites import model_log_density

    ppl = model.ppl

    def make():
        def run(unconstrained, data, keys):
            params = model.constrain(unconstrained)

            def one(key):
                with numpyro.validation_enabled(False):
                    draw = GuideDraws(ppl, data, params).draw(key)
                    lw = model_log_density(ppl.model_fn, (data, params), draw.values) - draw.logq
                    if not with_values:
                        return lw
                    return {k: v for k, v in draw.values.items() if k in ppl.latents}, lw

            return jax.vmap(one)(keys)

        return jax.jit(run, compiler_options=once())

    return make


def log_weights(model, unconstrained: dict, data: dict, n: int, seed: int) -> np.ndarray:
    """log p(y, z_s) - log q(z_s) for ``n`` draws z_s of the fitted guide (the full data)."""
    lw = kept(model, "log_weights", guide_draws(model, False))(unconstrained, data,
                                                               split(prng_key(seed), n))
    return np.asarray(lw, np.float64)


def diagnostics(model, unconstrained: dict, data: dict, seed: int, n: int = 2000) -> dict:
    """``{"khat": float, "verdict": str}`` for a fitted guide (``Result.diagnostics``)."""
    khat = pareto_khat(log_weights(model, unconstrained, data, n, seed))
    return {"khat": khat, "verdict": verdict(khat)}
