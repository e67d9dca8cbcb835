"""One vector of standard-normal noise for all reparameterised Gaussian sites of a guide.

A guide of normals (``mean_field``, ``guide = mean_field``, or sites written ``~ normal(...)``)
draws each latent as ``z = T(loc + scale * eps)`` with ``eps ~ N(0, I)`` (Kingma & Welling 2014).
Drawn site by site, as NumPyro's ``Normal.rsample`` does, each site adds its own threefry hash and
inverse-erf to the compiled step, and those random-number kernels are about half of what XLA
spends compiling a small VI loop.  Drawn as one vector split among the sites, the step has one of
each whatever the number of sites: the same law, a smaller program, a cheaper step.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpyro.distributions as nd


def gaussian_form(fn: nd.Distribution):
    """``(normal, shape, transforms)`` when a draw of ``fn`` is ``T(loc + scale * eps)``, ``eps`` of
    ``shape``: a ``Normal`` under ``Independent``/``expand`` layers, possibly under one
    ``TransformedDistribution``.  ``None`` for anything else.  Reads no arrays (cheap at set-up)."""
    transforms: list = []
    if isinstance(fn, nd.TransformedDistribution):
        transforms, fn = list(fn.transforms), fn.base_dist
    shape = tuple(fn.batch_shape) + tuple(fn.event_shape)
    while isinstance(fn, (nd.Independent, nd.ExpandedDistribution)):
        fn = fn.base_dist
    return (fn, shape, transforms) if type(fn) is nd.Normal else None


def gaussian_path(fn: nd.Distribution):
    """``(loc, scale, transforms)`` of ``gaussian_form``, loc and scale broadcast to the noise's
    shape; ``None`` when ``fn`` has no such form."""
    form = gaussian_form(fn)
    if form is None:
        return None
    normal, shape, transforms = form
    return jnp.broadcast_to(normal.loc, shape), jnp.broadcast_to(normal.scale, shape), transforms


class NoisePool:
    """``eps ~ N(0, I)`` with one entry per entry of the sites' ``shapes``, drawn with one key;
    ``draw(name, fn)`` takes site ``name``'s slice (in the order of ``shapes``) and returns
    ``T(loc + scale * eps)``."""

    def __init__(self, key, shapes: dict[str, tuple]):
        self.offsets, total = {}, 0
        for name, shape in shapes.items():
            self.offsets[name] = (total, shape)
            total += math.prod(shape)
        self.eps = jax.random.normal(key, (total,))

    def draw(self, name: str, fn: nd.Distribution):
        loc, scale, transforms = gaussian_path(fn)
        start, shape = self.offsets[name]
        value = loc + scale * self.eps[start:start + math.prod(shape)].reshape(shape)
        for t in transforms:
            value = t(value)
        return value
