"""simplex(x, scale): the indicator of the (scaled) probability simplex."""

from __future__ import annotations

from typing import Any, ClassVar

from optax.projections import projection_simplex

from . import PROXES, Indicator


@PROXES.register("simplex", cite="Duchi, Shalev-Shwartz, Singer & Chandra, Efficient projections onto "
                 "the l1-ball for learning in high dimensions, ICML 2008; Condat, Fast projection onto "
                 "the simplex and the l1 ball, Math. Program. 158, 2016; optax.projections.projection_simplex")
class Simplex(Indicator):
    """The indicator of {x : x >= 0, Σ_i x_i = scale} (scale > 0; the sum runs over all entries);

    proj(v) = max(v - θ, 0) with θ such that the result sums to scale (sort-based, optax).
    """

    name: ClassVar[str] = "simplex"
    scale: Any = 1.0

    def project(self, v):
        return projection_simplex(v, self.scale)
