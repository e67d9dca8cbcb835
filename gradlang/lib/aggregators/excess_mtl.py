"""ExcessMTL: task weights by exponentiated-gradient steps on estimated excess risks."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import AGGREGATORS, build, require


@AGGREGATORS.register("excess_mtl", cite="He et al., Robust Multi-Task Learning with Excess Risks, "
                      "ICML 2024")
def excess_mtl(robust_step_size=1.0, n_warmup_steps=0):
    """ExcessMTL: S <- S + J ⊙ J (accumulated squared gradients), e_i = Σ_j J_ij² / sqrt(S_ij + 1e-7)
    (the excess risk g_iᵀ H_i⁻¹ g_i with AdaGrad's diagonal H, Equations 6-7), scaled by its
    baseline (the first post-warm-up value, or the warm-up mean); w <- softmax(log w + η e)
    (Equation 9, η = robust_step_size); d = Jᵀ w.  w starts at 1/m and stays there for the
    n_warmup_steps first calls.  Reads J (its state holds S, m x n)."""
    require(robust_step_size > 0, f"excess_mtl: robust_step_size must be positive, got {robust_step_size}")
    require(int(n_warmup_steps) == n_warmup_steps and n_warmup_steps >= 0,
            "excess_mtl: n_warmup_steps must be a non-negative integer")
    warm = int(n_warmup_steps)

    def init(m, n, dtype):
        return {"w": jnp.full((m,), 1.0 / m, dtype), "S": jnp.zeros((m, n), dtype),
                "base": jnp.zeros((m,), dtype), "warm_sum": jnp.zeros((m,), dtype),
                "step": jnp.zeros((), jnp.int32)}

    def weights(J, st, key):
        sq = J**2
        S = st["S"] + sq
        e = (sq / jnp.sqrt(S + 1e-7)).sum(axis=1)
        step = st["step"]
        warming = step < warm
        first = step == warm  # the first call after the warm-up sets the baseline
        base = jnp.where(first, st["warm_sum"] / warm if warm > 0 else e, st["base"])
        scaled = jnp.where(first & (warm == 0), e, e / (base + 1e-7))
        w = jnp.where(warming, st["w"], jax.nn.softmax(jnp.log(st["w"]) + robust_step_size * scaled))
        new = {"w": w, "S": S, "base": base, "step": step + 1,
               "warm_sum": st["warm_sum"] + jnp.where(warming, e, 0.0)}
        return w, new

    return build("excess_mtl", weights, stat="jacobian", init=init,
                 robust_step_size=robust_step_size, n_warmup_steps=n_warmup_steps)
