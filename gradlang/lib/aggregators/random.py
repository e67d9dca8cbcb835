"""Random: positive random weights drawn at each step (Random Loss Weighting)."""

from __future__ import annotations

import jax

from . import AGGREGATORS, build


def weights_from(z):
    """The weights for the standard-normal draw z: softmax(z)."""
    return jax.nn.softmax(z)


@AGGREGATORS.register("random", cite="Lin et al., Reasonable Effectiveness of Random Weighting: A "
                      "Litmus Test for Multi-Task Learning, TMLR 2022 (Algorithm 2)")
def random():
    """Random: w = softmax(z), z ~ N(0, I_m) drawn afresh at each step; d = Jᵀ w."""

    def weights(G, state, key):
        z = jax.random.normal(key, (G.shape[0],), G.dtype)
        return weights_from(z), state

    return build("random", weights, stochastic=True)
