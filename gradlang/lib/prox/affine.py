"""affine(x, A, b): the indicator of the affine set {x : A x = b}."""

from __future__ import annotations

from typing import Any, ClassVar

import jax.numpy as jnp

from . import PARIKH_BOYD, PROXES, Indicator


@PROXES.register("affine", cite=f"{PARIKH_BOYD}, §6.2 (affine sets)")
class Affine(Indicator):
    """The indicator of {x : A x = b} (A: m x n, b: m; the set not empty);

    proj(v) = v - A⁺ (A v - b), with A⁺ the pseudo-inverse (A⁺ = Aᵀ (A Aᵀ)⁻¹ for A of full row rank),
    the closest point of the set in the Euclidean norm.
    """

    name: ClassVar[str] = "affine"
    A: Any
    b: Any

    def project(self, v):
        A = jnp.asarray(self.A, v.dtype)
        return v - jnp.linalg.pinv(A) @ (A @ v - jnp.asarray(self.b, v.dtype))
