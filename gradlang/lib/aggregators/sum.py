"""Sum: the sum of the rows (gradient descent on the summed loss)."""

from __future__ import annotations

import jax.numpy as jnp

from . import AGGREGATORS, JD_CITE, build


@AGGREGATORS.register("sum", cite=JD_CITE)
def sum_():
    """Sum: w = [1, ..., 1], d = Jᵀ w, the gradient of the sum of the objectives."""

    def weights(G, state, key):
        return jnp.ones((G.shape[0],), G.dtype), state

    return build("sum", weights)
