"""IMTL-G: the direction with equal projections on every gradient's unit vector."""

from __future__ import annotations

import jax.numpy as jnp

from . import AGGREGATORS, JD_CITE, build


@AGGREGATORS.register("imtl_g", cite="Liu et al., Towards Impartial Multi-task Learning, ICLR 2021; "
                      "generalised to dependent rows by " + JD_CITE)
def imtl_g():
    """IMTL-G: v = G⁺ diag(G)^½, w = v / Σ v (w = 0 when |Σ v| < 1e-12), d = Jᵀ w.

    d has the same projection on every g_i / |g_i| (impartial); the pseudo-inverse (cut-off
    m·eps·σ_max, as torch's pinv) extends it to linearly dependent rows.
    """

    def weights(G, state, key):
        m = G.shape[0]
        d = jnp.sqrt(jnp.clip(jnp.diag(G), 0.0))
        v = jnp.linalg.pinv(G, rtol=m * jnp.finfo(G.dtype).eps) @ d
        s = v.sum()
        return jnp.where(jnp.abs(s) < 1e-12, 0.0, v / jnp.where(jnp.abs(s) < 1e-12, 1.0, s)), state

    return build("imtl_g", weights)
