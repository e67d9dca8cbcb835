"""GradDrop: gradient sign dropout, coordinate by coordinate."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import AGGREGATORS, build, require, vector


def combine(J, U, leak=None, f=None):
    """GradDrop's direction for the uniform draws U (one per coordinate): P = ½(1 + Σ_i J_i / Σ_i |J_i|);
    row i keeps its coordinates where f(P) > U and J_i > 0, or f(P) < U and J_i < 0 (leak_i of it
    always); d = Σ_i (leak_i + (1 - leak_i) M_i) J_i."""
    m = J.shape[0]
    leak = jnp.zeros((m,), J.dtype) if leak is None else leak.astype(J.dtype)
    P = 0.5 * (1.0 + J.sum(axis=0) / jnp.abs(J).sum(axis=0))
    fP = P if f is None else f(P)
    M = ((fP > U) & (J > 0)) | ((fP < U) & (J < 0))
    return ((leak[:, None] + (1 - leak[:, None]) * M) * J).sum(axis=0)


@AGGREGATORS.register("graddrop", cite="Chen et al., Just Pick a Sign: Optimizing Deep Multitask Models "
                      "with Gradient Sign Dropout, NeurIPS 2020 (Algorithm 1, lines 10-15)")
def graddrop(f=None, leak=None):
    """GradDrop: with the positive sign purity P = ½(1 + Σ_i J_i / Σ_i |J_i|) per coordinate and
    U ~ Uniform(0, 1) per coordinate, each row keeps a coordinate when its sign is the one chosen
    (positive if f(P) > U, negative if f(P) < U); d = Σ_i (leak_i + (1 - leak_i) mask_i) ⊙ g_i.
    f is monotone increasing (default identity); leak (one per row) defaults to 0.  Coordinate-wise,
    so it reads J and returns the direction."""
    lk = vector("graddrop", leak, "leak")
    require(f is None or callable(f), "graddrop: f must be a function")

    def direction(J, state, key):
        require(lk is None or lk.shape[0] == J.shape[0],
                f"graddrop: {0 if lk is None else lk.shape[0]} leak values for {J.shape[0]} objectives")
        U = jax.random.uniform(key, (J.shape[1],), J.dtype)
        return combine(J, U, lk, f), state

    return build("graddrop", direction, stat="direction", stochastic=True, f=f, leak=leak)
