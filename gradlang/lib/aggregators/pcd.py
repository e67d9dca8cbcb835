"""PCD: follow the primary gradient, guaranteeing each secondary objective some progress."""

from __future__ import annotations

import jax.numpy as jnp

from . import AGGREGATORS, build, require, vector
from ._qp import nonneg_qp


def constrained_weights(G, taus):
    """The weights w = [1, μ₂..μ_m] of d̃ = argmin_d ½|d - g₁|² s.t. g_jᵀd >= τ_j |g_j|² (j >= 2),
    ``G`` the Gramian of g₁..g_m: d̃ = g₁ + Σ μ_j g_j with the multipliers μ = argmin_{μ >= 0}
    ½ μᵀ G_s μ - bᵀμ (the dual; G_s = G[1:, 1:], b = τ ⊙ diag(G_s) - G[1:, 0]), solved exactly by
    ``nonneg_qp`` on G_s + δI (δ = 1e-10 max diag G: dependent secondary gradients).  When the
    constraints are infeasible the dual is unbounded, the regularised μ violates them by O(1), and
    the weights are [1, 0, …, 0] (the constraints dropped), as TorchJD's Goldfarb-Idnani solver."""
    m = G.shape[0]
    first = jnp.zeros((m,), G.dtype).at[0].set(1.0)
    if m == 1:
        return first
    scale = jnp.maximum(jnp.max(jnp.diag(G)), jnp.finfo(G.dtype).tiny)
    Gs = G[1:, 1:]
    b = taus * jnp.diag(Gs) - G[1:, 0]
    mu = nonneg_qp(Gs + 1e-10 * scale * jnp.eye(m - 1, dtype=G.dtype), -b)
    feasible = jnp.all(jnp.isfinite(mu)) & jnp.all(Gs @ mu - b >= -1e-6 * scale)
    return jnp.where(feasible, first.at[1:].set(jnp.clip(mu, 0.0)), first)


@AGGREGATORS.register("pcd", cite="Varam et al., Not All Objectives Are Born Equal: "
                      "Priority-Constrained Descent for Hierarchical Multi-Objective Optimization, "
                      "TMLR 2026 (arXiv:2606.29521)")
def pcd(tau=0.02, beta=0.999, eps=1e-8):
    """PCD: the first objective is the primary one.  With s_i = 1/√(v̂_i + eps), v̂ the bias-corrected
    moving average (decay β) of |g_i|² over the calls (the state), and g̃_i = s_i g_i:
    d̃ = argmin_d ½|d - g̃₁|² s.t. g̃_jᵀd >= τ_j |g̃_j|² for j >= 2 (each secondary objective gets a
    fraction τ of the progress of a step along its own normalised gradient); d = d̃ |g₁| / |d̃|.
    d = 0 when g₁ = 0 or d̃ = 0 up to rounding; infeasible constraints are dropped (d = g₁).
    ``tau`` is one number or one per secondary objective (m - 1)."""
    taus_v = vector("pcd", tau, "tau") if jnp.ndim(tau) > 0 else None
    require(jnp.all((jnp.asarray(tau) >= 0) & (jnp.asarray(tau) <= 1)), f"pcd: tau must be in [0, 1], got {tau}")
    require((beta >= 0) & (beta < 1), f"pcd: beta must be in [0, 1), got {beta}")
    require(eps >= 0, f"pcd: eps must be non-negative, got {eps}")

    def init(m, n, dtype):
        return {"ema": jnp.zeros((m,), dtype), "steps": jnp.zeros((), jnp.int32)}

    def weights(G, st, key):
        m = G.shape[0]
        if taus_v is not None:
            require(taus_v.shape[0] == m - 1, f"pcd: tau has {taus_v.shape[0]} entries for {m - 1} "
                    "secondary objectives")
            taus = taus_v.astype(G.dtype)
        else:
            taus = jnp.full((m - 1,), tau, G.dtype)
        sq = jnp.diag(G)
        ema = beta * st["ema"] + (1.0 - beta) * sq
        steps = st["steps"] + 1
        den = jnp.sqrt(ema / (1.0 - beta ** steps.astype(G.dtype)) + eps)
        scales = jnp.where(den > 0, 1.0 / jnp.where(den > 0, den, 1.0), 0.0)
        NG = G * jnp.outer(scales, scales)
        w = constrained_weights(NG, taus)
        sq_norm = w @ NG @ w  # |d̃|², and the size of its rounding error when read from the Gramian
        magnitude = (jnp.abs(w) @ jnp.sqrt(jnp.clip(jnp.diag(NG), 0.0))) ** 2
        ok = (sq[0] > 0) & (sq_norm > 10 * jnp.finfo(G.dtype).eps * magnitude)
        out = jnp.where(ok, w * scales * jnp.sqrt(sq[0] / jnp.where(ok, sq_norm, 1.0)), 0.0)
        finite = jnp.all(jnp.isfinite(G))  # nan and inf propagate, the moving average untouched
        new = {"ema": jnp.where(finite, ema, st["ema"]), "steps": jnp.where(finite, steps, st["steps"])}
        return jnp.where(finite, out, jnp.nan), new

    return build("pcd", weights, init=init, tau=tau, beta=beta, eps=eps)
