"""nonneg: the indicator of the non-negative orthant."""

from __future__ import annotations

from typing import ClassVar

from optax.projections import projection_non_negative

from . import PARIKH_BOYD, PROXES, Indicator


@PROXES.register("nonneg", cite=f"{PARIKH_BOYD}, §6.3 (cones); optax.projections.projection_non_negative")
class Nonneg(Indicator):
    """The indicator of {x : x >= 0};  proj(v) = max(v, 0) (optax)."""

    name: ClassVar[str] = "nonneg"
    separable = True
    uniform = True
    sign_preserving = True

    def project(self, v):
        return projection_non_negative(v)
