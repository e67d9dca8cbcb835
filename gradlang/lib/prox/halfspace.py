"""halfspace(x, a, b): the indicator of the half-space {x : <a, x> <= b}."""

from __future__ import annotations

from typing import Any, ClassVar

import jax.numpy as jnp
from optax.projections import projection_halfspace

from . import PARIKH_BOYD, PROXES, Indicator


@PROXES.register("halfspace", cite=f"{PARIKH_BOYD}, §6.2 (halfspaces); "
                 "optax.projections.projection_halfspace")
class Halfspace(Indicator):
    """The indicator of {x : Σ_i a_i x_i <= b} (a: x's shape, not zero; b: a scalar);

    proj(v) = v - max(<a, v> - b, 0) / ||a||² a  (optax).
    """

    name: ClassVar[str] = "halfspace"
    a: Any
    b: Any

    def project(self, v):
        return projection_halfspace(v, jnp.asarray(self.a, v.dtype), jnp.asarray(self.b, v.dtype))
