"""UPGrad: every gradient projected onto the dual cone of all of them, then combined."""

from __future__ import annotations

import jax.numpy as jnp

from . import AGGREGATORS, JD_CITE, build, pref_weights, require, vector
from ._qp import project_weights


@AGGREGATORS.register("upgrad", cite=JD_CITE + ", Algorithm (UPGrad) and Proposition 1")
def upgrad(pref_vector=None, norm_eps=1e-4, reg_eps=1e-4):
    """UPGrad: the projections of the rows onto the dual cone of the rows, combined by the preference.

    With G = J Jᵀ and p = pref_vector (default 1/m each): for each row i,
    v_i = argmin_{v >= p_i e_i} vᵀ G v (Proposition 1: Jᵀ v_i is the projection of p_i g_i onto the
    dual cone {x : J x >= 0}); the weights are w = Σ_i v_i and the direction d = Jᵀ w.  Non-conflicting
    (J d >= 0), linear under scaling of the rows, weighted; UPGrad(I₂) = [0.5, 0.5] with the default
    mean (the projections summed, pref_vector = ones, give [1, 1]).  The small QPs are solved exactly
    (``_qp.nonneg_qp``) on G / trace(G) + reg_eps I, the trace taken as zero below norm_eps, as in
    TorchJD's QuadprogProjector.
    """
    pref = vector("upgrad", pref_vector, "pref_vector")
    require(norm_eps >= 0, "upgrad: norm_eps must be non-negative")
    require(reg_eps >= 0, "upgrad: reg_eps must be non-negative")

    def weights(G, state, key):
        p = pref_weights("upgrad", pref, G.shape[0], G.dtype)
        V = project_weights(jnp.diag(p), G, norm_eps, reg_eps)
        return V.sum(axis=0), state

    return build("upgrad", weights, pref_vector=pref_vector, norm_eps=norm_eps, reg_eps=reg_eps)
