"""PCGrad: gradient surgery, each gradient projected off the others it conflicts with."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import AGGREGATORS, build


def weights_with(G, perms):
    """PCGrad's weights given, for each row i, the order ``perms[i]`` (a permutation of 0..m-1) in
    which the other rows are visited: c = e_i; for j in order, j != i: if (G c)_j < 0,
    c_j -= (G c)_j / G_jj; w = Σ_i c."""
    m = G.shape[0]

    def row(i, perm):
        def visit(k, c):
            j = perm[k]
            ip = G[j] @ c
            hit = (j != i) & (ip < 0.0)
            return c.at[j].add(jnp.where(hit, -ip / jnp.where(hit, G[j, j], 1.0), 0.0))

        return jax.lax.fori_loop(0, m, visit, jax.nn.one_hot(i, m, dtype=G.dtype))

    return jax.vmap(row)(jnp.arange(m), perms).sum(axis=0)


@AGGREGATORS.register("pcgrad", cite="Yu et al., Gradient Surgery for Multi-Task Learning, NeurIPS 2020 "
                      "(Algorithm 1)")
def pcgrad():
    """PCGrad: for each i, g_i^PC starts at g_i and, over the other rows j in a random order, when
    g_i^PC · g_j < 0 becomes g_i^PC - (g_i^PC · g_j / |g_j|²) g_j; d = Σ_i g_i^PC.

    Written on the Gramian, as TorchJD: g_i^PC = Σ_k c_ik g_k, so g_i^PC · g_j = (G c_i)_j and the
    projection adds -(G c_i)_j / G_jj to c_ij; the weights are w = Σ_i c_i.  One random order per
    row and step (deterministic for m = 2).
    """

    def weights(G, state, key):
        m = G.shape[0]
        perms = jax.vmap(lambda k: jax.random.permutation(k, m))(jax.random.split(key, m))
        return weights_with(G, perms), state

    return build("pcgrad", weights, stochastic=True)
