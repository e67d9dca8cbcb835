"""l1_ball(x, radius): the indicator of an l1 ball."""

from __future__ import annotations

from typing import Any, ClassVar

from optax.projections import projection_l1_ball

from . import PROXES, Indicator


@PROXES.register("l1_ball", cite="Duchi, Shalev-Shwartz, Singer & Chandra, Efficient projections onto "
                 "the l1-ball for learning in high dimensions, ICML 2008; optax.projections.projection_l1_ball")
class L1Ball(Indicator):
    """The indicator of {x : Σ_i |x_i| <= radius};

    proj(v) = v if ||v||₁ <= radius, else sign(v) max(|v| - θ, 0) with θ > 0 such that the l1 norm is
    radius (soft-thresholding at the water level; optax).
    """

    name: ClassVar[str] = "l1_ball"
    radius: Any = 1.0
    sign_preserving = True

    def project(self, v):
        return projection_l1_ball(v, self.radius)
