"""FairGrad: α-fair weights, the solution of G w = w^(-1/α)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import AGGREGATORS, build, require


def fair_solve(G, alpha, iters: int = 100):
    """The w > 0 with G w = w^(-1/α): the minimiser of the strictly convex
    F(w) = ½ wᵀGw - Σ_i f(w_i), f' = w^(-1/α) (f = log for α = 1, else w^(1-1/α) / (1-1/α)),
    by Newton's method with a step that keeps w > 0 and Armijo backtracking on F.

    A row with a zero gradient (G_ii = 0) has no finite weight (F decreases as w_i grows); its
    weight does not change the direction (its row of J is zero), so it is held at 0 here.  When
    no positive solution exists (0 is in the convex hull of the gradients, a Pareto-stationary
    point: no d improves every objective, every α-fair utility is -∞), the weights are 0.
    Returns the weights, the rows that have one (G_ii > 0) and whether the system was solved."""
    m = G.shape[0]
    dtype = G.dtype
    live = jnp.diag(G) > 10 * jnp.finfo(dtype).eps * jnp.maximum(jnp.trace(G), jnp.finfo(dtype).tiny)
    Gl = jnp.where(live[:, None] & live[None, :], G, 0.0)
    p = 1.0 - 1.0 / alpha  # f(w) = w^p / p, or log w when p = 0
    log_case = jnp.abs(p) < 1e-12
    safe_p = jnp.where(log_case, 1.0, p)

    def F(w):
        f = jnp.where(log_case, jnp.log(w), w**safe_p / safe_p)
        return 0.5 * w @ Gl @ w - jnp.sum(jnp.where(live, f, 0.0))

    def step(carry):
        w, it, _ = carry
        g = jnp.where(live, Gl @ w - w ** (-1.0 / alpha), 0.0)
        curv = w ** (-1.0 / alpha - 1.0) / alpha
        H = Gl + jnp.diag(jnp.where(live, curv, 1.0))
        dw = -jnp.linalg.solve(H, g)
        to_boundary = jnp.where(dw < 0, -w / jnp.where(dw < 0, dw, -1.0), jnp.inf)
        s0 = jnp.minimum(1.0, 0.99 * jnp.min(to_boundary))
        slope = g @ dw
        f0 = F(w)

        def shrink(s):
            return s * 0.5

        s = jax.lax.while_loop(lambda s: (F(w + s * dw) > f0 + 1e-4 * s * slope) & (s > 1e-12), shrink, s0)
        w_new = w + s * dw
        done = jnp.abs(slope) <= 1e-30 + 1e-28 * jnp.abs(f0)  # the Newton decrement ~ 0: converged
        return w_new, it + 1, done

    w0 = jnp.full((m,), 1.0 / m, dtype)
    w, *_ = jax.lax.while_loop(lambda c: (c[1] < iters) & ~c[2], step,
                               (w0, jnp.zeros((), jnp.int32), jnp.zeros((), bool)))
    tol = jnp.maximum(1e-8, 1e3 * jnp.finfo(dtype).eps)  # what Newton reaches in float32 and float64
    residual = jnp.where(live, Gl @ w - w ** (-1.0 / alpha), 0.0)
    target = jnp.where(live, w ** (-1.0 / alpha), 0.0)
    solved = jnp.all(jnp.isfinite(w)) & (jnp.linalg.norm(residual) <= tol * jnp.linalg.norm(target))
    return jnp.where(live & solved, w, 0.0), live, solved


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
