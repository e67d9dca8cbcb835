"""GradVac: gradient vaccine, each gradient pulled towards a target cosine with the others."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import AGGREGATORS, build, require


def weights_with(G, phi, perms, beta: float = 0.5, eps: float = 1e-8):
    """GradVac's weights and updated targets φ̂, given for each row i the order ``perms[i]`` (a
    permutation of 0..m-2) in which the other rows are visited."""
    m = G.shape[0]

    def row(i, phi_i, perm):
        others = jnp.arange(m - 1) + (jnp.arange(m - 1) >= i)

        def visit(k, carry):
            c, cG, phi_i = carry
            j = others[perm[k]]
            norm_i = jnp.sqrt(jnp.clip(cG @ c, 0.0))
            norm_j = jnp.sqrt(jnp.clip(G[j, j], 0.0))
            cos = cG[j] / (norm_i * norm_j + eps)
            hat = phi_i[j]
            s_cos, s_hat = jnp.sqrt(jnp.clip(1 - cos**2, 0.0)), jnp.sqrt(jnp.clip(1 - hat**2, 0.0))
            w = jnp.where(cos < hat, norm_i * (hat * s_cos - cos * s_hat) / (norm_j * s_hat + eps), 0.0)
            return c.at[j].add(w), cG + w * G[j], phi_i.at[j].set((1 - beta) * hat + beta * cos)

        c0 = jax.nn.one_hot(i, m, dtype=G.dtype)
        c, _, phi_i = jax.lax.fori_loop(0, m - 1, visit, (c0, G[i], phi_i))
        return c, phi_i

    C, phi = jax.vmap(row)(jnp.arange(m), phi, perms)
    return C.sum(axis=0), phi


@AGGREGATORS.register("gradvac", cite="Wang et al., Gradient Vaccine: Investigating and Improving "
                      "Multi-task Optimization in Massively Multilingual Models, ICLR 2021")
def gradvac(beta=0.5, eps=1e-8):
    """GradVac: for each i, g_i^PC starts at g_i; over the other rows j in a random order, with
    φ = cos(g_i^PC, g_j) below its target φ̂_ij, g_i^PC += |g_i^PC| (φ̂ √(1-φ²) - φ √(1-φ̂²)) /
    (|g_j| √(1-φ̂²) + eps) g_j; then φ̂_ij <- (1-β) φ̂_ij + β φ.  d = Σ_i g_i^PC.  Written on the
    Gramian (g_i^PC = Σ_k c_ik g_k), as TorchJD; the targets φ̂ (m x m, from 0) are the state."""
    require((beta >= 0) & (beta <= 1), f"gradvac: beta must be in [0, 1], got {beta}")
    require(eps >= 0, f"gradvac: eps must be non-negative, got {eps}")

    def init(m, n, dtype):
        return jnp.zeros((m, m), dtype)

    def weights(G, phi, key):
        m = G.shape[0]
        perms = jax.vmap(lambda k: jax.random.permutation(k, m - 1))(jax.random.split(key, m))
        return weights_with(G, phi, perms, beta, eps)

    return build("gradvac", weights, init=init, stochastic=True, beta=beta, eps=eps)
