"""linf: the max-abs norm, whose prox is v minus t times the projection of v/t on the l1 ball."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
from optax.projections import projection_l1_ball

from . import PARIKH_BOYD, PROXES, Prox


@PROXES.register("linf", cite=f"{PARIKH_BOYD}, §6.5 (norms, via the Moreau decomposition); "
                 "Duchi, Shalev-Shwartz, Singer & Chandra, Efficient projections onto the l1-ball, "
                 "ICML 2008")
class Linf(Prox):
    """f(x) = max_i |x_i|;  prox_{t f}(v) = v - t proj_{||·||₁ <= 1}(v / t).

    The conjugate of a norm is the indicator of its dual-norm ball (here the l1 ball), and Moreau's
    decomposition v = prox_{t f}(v) + t prox_{f*/t}(v/t) gives the formula; the l1-ball projection
    is optax's (sort-based, Duchi et al. 2008).  Equivalently prox = sign(v) min(|v|, θ) for the
    water level θ >= 0 with Σ_i max(|v_i| - θ, 0) = t (θ = 0 when ||v||₁ <= t).
    """

    name: ClassVar[str] = "linf"
    sign_preserving = True

    def value(self, x):
        return jnp.max(jnp.abs(x))

    def _prox(self, v, t):
        return v - t * projection_l1_ball(v / t, 1)
