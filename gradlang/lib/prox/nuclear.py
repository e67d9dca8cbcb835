"""nuclear: the sum of singular values, whose prox is singular value thresholding."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from . import PARIKH_BOYD, PROXES, Prox


def _matrix(x):
    if jnp.ndim(x) < 2:
        raise ValueError(f"nuclear: needs a matrix (or a stack of them), got shape {jnp.shape(x)}")
    return x


@PROXES.register("nuclear", cite="Cai, Candès & Shen, A singular value thresholding algorithm for "
                 f"matrix completion, SIAM J. Optim. 20(4), 2010; {PARIKH_BOYD}, §6.7 (matrix functions)")
class Nuclear(Prox):
    """f(X) = Σ_i σ_i(X)  (the nuclear / trace norm);

    prox_{t f}(V) = U diag(max(σ - t, 0)) Wᵀ  for the thin SVD V = U diag(σ) Wᵀ
    (singular value thresholding).  On an array with more than two dimensions, f is the sum over the
    leading (batch) dimensions of the nuclear norms of the trailing matrices.  The dual norm is the
    spectral norm: prox_{t f}(V) = V - t U diag(min(σ/t, 1)) Wᵀ.
    """

    name: ClassVar[str] = "nuclear"

    def value(self, x):
        return jnp.sum(jnp.linalg.svd(_matrix(x), compute_uv=False))

    def _prox(self, v, t):
        u, s, wt = jnp.linalg.svd(_matrix(v), full_matrices=False)
        return (u * jnp.maximum(s - t, 0)[..., None, :]) @ wt
