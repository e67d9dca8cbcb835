"""Krum: the gradient(s) closest to their neighbours, robust to Byzantine rows."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import AGGREGATORS, build, require


@AGGREGATORS.register("krum", cite="Blanchard et al., Machine Learning with Adversaries: Byzantine "
                      "Tolerant Gradient Descent, NeurIPS 2017")
def krum(n_byzantine, n_selected=1):
    """(Multi-)Krum: score_i = Σ of the distances |g_i - g_j| to the m - f - 2 nearest other rows
    (f = n_byzantine), read from G (|g_i - g_j|² = G_ii + G_jj - 2 G_ij); w = 1/k on the k =
    n_selected rows of smallest score, 0 elsewhere; d = Jᵀ w (the mean of the selected rows)."""
    require(int(n_byzantine) == n_byzantine and n_byzantine >= 0, "krum: n_byzantine must be a non-negative integer")
    require(int(n_selected) == n_selected and n_selected >= 1, "krum: n_selected must be a positive integer")
    f, k = int(n_byzantine), int(n_selected)

    def weights(G, state, key):
        m = G.shape[0]
        require(m >= f + 3, f"krum: needs at least n_byzantine + 3 = {f + 3} objectives, got {m}")
        require(m >= k, f"krum: needs at least n_selected = {k} objectives, got {m}")
        sq = jnp.diag(G)
        dist = jnp.sqrt(jnp.clip(sq[None, :] + sq[:, None] - 2 * G, 0.0))
        nearest = -jax.lax.top_k(-dist, m - f - 1)[0]  # ascending; the first is the row itself
        scores = nearest[:, 1:].sum(axis=1)
        chosen = jax.lax.top_k(-scores, k)[1]
        return jax.nn.one_hot(chosen, m, dtype=G.dtype).sum(axis=0) / k, state

    return build("krum", weights, n_byzantine=n_byzantine, n_selected=n_selected)
