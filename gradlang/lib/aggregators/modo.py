"""MoDo: the task weights follow a projected stochastic-gradient step per call."""

from __future__ import annotations

import jax.numpy as jnp

from . import AGGREGATORS, build, project_simplex, require


@AGGREGATORS.register("modo", cite="Chen et al., Three-Way Trade-Off in Multi-Objective Learning: "
                      "Optimization, Generalization and Conflict-Avoidance, NeurIPS 2023 / JMLR 2024")
def modo(gamma=0.1, rho=0.1):
    """MoDo: λ <- Π_simplex(λ - γ (A λ + ρ λ)), w = λ, d = Jᵀ w; λ starts at 1/m and is the state.

    A is the cross-Gramian J₁ J₂ᵀ of two independent mini-batches (a solver passes it; with one
    Jacobian it is G = J Jᵀ): the stochastic update of MoDo's λ (Equation 2.9a), ρ an l2 penalty."""
    require(gamma > 0, f"modo: gamma must be positive, got {gamma}")
    require(rho >= 0, f"modo: rho must be non-negative, got {rho}")

    def init(m, n, dtype):
        return jnp.full((m,), 1.0 / m, dtype)

    def weights(A, lam, key):
        lam = project_simplex(lam - gamma * (A @ lam + rho * lam))
        return lam, lam

    return build("modo", weights, init=init, gamma=gamma, rho=rho)
