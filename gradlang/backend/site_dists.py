"""A sample site's distribution: expanded to the site's shape with its batch dims folded into the
event (one log-density term a site), and narrowed to a typed latent's domain with the truncation
normaliser, as Stan's ``T[low, high]``."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpyro.distributions as nd
from numpyro.distributions.transforms import biject_to

from ..check.types import constraint
from ..ir import nodes as ir


class Constrained(nd.Distribution):
    """A typed latent (``sigma: positive ~ normal(0, 2)``): the base distribution restricted to
    the declared domain.  Its log density is the truncated one, normaliser included, as Stan's
    ``T[low, high]`` (``truncated``: the site's truncated distribution); the normaliser
    ``log P_base(domain)`` depends on the base's parameters, so dropping it would bias their
    gradients.  Where the domain is not an interval (simplex, ordered, matrix domains) or the base
    has no cdf, ``truncated`` is None and the log density is the base's, unnormalised.  Sampling
    (used only to initialise) maps a base draw onto the domain."""

    def __init__(self, base: nd.Distribution, support, truncated: nd.Distribution | None = None):
        self.base, self._support, self.truncated = base, support, truncated
        super().__init__(base.batch_shape, base.event_shape)

    @property
    def support(self):
        return self._support

    def log_prob(self, value):
        return (self.truncated if self.truncated is not None else self.base).log_prob(value)

    def sample(self, key, sample_shape=()):
        return biject_to(self._support)(self.base.sample(key, sample_shape))


class _Renormalised(nd.Distribution):
    """A univariate ``base`` restricted to ``[low, high]`` through its cdf (for bases NumPyro's
    ``TruncatedDistribution`` does not take: gamma, lognormal, beta, ...):
    ``log p(x) - log(F(high) - F(low))``; ``None`` bounds are the base support's own."""

    def __init__(self, base: nd.Distribution, low, high, support):
        self.base, self._support = base, support
        f_low = base.cdf(jnp.asarray(low, jnp.float32)) if low is not None else 0.0
        f_high = base.cdf(jnp.asarray(high, jnp.float32)) if high is not None else 1.0
        self.log_z = jnp.log(jnp.clip(f_high - f_low, jnp.finfo(jnp.float32).tiny))
        super().__init__(jnp.shape(self.log_z) if jnp.ndim(self.log_z) else base.batch_shape, ())

    @property
    def support(self):
        return self._support

    def log_prob(self, value):
        return self.base.log_prob(value) - self.log_z


def _bounds(c) -> tuple[float, float] | None:
    """The interval ``(low, high)`` of a univariate NumPyro constraint, or None if it is not one."""
    if c is nd.constraints.real:
        return -math.inf, math.inf
    if getattr(c, "event_dim", 0) != 0 or getattr(c, "is_discrete", False):
        return None
    if isinstance(c, (nd.constraints.greater_than, nd.constraints.less_than, nd.constraints.interval)):
        return (float(getattr(c, "lower_bound", -math.inf)), float(getattr(c, "upper_bound", math.inf)))
    return None


TRUNCATABLE = nd.truncated.LeftTruncatedDistribution.supported_types  # normal, cauchy, student_t, ...


def truncated(d: nd.Distribution, support) -> nd.Distribution | None:
    """``d`` (one univariate distribution, as written) truncated to the interval ``support``:
    NumPyro's ``TruncatedDistribution`` for the bases it takes (numerically careful in the tails),
    else the base renormalised through its cdf; None when no truncation applies (the base's
    support lies inside the domain already) or none is available (a non-interval domain, a
    multivariate or discrete base, a base without a cdf)."""
    domain, own = _bounds(support), _bounds(d.support) if d.event_shape == () else None
    if domain is None or own is None:
        return None
    low = domain[0] if domain[0] > own[0] else None
    high = domain[1] if domain[1] < own[1] else None
    if low is None and high is None:
        return None  # the base's support lies inside the domain: the normaliser is 1
    if isinstance(d, TRUNCATABLE) and d.support is nd.constraints.real:
        return nd.TruncatedDistribution(d, low, high)
    try:
        return _Renormalised(d, low, high, support)
    except NotImplementedError:  # no cdf: the log density stays unnormalised (docs/language.md)
        return None


def _site(d: nd.Distribution, shape: tuple | None) -> nd.Distribution:
    if shape is not None:
        batch = tuple(shape[: len(shape) - len(d.event_shape)])
        if tuple(d.batch_shape) != batch:
            d = d.expand(batch)
    if d.batch_shape:
        d = d.to_event(len(d.batch_shape))
    return d


def shaped(d: nd.Distribution, shape: tuple | None, domain: ir.Domain | None = None) -> nd.Distribution:
    """``d`` as one site of ``shape``: expanded, its batch dims moved into the event; with a
    ``domain`` narrower than its support, truncated to it (``Constrained``)."""
    site = _site(d, shape)
    if domain is None or domain.name == "real":
        return site
    support = constraint(domain)
    cut = truncated(d, support)
    return Constrained(site, support, _site(cut, tuple(site.shape())) if cut is not None else None)
