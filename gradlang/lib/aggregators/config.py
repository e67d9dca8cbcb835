"""ConFIG: the conflict-free direction, equally aligned with every unit gradient."""

from __future__ import annotations

import jax.numpy as jnp

from . import AGGREGATORS, build, pref_weights, vector


@AGGREGATORS.register("config", cite="Liu et al., ConFIG: Towards Conflict-free Training of Physics "
                      "Informed Neural Networks, ICLR 2025 (arXiv 2024, Equation 2)")
def config(pref_vector=None):
    """ConFIG: with the unit rows u_i = g_i / |g_i| (zero rows stay 0) and p = pref_vector (default
    ones), b = U⁺ p, e = b / |b|, d = (Σ_i g_i · e) e.

    On the Gramian: U Uᵀ = D G D with D = diag(1/|g_i|); b = Uᵀ z with z = (U Uᵀ)⁺ p, so
    d = Jᵀ w with w = (1ᵀ G D z / |b|²) D z and |b|² = pᵀ z.  The pseudo-inverse cuts eigenvalues of
    U Uᵀ below 10 m·eps·λ_max (σ of U below about 1e-7 σ_max, where the Gramian loses them),
    where TorchJD cuts σ below max(m, n)·eps·σ_max on U itself.
    """
    pref = vector("config", pref_vector, "pref_vector")

    def weights(G, state, key):
        m = G.shape[0]
        p = pref_weights("config", pref, m, G.dtype, default="sum")
        norms = jnp.sqrt(jnp.clip(jnp.diag(G), 0.0))
        D = jnp.where(norms > 0, 1.0 / jnp.where(norms > 0, norms, 1.0), 0.0)
        UU = G * D[:, None] * D[None, :]
        lam, V = jnp.linalg.eigh(UU)
        keep = lam > 10 * m * jnp.finfo(G.dtype).eps * jnp.max(lam)
        z = (V * jnp.where(keep, 1.0 / jnp.where(keep, lam, 1.0), 0.0)) @ (V.T @ p)
        b2 = p @ z
        ok = b2 > 0
        length = jnp.sum(G @ (D * z)) / jnp.sqrt(jnp.where(ok, b2, 1.0))
        return jnp.where(ok, length / jnp.sqrt(jnp.where(ok, b2, 1.0)), 0.0) * D * z, state

    return build("config", weights, pref_vector=pref_vector)
