"""box(x, low, high): the indicator of a box."""

from __future__ import annotations

from typing import Any, ClassVar

import jax.numpy as jnp
from optax.projections import projection_box

from . import PARIKH_BOYD, PROXES, Indicator, _is_scalar


@PROXES.register("box", cite=f"{PARIKH_BOYD}, §6.2 (polyhedra: boxes); optax.projections.projection_box")
class Box(Indicator):
    """The indicator of {x : low <= x <= high} (low <= high, scalars or arrays broadcasting against x);

    proj(v) = clip(v, low, high) (optax).
    """

    name: ClassVar[str] = "box"
    low: Any
    high: Any
    separable = True

    @property
    def uniform(self):
        return _is_scalar(self.low) and _is_scalar(self.high)

    def project(self, v):
        low = jnp.broadcast_to(jnp.asarray(self.low, v.dtype), v.shape)
        high = jnp.broadcast_to(jnp.asarray(self.high, v.dtype), v.shape)
        return projection_box(v, low, high)
