"""l2_ball(x, radius): the indicator of a Euclidean ball."""

from __future__ import annotations

from typing import Any, ClassVar

from optax.projections import projection_l2_ball

from . import PARIKH_BOYD, PROXES, Indicator


@PROXES.register("l2_ball", cite=f"{PARIKH_BOYD}, §6.5 (norm balls); optax.projections.projection_l2_ball")
class L2Ball(Indicator):
    """The indicator of {x : ||x||₂ <= radius};  proj(v) = v min(1, radius / ||v||₂) (optax)."""

    name: ClassVar[str] = "l2_ball"
    radius: Any = 1.0
    sign_preserving = True

    def project(self, v):
        return projection_l2_ball(v, self.radius)
