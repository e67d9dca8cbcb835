"""sumsq: the squared Euclidean norm (gradlang's sumsq, without a 1/2)."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from . import PARIKH_BOYD, PROXES, Prox


@PROXES.register("sumsq", cite=f"{PARIKH_BOYD}, §6.1 (quadratic functions)")
class Sumsq(Prox):
    """f(x) = Σ_i x_i²;  prox_{t f}(v) = v / (1 + 2t).

    Its conjugate is f*(y) = ||y||² / 4, whose prox with step s is y / (1 + s/2).
    """

    name: ClassVar[str] = "sumsq"
    separable = True
    uniform = True
    sign_preserving = True

    def value(self, x):
        return jnp.sum(jnp.square(x))

    def _prox(self, v, t):
        return v / (1 + 2 * t)
