"""Nash-MTL: the Nash bargaining solution between the objectives, G α = 1/α."""

from __future__ import annotations

import jax.numpy as jnp

from . import AGGREGATORS, build, require
from .fairgrad import fair_solve


@AGGREGATORS.register("nash_mtl", cite="Navon et al., Multi-Task Learning as a Bargaining Game, "
                      "ICML 2022 (Theorem 5.1, Algorithm 1)")
def nash_mtl(max_norm=1.0, update_weights_every=1):
    """Nash-MTL: the weights α > 0 with G α = 1/α (α_i g_iᵀd = 1 for d = Jᵀα: the Nash bargaining
    solution, Theorem 5.1); d = Jᵀα, scaled to norm max_norm when longer (0: no clipping).

    Solved exactly, as FairGrad with α = 1 (``fairgrad.fair_solve``: Newton on a strictly convex
    potential).  Navon et al.'s Algorithm 1 (and TorchJD, with cvxpy) approaches the same point by
    at most 20 convex-concave steps; where those converge, the two agree to 1e-7.  When no
    solution exists (a zero gradient, or 0 in the hull of the gradients), the previous weights are
    kept (at first, ones), as TorchJD does when its solver fails.  The weights are recomputed every
    ``update_weights_every`` calls and reused in between.  State: the weights and the call count."""
    require(max_norm >= 0, f"nash_mtl: max_norm must be non-negative, got {max_norm}")
    require(int(update_weights_every) == update_weights_every and update_weights_every > 0,
            "nash_mtl: update_weights_every must be a positive integer")
    every = int(update_weights_every)

    def init(m, n, dtype):
        return {"alpha": jnp.ones((m,), dtype), "step": jnp.zeros((), jnp.int32)}

    def weights(G, st, key):
        w, live, solved = fair_solve(G, jnp.ones((), G.dtype))
        update = (st["step"] % every == 0) & solved & jnp.all(live)
        alpha = jnp.where(update, w, st["alpha"])
        norm = jnp.sqrt(jnp.clip(alpha @ G @ alpha, 0.0))
        clip = (max_norm > 0) & (norm > max_norm)
        out = jnp.where(clip, alpha * max_norm / jnp.where(clip, norm, 1.0), alpha)
        return out, {"alpha": alpha, "step": st["step"] + 1}

    return build("nash_mtl", weights, init=init, max_norm=max_norm, update_weights_every=update_weights_every)
