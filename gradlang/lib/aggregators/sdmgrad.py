"""SDMGrad: direction-oriented multi-objective weights by a few projected SGD steps per call."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import AGGREGATORS, build, pref_weights, project_simplex, require, vector


@AGGREGATORS.register("sdmgrad", cite="Xiao et al., Direction-oriented Multi-objective Learning: Simple "
                      "and Provable Stochastic Algorithms, NeurIPS 2023")
def sdmgrad(lr=10.0, momentum=0.5, n_iter=20, lambda_=0.3, pref_vector=None):
    """SDMGrad: with A the cross-Gramian J₁ J₂ᵀ (G = J Jᵀ with one Jacobian) scaled by
    s² + 1e-8, s = mean_i sqrt(max(A_ii, 0)), and w̃ = pref_vector (default 1/m): n_iter steps of
    w <- Π_simplex(w - lr v), v <- momentum v + A (w + λ w̃) (v starts at the first gradient); the
    weights are (w + λ w̃) / (1 + λ), λ = lambda_; w is the state (starts at 1/m)."""
    require(lr > 0, f"sdmgrad: lr must be positive, got {lr}")
    require((momentum >= 0) & (momentum < 1), f"sdmgrad: momentum must be in [0, 1), got {momentum}")
    require(int(n_iter) == n_iter and n_iter >= 1, "sdmgrad: n_iter must be a positive integer")
    require(lambda_ >= 0, f"sdmgrad: lambda_ must be non-negative, got {lambda_}")
    pref = vector("sdmgrad", pref_vector, "pref_vector")

    def init(m, n, dtype):
        return jnp.full((m,), 1.0 / m, dtype)

    def weights(A, w, key):
        target = pref_weights("sdmgrad", pref, A.shape[0], A.dtype)
        scale = jnp.sqrt(jnp.clip(jnp.diag(A), 0.0)).mean()
        a = A / (scale**2 + 1e-8)

        def step(k, carry):
            w, v = carry
            g = a @ (w + lambda_ * target)
            v = jnp.where(k == 0, g, momentum * v + g)
            return project_simplex(w - lr * v), v

        w, _ = jax.lax.fori_loop(0, int(n_iter), step, (w, jnp.zeros_like(w)))
        return (w + lambda_ * target) / (1.0 + lambda_), w

    return build("sdmgrad", weights, init=init, lr=lr, momentum=momentum, n_iter=n_iter,
                 lambda_=lambda_, pref_vector=pref_vector)
