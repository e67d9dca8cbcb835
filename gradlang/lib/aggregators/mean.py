"""Mean: the average of the rows (ordinary gradient descent on the mean loss)."""

from __future__ import annotations

import jax.numpy as jnp

from . import AGGREGATORS, JD_CITE, build


@AGGREGATORS.register("mean", cite=JD_CITE)
def mean():
    """Mean: w = [1/m, ..., 1/m], d = Jᵀ w, the gradient of the mean of the objectives."""

    def weights(G, state, key):
        m = G.shape[0]
        return jnp.full((m,), 1.0 / m, G.dtype), state

    return build("mean", weights)
