"""norm2: the Euclidean norm of all entries, whose prox is block soft-thresholding."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from . import PARIKH_BOYD, PROXES, Prox


def shrink_factor(norm, t):
    """max(0, 1 - t / norm), 0 where norm <= t (and so where norm == 0)."""
    big = norm > t
    return jnp.where(big, 1 - t / jnp.where(big, norm, 1), 0)


@PROXES.register("norm2", cite=f"{PARIKH_BOYD}, §6.5 (norms: block soft thresholding)")
class Norm2(Prox):
    """f(x) = ||x||₂ = sqrt(Σ_i x_i²);  prox_{t f}(v) = max(0, 1 - t / ||v||₂) v.

    Its conjugate is the indicator of the unit l2 ball: prox_{t f}(v) = v - t proj_{l2<=1}(v/t).
    """

    name: ClassVar[str] = "norm2"
    sign_preserving = True

    def value(self, x):
        return jnp.sqrt(jnp.sum(jnp.square(x)))

    def _prox(self, v, t):
        return shrink_factor(jnp.sqrt(jnp.sum(jnp.square(v))), t) * v
