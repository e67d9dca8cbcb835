"""hyperplane(x, a, b): the indicator of the affine set {x : <a, x> = b}."""

from __future__ import annotations

from typing import Any, ClassVar

import jax.numpy as jnp
from optax.projections import projection_hyperplane

from . import PARIKH_BOYD, PROXES, Indicator


@PROXES.register("hyperplane", cite=f"{PARIKH_BOYD}, §6.2 (affine sets); "
                 "optax.projections.projection_hyperplane")
class Hyperplane(Indicator):
    """The indicator of {x : Σ_i a_i x_i = b} (a: x's shape, not zero; b: a scalar);

    proj(v) = v + (b - <a, v>) / ||a||² a  (optax).
    """

    name: ClassVar[str] = "hyperplane"
    a: Any
    b: Any

    def project(self, v):
        return projection_hyperplane(v, jnp.asarray(self.a, v.dtype), jnp.asarray(self.b, v.dtype))
