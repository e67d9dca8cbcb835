"""The straight-through estimator: a hard draw forward, the relaxed gradient backward."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from . import ESTIMATORS, Estimator
from .gumbel import check_discrete, relaxed


@dataclass(frozen=True)
class StraightThrough(Estimator):
    temperature: float = 1.0

    def check(self, dist) -> str | None:
        return check_discrete(dist, "straight_through")

    def draw(self, dist, key):
        soft = relaxed(dist, key, self.temperature)
        if soft.ndim and soft.shape[-1] > 1 and not jnp.issubdtype(soft.dtype, jnp.integer) and dist.event_shape == ():
            hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), soft.shape[-1], dtype=soft.dtype)
        else:
            hard = (soft > 0.5).astype(soft.dtype)
        return hard + soft - jax.lax.stop_gradient(soft), None


@ESTIMATORS.register("straight_through", cite="Bengio, Leonard & Courville, Estimating or Propagating Gradients "
                                              "Through Stochastic Neurons, 2013; Jang et al., ICLR 2017 (ST Gumbel)")
def straight_through(temperature=1.0):
    """Forward: the hard draw (one-hot for a categorical, 0/1 for a bernoulli); backward: the
    gradient of the Gumbel-softmax relaxation at ``temperature``.  Biased by design."""
    return StraightThrough("straight_through", float(temperature))
