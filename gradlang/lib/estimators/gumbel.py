"""The Gumbel-softmax (concrete) relaxation: biased by design, low variance."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpyro.distributions as nd

from . import ESTIMATORS, Estimator, base_of

BERNOULLI = (nd.BernoulliProbs, nd.BernoulliLogits)
CATEGORICAL = (nd.CategoricalProbs, nd.CategoricalLogits)


def is_bernoulli(dist) -> bool:
    return isinstance(base_of(dist), BERNOULLI)


def noisy_logits(dist, key):
    """The site's logits perturbed once per coordinate of the site, broadcast to its whole shape
    (``dist.shape()``: an ``expand``/``to_event`` of the family draws every coordinate):

    - bernoulli: ``logits + L``, ``L ~ Logistic(0, 1)`` of the site's shape; ``logits + L > 0``
      has probability ``sigmoid(logits)``, so it is an exact Bernoulli draw;
    - categorical: ``logits + G``, ``G ~ Gumbel(0, 1)`` of shape ``[*site, K]``; its argmax over
      the last axis is an exact categorical draw (the Gumbel-max trick).
    """
    base, shape = base_of(dist), tuple(dist.shape())
    if isinstance(base, BERNOULLI):
        logits = jnp.broadcast_to(base.logits, shape)
        return logits + jax.random.logistic(key, shape, dtype=logits.dtype)
    logits = base.logits
    logits = jnp.broadcast_to(logits, (*shape, logits.shape[-1]))
    return logits + jax.random.gumbel(key, logits.shape, dtype=logits.dtype)


def relax(dist, noisy, temperature: float):
    """The relaxed draw from the perturbed logits: ``sigmoid(noisy / t)`` (a value in (0, 1) per
    coordinate) for a bernoulli, ``softmax(noisy / t)`` over the last axis (a point of the simplex
    per coordinate) for a categorical."""
    if is_bernoulli(dist):
        return jax.nn.sigmoid(noisy / temperature)
    return jax.nn.softmax(noisy / temperature, axis=-1)


def relaxed(dist, key, temperature: float):
    """A relaxed draw of the whole site: shape ``dist.shape()`` for a bernoulli, ``[*dist.shape(),
    K]`` for a categorical (one relaxed one-hot row per coordinate)."""
    return relax(dist, noisy_logits(dist, key), temperature)


RELAXED = ("gumbel", "straight_through")  # the estimators whose draws are relaxed/one-hot values


def relaxed_shape(dist, shape: tuple) -> tuple:
    """The shape of a relaxed draw of a site of ``shape`` (as the checker sees it): one row of
    ``K`` per coordinate for a categorical over ``K`` values, the site's own for a bernoulli."""
    base = base_of(dist)
    if not isinstance(base, CATEGORICAL):  # a bernoulli (or a misfit, reported by the estimator's check)
        return tuple(shape)
    return (*shape, jnp.shape(base.logits)[-1])


def check_discrete(dist, name: str) -> str | None:
    base = base_of(dist)
    if not isinstance(base, BERNOULLI + CATEGORICAL):
        return f"{name} relaxes bernoulli and categorical sites, not {type(base).__name__}"
    return None


@dataclass(frozen=True)
class Gumbel(Estimator):
    temperature: float = 0.5

    def check(self, dist) -> str | None:
        return check_discrete(dist, "gumbel")

    def draw(self, dist, key):
        return relaxed(dist, key, self.temperature), None


@ESTIMATORS.register("gumbel", cite="Jang, Gu & Poole, Categorical Reparameterization with Gumbel-Softmax, ICLR 2017; "
                                    "Maddison, Mnih & Teh, The Concrete Distribution, ICLR 2017")
def gumbel(temperature=0.5):
    """z = softmax((logits + g) / t), g ~ Gumbel(0, 1): a reparameterised, relaxed one-hot draw
    per coordinate of the site (a value sigmoid((logits + l) / t), l ~ Logistic(0, 1), in (0, 1)
    for a bernoulli).  Biased: the program sees relaxed values."""
    return Gumbel("gumbel", float(temperature))
