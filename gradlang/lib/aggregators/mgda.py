"""MGDA: the minimum-norm point of the convex hull of the gradients (Frank-Wolfe)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import AGGREGATORS, build, require


@AGGREGATORS.register("mgda", cite="Désidéri, Multiple-gradient descent algorithm (MGDA) for "
                      "multiobjective optimization, C. R. Acad. Sci. Paris 2012; Sener & Koltun, "
                      "Multi-Task Learning as Multi-Objective Optimization, NeurIPS 2018 (Algorithm 2)")
def mgda(epsilon=0.001, max_iters=100):
    """MGDA: w ≈ argmin_{w in the simplex} wᵀ G w, d = Jᵀ w, the min-norm point of the hull of the rows.

    Frank-Wolfe from w = 1/m (Sener & Koltun's Algorithm 2, as TorchJD): t = argmin_i (G w)_i,
    a = wᵀG e_t, b = wᵀG w, c = G_tt; γ = 1 if c <= a, 0 if b <= a, else (b - a)/(b + c - 2a);
    w <- (1 - γ) w + γ e_t; stop when γ < epsilon or after max_iters steps.
    """
    require(epsilon > 0, f"mgda: epsilon must be positive, got {epsilon}")
    require(int(max_iters) == max_iters and max_iters > 0, "mgda: max_iters must be a positive integer")

    def weights(G, state, key):
        m = G.shape[0]

        def body(carry):
            w, it, _ = carry
            t = jnp.argmin(G @ w)
            a, b, c = w @ G[:, t], w @ G @ w, G[t, t]
            gamma = jnp.where(c <= a, 1.0, jnp.where(b <= a, 0.0, (b - a) / jnp.where(
                (c <= a) | (b <= a), 1.0, b + c - 2 * a)))
            w = (1 - gamma) * w + gamma * jax.nn.one_hot(t, m, dtype=G.dtype)
            return w, it + 1, gamma < epsilon

        w0 = jnp.full((m,), 1.0 / m, G.dtype)
        w, *_ = jax.lax.while_loop(lambda c: (c[1] < max_iters) & ~c[2], body,
                                   (w0, jnp.zeros((), jnp.int32), jnp.zeros((), bool)))
        return w, state

    return build("mgda", weights, epsilon=epsilon, max_iters=max_iters)
