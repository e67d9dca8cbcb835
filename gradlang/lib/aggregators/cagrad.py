"""CAGrad: the direction that maximises the worst improvement within a ball around the mean."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import AGGREGATORS, build, normalize, require
from ._qp import nonneg_qp


def _min_over_simplex(G, b, phi, iters: int = 64):
    """argmin_{w in the simplex} bᵀw + phi |J̃ᵀw| for the Gramian G = J̃ J̃ᵀ.

    Variationally, phi |x| = min_ρ phi (|x|²/ρ + ρ)/2, and V(ρ) = min_w bᵀw + phi(|J̃ᵀw|²/ρ + ρ)/2
    is convex in ρ with V'(ρ) of the sign of ρ - |J̃ᵀw(ρ)|, w(ρ) the simplex QP
    argmin ½ wᵀG w + (ρ/phi) bᵀw.  So bisect (in log ρ, over [1e-14, 1], |J̃ᵀw| <= 1 after the
    normalisation) for the root ρ* = |J̃ᵀw(ρ*)|; each QP is solved exactly (``nonneg_qp``)."""
    m = G.shape[0]
    P = G + 10 * jnp.finfo(G.dtype).eps * jnp.eye(m, dtype=G.dtype)

    def w_of(log_rho):
        return nonneg_qp(P, jnp.exp(log_rho) / phi * b, simplex=True)

    def step(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        w = w_of(mid)
        above = jnp.exp(mid) >= jnp.sqrt(jnp.clip(w @ G @ w, 0.0))
        return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

    lo, hi = jax.lax.fori_loop(0, iters, step, (jnp.log(jnp.asarray(1e-14, G.dtype)), jnp.zeros((), G.dtype)))
    return w_of(0.5 * (lo + hi))


@AGGREGATORS.register("cagrad", cite="Liu et al., Conflict-Averse Gradient Descent for Multi-task "
                      "Learning, NeurIPS 2021 (Algorithm 1)")
def cagrad(c, norm_eps=1e-4):
    """CAGrad: d = argmax_d min_i g_iᵀd subject to |d - g₀| <= c |g₀|, g₀ the mean gradient.

    Dually (computed on the normalised Gramian G / trace G, as TorchJD): w* = argmin over the
    simplex of g_wᵀg₀ + √φ |g_w| with g_w = Jᵀw and √φ = c |g₀|; then w = 1/m + (√φ / |g_w*|) w*,
    d = Jᵀ w (w = 0 when |g_w*| < norm_eps: nearly Pareto-stationary).  TorchJD solves the inner
    problem with cvxpy/Clarabel; here it is a bisection over exact simplex QPs (``_min_over_simplex``).
    """
    require(c >= 0, f"cagrad: c must be non-negative, got {c}")
    require(norm_eps >= 0, f"cagrad: norm_eps must be non-negative, got {norm_eps}")

    def weights(G, state, key):
        m = G.shape[0]
        Gn = normalize(G, norm_eps)
        b = Gn.sum(axis=1) / m  # J̃ g₀
        sqrt_phi = c * jnp.sqrt(jnp.clip(Gn.sum(), 0.0)) / m
        vertex = jax.nn.one_hot(jnp.argmin(b), m, dtype=G.dtype)  # c = 0: a linear programme
        w_opt = jnp.where(c == 0, vertex, _min_over_simplex(Gn, b, jnp.where(sqrt_phi > 0, sqrt_phi, 1.0)))
        norm = jnp.sqrt(jnp.clip(w_opt @ Gn @ w_opt, 0.0))
        ok = norm >= norm_eps
        w = 1.0 / m + sqrt_phi / jnp.where(ok, norm, 1.0) * w_opt
        return jnp.where(ok, w, 0.0), state

    return build("cagrad", weights, c=c, norm_eps=norm_eps)
