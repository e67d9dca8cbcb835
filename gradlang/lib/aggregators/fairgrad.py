"""FairGrad: α-fair weights, the solution of G w = w^(-1/α)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import AGGREGATORS, build, require


def fair_solve(G, alpha, iters: int = 100):
    """The w > 0 with G w = w^(-1/α): the minimiser of the strictly convex
    F(w) = ½ wᵀGw - Σ_i f(w_i), f' = w^(-1/α) (f = log for α = 1, else w^(1-1/α) / (1-1/α)),
    by Newton's method with a step that keeps w > 0 and backtracking on |∇F|².

    Newton's method does not depend on a linear change of variables, so it runs on w = S u with
    S = diag(G)^(-½): there the Gramian C = S G S has a unit diagonal and the equation reads
    C u = c ⊙ u^(-1/α), c = s^(1-1/α), which keeps float32 accurate when the gradients' norms
    differ by orders of magnitude.  It starts from the solution for orthogonal gradients,
    u = c^(α/(α+1)).

    A row with a zero gradient (G_ii = 0) has no finite weight (F decreases as w_i grows); its
    weight does not change the direction (its row of J is zero), so it is held at 0 here.  When
    no positive solution exists (0 is in the convex hull of the gradients, a Pareto-stationary
    point: no d improves every objective, every α-fair utility is -∞), the weights are 0.
    Returns the weights, the rows that have one (G_ii > 0) and whether the system was solved."""
    dtype = G.dtype
    diag = jnp.diag(G)
    live = diag > jnp.finfo(dtype).eps ** 2 * jnp.maximum(jnp.trace(G), jnp.finfo(dtype).tiny)
    scale = jnp.where(live, 1.0 / jnp.sqrt(jnp.where(live, diag, 1.0)), 1.0)
    C = jnp.where(live[:, None] & live[None, :], G * jnp.outer(scale, scale), 0.0)
    c = scale ** (1.0 - 1.0 / alpha)  # f'(s u) s = s^(1-1/α) u^(-1/α)

    def grad(u):  # ∇F(u) = C u - c ⊙ u^(-1/α), zero at the solution
        return jnp.where(live, C @ u - c * u ** (-1.0 / alpha), 0.0)

    def step(carry):
        u, it, _ = carry
        g = grad(u)
        curv = c * u ** (-1.0 / alpha - 1.0) / alpha
        H = C + jnp.diag(jnp.where(live, curv, 1.0))
        du = -jnp.linalg.solve(H, g)
        to_boundary = jnp.where(du < 0, -u / jnp.where(du < 0, du, -1.0), jnp.inf)
        s0 = jnp.minimum(1.0, 0.99 * jnp.min(to_boundary))
        # backtracking on |∇F|², which the Newton step decreases (d/ds |∇F|² = -2|∇F|²): unlike
        # F, its rounding is relative to itself, so float32 converges to its own precision
        phi = g @ g
        s = jax.lax.while_loop(lambda s: (jnp.sum(grad(u + s * du) ** 2) > (1.0 - 1e-4 * s) * phi) & (s > 1e-12),
                               lambda s: 0.5 * s, s0)
        u_new = u + s * du
        target = jnp.where(live, c * u_new ** (-1.0 / alpha), 0.0)
        done = (s <= 1e-12) | (jnp.sum(grad(u_new) ** 2) <= (4 * jnp.finfo(dtype).eps) ** 2 * (target @ target))
        return jnp.where(s <= 1e-12, u, u_new), it + 1, done

    u0 = jnp.where(live, c ** (alpha / (alpha + 1.0)), 1.0)
    u, *_ = jax.lax.while_loop(lambda k: (k[1] < iters) & ~k[2], step,
                               (u0, jnp.zeros((), jnp.int32), jnp.zeros((), bool)))
    # each equation to 1e-3 relative: far above what Newton reaches (float32 too); where no
    # solution exists it diverges
    target = c * u ** (-1.0 / alpha)
    residual = jnp.abs(C @ u - target)
    solved = jnp.all(jnp.isfinite(u)) & jnp.all(jnp.where(live, residual <= 1e-3 * target, True))
    return jnp.where(live & solved, scale * u, 0.0), live, solved


@AGGREGATORS.register("fairgrad", cite="Ban & Ji, Fair Resource Allocation in Multi-Task Learning, "
                      "ICML 2024 (Equation 4, Algorithm 1)")
def fairgrad(alpha):
    """FairGrad: the weights w > 0 with G w = w^(-1/α) (the α-fair allocation of the utilities
    g_iᵀd, d = Jᵀw: Equation 4), d = Jᵀ w; α = 0 is linear scalarisation (w = 1/m), α = 1
    proportional fairness (the Nash bargaining solution of Nash-MTL), α -> ∞ max-min fairness.

    TorchJD solves the system with ``scipy.optimize.least_squares`` on w >= 0; here it is the
    minimiser of a strictly convex function, by Newton's method (``fair_solve``), in jit."""
    require(alpha >= 0, f"fairgrad: alpha must be non-negative, got {alpha}")

    def weights(G, state, key):
        m = G.shape[0]
        uniform = jnp.full((m,), 1.0 / m, G.dtype)
        a = jnp.asarray(alpha, G.dtype)
        return jnp.where(a == 0, uniform, fair_solve(G, jnp.where(a == 0, 1.0, a))[0]), state

    return build("fairgrad", weights, alpha=alpha)
