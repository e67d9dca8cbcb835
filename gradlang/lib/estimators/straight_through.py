"""The straight-through estimator: a hard draw forward, the relaxed gradient backward."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from . import ESTIMATORS, Estimator
from .gumbel import check_discrete, is_bernoulli, noisy_logits, relax


@dataclass(frozen=True)
class StraightThrough(Estimator):
    temperature: float = 1.0

    def check(self, dist) -> str | None:
        return check_discrete(dist, "straight_through")

    def draw(self, dist, key):
        """``hard + (soft - stop_gradient(soft))``: the value is exactly the draw ``hard`` (the
        bracket is an exact zero; ``hard + soft - stop(soft)`` would round it) and the
        gradient is that of the relaxation ``soft``, both from the same perturbed logits.  Which
        kind of draw is decided by the family, not by the shape: a bernoulli of any shape draws
        0/1 per coordinate, a categorical of any shape a one-hot row per coordinate."""
        noisy = noisy_logits(dist, key)
        soft = relax(dist, noisy, self.temperature)
        if is_bernoulli(dist):
            hard = (noisy > 0).astype(soft.dtype)
        else:
            hard = jax.nn.one_hot(jnp.argmax(noisy, axis=-1), noisy.shape[-1], dtype=soft.dtype)
        return hard + (soft - jax.lax.stop_gradient(soft)), None


@ESTIMATORS.register("straight_through", cite="Bengio, Leonard & Courville, Estimating or Propagating Gradients "
                                              "Through Stochastic Neurons, 2013; Jang et al., ICLR 2017 (ST Gumbel)")
def straight_through(temperature=1.0):
    """Forward: the exact draw (a one-hot row per coordinate of a categorical site, 0/1 per
    coordinate of a bernoulli); backward: the gradient of the Gumbel-softmax relaxation at
    ``temperature`` from the same noise.  Biased by design."""
    return StraightThrough("straight_through", float(temperature))
