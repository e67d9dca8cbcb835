"""The measure-valued derivative (weak derivative) estimator."""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpyro.distributions as nd

from . import ESTIMATORS, Estimator, base_of


def _stop(x):
    return jax.lax.stop_gradient(x)


@dataclass(frozen=True)
class MVD(Estimator):
    def check(self, dist) -> str | None:
        base = base_of(dist)
        if dist.batch_shape or dist.event_shape:
            return "mvd works on one scalar site at a time"
        if not isinstance(base, (nd.Normal, nd.BernoulliProbs, nd.BernoulliLogits, nd.CategoricalProbs,
                                 nd.CategoricalLogits)):
            return f"mvd is defined here for normal, bernoulli and categorical, not {type(base).__name__}"
        return None

    def apply(self, dist, key, cont, scores, name):
        base = base_of(dist)
        k0, k1, k2, k3 = jax.random.split(key, 4)
        value = _stop(dist.sample(k0))
        f0 = cont(value)
        if isinstance(base, nd.Normal):
            mu, sigma = base.loc, base.scale
            # d/dmu: (1 / (sigma sqrt(2 pi))) (f(mu + sigma W) - f(mu - sigma W')), W, W' ~ Rayleigh(1)
            w1 = jnp.sqrt(2.0 * jax.random.exponential(k1))
            w2 = jnp.sqrt(2.0 * jax.random.exponential(k2))
            g_mu = (cont(_stop(mu + sigma * w1)) - cont(_stop(mu - sigma * w2))) / (sigma * math.sqrt(2 * math.pi))
            # d/dsigma: (1 / sigma) (f(mu + sigma M) - f(mu + sigma E)), M double-sided Maxwell, E ~ N(0, 1)
            ka, kb, kc = jax.random.split(k3, 3)
            m = jnp.sqrt(jnp.sum(jax.random.normal(ka, (3,)) ** 2)) * jnp.where(jax.random.bernoulli(kb), 1.0, -1.0)
            e = jax.random.normal(kc)
            g_sigma = (cont(_stop(mu + sigma * m)) - cont(_stop(mu + sigma * e))) / sigma
            return f0 + _stop(g_mu) * (mu - _stop(mu)) + _stop(g_sigma) * (sigma - _stop(sigma))
        if isinstance(base, (nd.BernoulliProbs, nd.BernoulliLogits)):
            p = base.probs
            return f0 + _stop(cont(jnp.ones_like(value)) - cont(jnp.zeros_like(value))) * (p - _stop(p))
        p = base.probs  # categorical: dE/dp_i = f(i)
        fs = jax.vmap(cont)(jnp.arange(p.shape[-1]))
        return f0 + jnp.sum(_stop(fs) * (p - _stop(p)))


@ESTIMATORS.register("mvd", cite="Mohamed, Rosca, Figurnov & Mnih, Monte Carlo Gradient Estimation in Machine "
                                 "Learning, JMLR 2020 (section 6); Pflug, Optimization of Stochastic Models, 1996")
def mvd():
    """grad_theta E_p[f] = c_theta (E_{p+}[f] - E_{p-}[f]): the derivative of the density as a
    difference of two distributions (normal: Rayleigh and Maxwell couplings; bernoulli:
    f(1) - f(0); categorical: f(i) for each category)."""
    return MVD("mvd")
