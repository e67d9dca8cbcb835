"""norm1: the l1 norm, whose prox is soft-thresholding."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from . import PARIKH_BOYD, PROXES, Prox, soft_threshold


@PROXES.register("norm1", cite="Donoho, De-noising by soft-thresholding, IEEE Trans. Inf. Theory 41(3), "
                 f"1995; {PARIKH_BOYD}, §6.5 (norms)")
class Norm1(Prox):
    """f(x) = Σ_i |x_i|;  prox_{t f}(v) = sign(v) max(|v| - t, 0)  (soft-thresholding).

    Its conjugate is the indicator of the unit linf ball, so prox_{t f}(v) = v - t proj_{linf<=1}(v/t).
    """

    name: ClassVar[str] = "norm1"
    separable = True
    uniform = True
    sign_preserving = True

    def value(self, x):
        return jnp.sum(jnp.abs(x))

    def _prox(self, v, t):
        return soft_threshold(v, t)
