"""The Gumbel-softmax (concrete) relaxation: biased by design, low variance."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpyro.distributions as nd

from . import ESTIMATORS, Estimator, base_of


def relaxed(dist, key, temperature: float):
    """A relaxed draw: a point of the simplex for a categorical (one-hot-like), of (0, 1) for a
    bernoulli."""
    base = base_of(dist)
    if isinstance(base, (nd.BernoulliProbs, nd.BernoulliLogits)):
        u = jax.random.uniform(key, jnp.shape(base.logits), minval=1e-6, maxval=1 - 1e-6)
        return jax.nn.sigmoid((base.logits + jnp.log(u) - jnp.log1p(-u)) / temperature)
    g = jax.random.gumbel(key, jnp.shape(base.logits))
    return jax.nn.softmax((base.logits + g) / temperature, axis=-1)


def check_discrete(dist, name: str) -> str | None:
    base = base_of(dist)
    if not isinstance(base, (nd.BernoulliProbs, nd.BernoulliLogits, nd.CategoricalProbs, nd.CategoricalLogits)):
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
    (a value in (0, 1) for a bernoulli).  Biased: the program sees relaxed values."""
    return Gumbel("gumbel", float(temperature))
