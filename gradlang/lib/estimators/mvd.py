"""The measure-valued derivative (weak derivative) estimator, for sites of any shape.

One coordinate z ~ p_theta: d/dtheta E[f(z)] = c_theta (E_{z+ ~ p+}[f(z+)] - E_{z- ~ p-}[f(z-)]).
A site of independent coordinates z_1..z_n (a ``to_event``/``expand`` of one family) has the
product density, so each parameter's derivative is the one-coordinate MVD with the other
coordinates held at the shared draw z (Mohamed et al. 2020, section 6):

    d/dtheta_i E[f(z)] = c_i (f(z with z_i := z_i+) - f(z with z_i := z_i-)),

and the gradient flows through the surrogate f(z) + sum_i stop(g_i) (theta_i - stop(theta_i)),
theta broadcast to the site's shape first so that a shared parameter gets the sum.  Every
replaced value of every coordinate runs in one vmapped call of the rest of the program.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpyro.distributions as nd

from . import ESTIMATORS, Estimator, base_of

FAMILIES = (nd.Normal, nd.BernoulliProbs, nd.BernoulliLogits, nd.CategoricalProbs, nd.CategoricalLogits)


def _stop(x):
    return jax.lax.stop_gradient(x)


def _replaced(cont, value, news):
    """``f`` at ``value`` with one coordinate i at a time set to ``news[j][i]``: shape ``news.shape``."""
    flat = value.reshape(-1)

    def one(new, i):
        return cont(flat.at[i].set(new[i]).reshape(value.shape))

    news = news.astype(value.dtype).reshape(len(news), -1)
    fs = jax.vmap(jax.vmap(one, (None, 0)), (0, None))(news, jnp.arange(flat.size))
    return fs.reshape((len(news), *value.shape))


@dataclass(frozen=True)
class MVD(Estimator):
    def check(self, dist) -> str | None:
        base = base_of(dist)
        if not isinstance(base, FAMILIES):
            return f"mvd is defined here for normal, bernoulli and categorical, not {type(base).__name__}"
        return None

    def apply(self, dist, key, cont, scores, name):
        base, shape = base_of(dist), dist.shape()
        k0, k1, k2, k3 = jax.random.split(key, 4)
        value = _stop(dist.sample(k0))
        f0 = cont(value)
        if isinstance(base, nd.Normal):
            mu, sigma = jnp.broadcast_to(base.loc, shape), jnp.broadcast_to(base.scale, shape)
            # d/dmu: (1 / (sigma sqrt(2 pi))) (f(mu + sigma W) - f(mu - sigma W')), W, W' ~ Rayleigh(1)
            w1 = jnp.sqrt(2.0 * jax.random.exponential(k1, shape))
            w2 = jnp.sqrt(2.0 * jax.random.exponential(k2, shape))
            # d/dsigma: (1 / sigma) (f(mu + sigma M) - f(mu + sigma E)), M double-sided Maxwell, E ~ N(0, 1)
            ka, kb, kc = jax.random.split(k3, 3)
            m = jnp.sqrt(jnp.sum(jax.random.normal(ka, (*shape, 3)) ** 2, -1))
            m = m * jnp.where(jax.random.bernoulli(kb, shape=shape), 1.0, -1.0)
            e = jax.random.normal(kc, shape)
            fp, fm, fM, fE = _replaced(cont, value, _stop(mu + sigma * jnp.stack([w1, -w2, m, e])))
            g_mu = (fp - fm) / (sigma * math.sqrt(2 * math.pi))
            g_sigma = (fM - fE) / sigma
            return f0 + jnp.sum(_stop(g_mu) * (mu - _stop(mu)) + _stop(g_sigma) * (sigma - _stop(sigma)))
        if isinstance(base, (nd.BernoulliProbs, nd.BernoulliLogits)):
            p = jnp.broadcast_to(base.probs, shape)  # dE/dp_i = f(z_i := 1) - f(z_i := 0)
            f1, f0_ = _replaced(cont, value, jnp.stack([jnp.ones(shape), jnp.zeros(shape)]))
            return f0 + jnp.sum(_stop(f1 - f0_) * (p - _stop(p)))
        p = jnp.broadcast_to(base.probs, (*shape, base.probs.shape[-1]))  # categorical: dE/dp_ic = f(z_i := c)
        cats = jnp.broadcast_to(jnp.arange(p.shape[-1]).reshape((-1,) + (1,) * len(shape)), (p.shape[-1], *shape))
        fs = jnp.moveaxis(_replaced(cont, value, cats), 0, -1)
        return f0 + jnp.sum(_stop(fs) * (p - _stop(p)))


@ESTIMATORS.register("mvd", cite="Mohamed, Rosca, Figurnov & Mnih, Monte Carlo Gradient Estimation in Machine "
                                 "Learning, JMLR 2020 (section 6); Pflug, Optimization of Stochastic Models, 1996")
def mvd():
    """grad_theta E_p[f] = c_theta (E_{p+}[f] - E_{p-}[f]): the derivative of the density as a
    difference of two distributions (normal: Rayleigh and Maxwell couplings; bernoulli:
    f(1) - f(0); categorical: f(i) for each category), per coordinate of a site of independent
    coordinates with the others held at the shared draw."""
    return MVD("mvd")
