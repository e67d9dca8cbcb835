"""linf_ball(x, radius): the indicator of a max-abs ball."""

from __future__ import annotations

from typing import Any, ClassVar

from optax.projections import projection_linf_ball

from . import PARIKH_BOYD, PROXES, Indicator, _is_scalar


@PROXES.register("linf_ball", cite=f"{PARIKH_BOYD}, §6.5 (norm balls); optax.projections.projection_linf_ball")
class LinfBall(Indicator):
    """The indicator of {x : max_i |x_i| <= radius};  proj(v) = clip(v, -radius, radius) (optax)."""

    name: ClassVar[str] = "linf_ball"
    radius: Any = 1.0
    separable = True
    sign_preserving = True

    @property
    def uniform(self):
        return _is_scalar(self.radius)

    def project(self, v):
        return projection_linf_ball(v, self.radius)
