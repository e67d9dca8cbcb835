"""k_sparse(x, k): the (non-convex) set of arrays with at most k non-zero entries."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from . import BECK, PROXES, Indicator


@PROXES.register("k_sparse", cite="Blumensath & Davies, Iterative hard thresholding for compressed "
                 f"sensing, Appl. Comput. Harmon. Anal. 27(3), 2009; {BECK}")
class KSparse(Indicator):
    """The indicator of {x : ||x||₀ <= k};  its projection keeps the k entries of v largest in |v|
    and zeroes the rest (hard thresholding; ties go to the lower flat index).

    The set is NOT convex: the projection is a (not always unique) nearest point, proximal methods on
    it are iterative hard thresholding, and their guarantees are those of IHT, not of convex
    proximal gradient.  k is a static int counted over all entries of x.
    """

    name: ClassVar[str] = "k_sparse"
    convex: ClassVar[bool] = False
    k: int = eqx.field(static=True)
    sign_preserving = True

    def __init__(self, k):
        if int(k) != k or k < 0:
            raise ValueError(f"k_sparse: k must be a non-negative integer, got {k}")
        self.k = int(k)

    def project(self, v):
        flat = v.ravel()
        if self.k >= flat.size:
            return v
        _, idx = jax.lax.top_k(jnp.abs(flat), self.k)
        keep = jnp.zeros(flat.shape, bool).at[idx].set(True)
        return jnp.where(keep, flat, 0).reshape(v.shape)
