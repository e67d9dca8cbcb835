"""Constant: fixed, given weights."""

from __future__ import annotations

from . import AGGREGATORS, JD_CITE, build, require, vector


@AGGREGATORS.register("constant", cite=JD_CITE)
def constant(weights):
    """Constant: d = Jᵀ w for the given weights w (one per objective), whatever J is."""
    w = vector("constant", weights, "weights")
    require(w is not None, "constant: needs weights = [w_1, ..., w_m]")

    def fn(G, state, key):
        require(G.shape[0] == w.shape[0],
                f"constant: {w.shape[0]} weights for {G.shape[0]} objectives")
        return w.astype(G.dtype), state

    return build("constant", fn, weights=weights)
