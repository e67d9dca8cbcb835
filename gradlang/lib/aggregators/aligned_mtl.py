"""Aligned-MTL: the gradients aligned by the balance transformation of their Gramian."""

from __future__ import annotations

import jax.numpy as jnp

from . import AGGREGATORS, build, pref_weights, require, vector

SCALE_MODES = ("min", "median", "rmse")


def balance(G, scale_mode: str = "min"):
    """B = sqrt(s) V Σ^-½ Vᵀ over the eigenpairs of G above m·eps·λ_max (B = I if there are none);
    s is the smallest of those eigenvalues (min), their lower median (median) or their mean (rmse)."""
    m = G.shape[0]
    lam, V = jnp.linalg.eigh(G)  # ascending
    keep = lam > jnp.max(lam) * m * jnp.finfo(G.dtype).eps
    rank = keep.sum()
    inv_sqrt = jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, lam, 1.0)), 0.0)
    first = m - rank  # index of the smallest kept eigenvalue (ascending order)
    if scale_mode == "min":
        scale = lam[first]
    elif scale_mode == "median":  # torch.median: the lower of the two middle values
        scale = lam[first + (rank - 1) // 2]
    else:
        scale = jnp.sum(jnp.where(keep, lam, 0.0)) / jnp.maximum(rank, 1)
    B = jnp.sqrt(jnp.clip(scale, 0.0)) * (V * inv_sqrt) @ V.T
    return jnp.where(rank == 0, jnp.eye(m, dtype=G.dtype), B)


@AGGREGATORS.register("aligned_mtl", cite="Senushkin et al., Independent Component Alignment for "
                      "Multi-Task Learning, CVPR 2023 (Algorithm 1)")
def aligned_mtl(pref_vector=None, scale_mode="min"):
    """Aligned-MTL: w = B p, d = Jᵀ w, with p = pref_vector (default 1/m each) and B the balance
    transformation of G = V Λ Vᵀ: B = sqrt(s) V Λ^-½ Vᵀ (eigenvalues above m·eps·λ_max only), which
    makes the aligned gradients orthogonal with equal norms; s = the smallest kept eigenvalue
    (scale_mode = min), their median (median) or mean (rmse)."""
    pref = vector("aligned_mtl", pref_vector, "pref_vector")
    require(scale_mode in SCALE_MODES,
            f"aligned_mtl: scale_mode must be one of {', '.join(SCALE_MODES)}, got {scale_mode!r}")

    def weights(G, state, key):
        p = pref_weights("aligned_mtl", pref, G.shape[0], G.dtype)
        return balance(G, scale_mode) @ p, state

    return build("aligned_mtl", weights, pref_vector=pref_vector, scale_mode=scale_mode)
