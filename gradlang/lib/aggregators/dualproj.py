"""DualProj: the preferred combination of the rows projected onto their dual cone."""

from __future__ import annotations

from . import AGGREGATORS, build, pref_weights, require, vector
from ._qp import project_weights


@AGGREGATORS.register("dualproj", cite="Lopez-Paz & Ranzato, Gradient Episodic Memory for Continual "
                      "Learning, NeurIPS 2017 (Equation 11); as in TorchJD (Quinton & Rey 2024)")
def dualproj(pref_vector=None, norm_eps=1e-4, reg_eps=1e-4):
    """DualProj: the mean of the rows, projected onto the dual cone of the rows (GEM's projection).

    With G = J Jᵀ and p = pref_vector (default 1/m each): w = argmin_{v >= p} vᵀ G v, d = Jᵀ w, so that
    d is the projection of Jᵀ p onto {x : J x >= 0} (non-conflicting).  The QP is solved exactly on
    G / trace(G) + reg_eps I, as TorchJD does.
    """
    pref = vector("dualproj", pref_vector, "pref_vector")
    require(norm_eps >= 0, "dualproj: norm_eps must be non-negative")
    require(reg_eps >= 0, "dualproj: reg_eps must be non-negative")

    def weights(G, state, key):
        p = pref_weights("dualproj", pref, G.shape[0], G.dtype)
        return project_weights(p, G, norm_eps, reg_eps), state

    return build("dualproj", weights, pref_vector=pref_vector, norm_eps=norm_eps, reg_eps=reg_eps)
