"""Posterior means and sds corrected by Pareto-smoothed importance sampling (PSIS).

With S draws z_s ~ q from the fitted guide and log weights log w_s = log p(y, z_s) - log q(z_s),
self-normalised importance sampling estimates a posterior expectation as

    E_p[h] ~ sum_s w_s h(z_s) / sum_s w_s,

exact as S grows whatever q is (given q covers p), where the guide's own draws estimate E_q[h].
The largest weights make the estimate noisy: PSIS replaces the M = min(S/5, 3 sqrt S) largest by the
expected order statistics of the generalized Pareto distribution fitted to them,
w_(S-M+i) = cutoff + F^-1((i - 1/2) / M), never above the largest raw weight (Vehtari, Simpson,
Gelman, Yao & Gabry, "Pareto smoothed importance sampling", JMLR 25, 2024, section 3; ArviZ's
``psislw``).  The same k̂ says how far to trust the correction: below 0.7 the corrected moments
converge at a practical rate (Yao et al., ICML 2018, section 3.2).
"""

from __future__ import annotations

import numpy as np

from .keys import (  # the draws' keys on the host: JAX's, without a compile
    prng_key,
    split,
)
from .posterior import kept
from .psis import gpd_fit, guide_draws


def smooth(log_weights: np.ndarray) -> np.ndarray:
    """Pareto-smoothed log weights, normalised to sum to one (in log space)."""
    lw = np.asarray(log_weights, np.float64).copy()
    lw[~np.isfinite(lw)] = -np.inf
    lw = lw - lw.max()
    order = np.argsort(lw)
    m = int(np.ceil(min(0.2 * len(lw), 3 * np.sqrt(len(lw)))))
    tail_ids = order[-m:]
    cutoff = lw[order[-m - 1]]
    tail = np.exp(lw[tail_ids]) - np.exp(cutoff)
    if m >= 5 and np.all(tail > 0):
        k, sigma = gpd_fit(tail)
        p = (np.arange(m) + 0.5) / m
        q = sigma * np.expm1(-k * np.log1p(-p)) / k if abs(k) > 1e-12 else -sigma * np.log1p(-p)
        lw[tail_ids] = np.minimum(np.log(q + np.exp(cutoff)), 0.0)  # the largest raw weight is exp(0)
    return lw - np.logaddexp.reduce(lw)


def draws_and_log_weights(model, unconstrained: dict, data: dict, n: int, seed: int):
    """``n`` joint draws of the latents from the fitted guide and their log weights."""

    values, lw = kept(model, "draws_and_log_weights", guide_draws(model, True))(
        unconstrained, data, split(prng_key(seed), n))
    return {k: np.asarray(v, np.float64) for k, v in values.items()}, np.asarray(lw, np.float64)


def psis_posterior(model, unconstrained: dict, data: dict, seed: int, n: int = 4000) -> dict:
    """Per latent: ``mean`` and ``sd`` under the Pareto-smoothed importance weights of ``n`` guide
    draws (``Result.psis_posterior``; ``Result.diagnostics`` says how far to trust them)."""
    values, lw = draws_and_log_weights(model, unconstrained, data, n, seed)
    w = np.exp(smooth(lw))
    out: dict = {}
    for name, v in values.items():
        wb = w.reshape((-1,) + (1,) * (v.ndim - 1))
        mean = np.sum(wb * v, axis=0)
        out[name] = {"mean": mean, "sd": np.sqrt(np.sum(wb * (v - mean) ** 2, axis=0))}
    return out
