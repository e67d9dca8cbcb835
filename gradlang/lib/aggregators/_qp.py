"""Small quadratic programs solved exactly inside jit: the dual-cone projection and its kin.

``nonneg_qp(P, q)`` is ``argmin_{x >= 0} ½ xᵀPx + qᵀx``; with ``simplex=True`` it adds
``Σ x = 1``.  It is the primal active-set method of Lawson & Hanson (Solving Least Squares
Problems, 1974, ch. 23), written on the Gram matrix as in Bro & de Jong's FNNLS (1997), with the
sum constraint carried in the KKT system of the free set as in Wolfe's minimum-norm-point method
(1976).  Each iteration solves one m x m system with fixed shapes (the free set is a mask), so the
loop is a ``lax.while_loop`` that ``vmap`` batches over rows.  It ends when no bound has a
negative multiplier, which is exact up to the linear solves; ``max_iter`` only guards against
cycling caused by rounding.

``project_weights(U, G)`` (Quinton & Rey 2024, Proposition 1): for each row u of U the weights
v = argmin_{v >= u} vᵀGv, i.e. ``Jᵀv`` is the projection of ``Jᵀu`` onto the dual cone
{x : J x >= 0}.  G is first normalised by its trace and regularised by ``reg_eps`` I, as
TorchJD's QuadprogProjector does, so the pinned values agree with TorchJD's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import normalize, regularize


def _free_solve(P, q, free, simplex: bool):
    """Minimiser of ½xᵀPx + qᵀx over the free coordinates (the others held at 0), with Σx = 1
    when ``simplex``; returns x and the multiplier λ of the sum constraint (0 without it).

    One Cholesky factorisation of P restricted to the free set (the identity elsewhere); with the
    sum constraint, x = P⁻¹(λ1 - q) on the free set and λ makes Σx = 1."""
    both = free[:, None] & free[None, :]
    A = jnp.where(both, P, 0.0) + jnp.diag(jnp.where(free, 0.0, 1.0)).astype(P.dtype)
    L = jnp.linalg.cholesky(A)

    def solve(b):
        y = jax.scipy.linalg.solve_triangular(L, b, lower=True)
        return jax.scipy.linalg.solve_triangular(L.T, y, lower=False)

    x = solve(jnp.where(free, -q, 0.0))
    if not simplex:
        return jnp.where(free, x, 0.0), jnp.zeros((), P.dtype)
    y = solve(free.astype(P.dtype))
    lam = (1.0 - x.sum()) / jnp.where(y.sum() != 0, y.sum(), 1.0)
    return jnp.where(free, x + lam * y, 0.0), lam


def nonneg_qp(P, q, simplex: bool = False, max_iter: int | None = None, start=None):
    """argmin ½xᵀPx + qᵀx subject to x >= 0 (and Σx = 1 when ``simplex``), P positive definite
    (semi-definite works when the free columns stay independent, as the method keeps them).
    ``start`` (not with ``simplex``): a point x >= 0 to start from, its positive entries the first
    free set; any such point gives the same minimiser, a good one in fewer iterations."""
    m = P.shape[0]
    max_iter = 4 * m + 20 if max_iter is None else max_iter
    eps = jnp.finfo(P.dtype).eps
    tol = 100 * eps * jnp.maximum(jnp.max(jnp.abs(P)), jnp.max(jnp.abs(q)))
    if simplex:  # start at the best vertex, which is feasible
        t0 = jnp.argmin(0.5 * jnp.diag(P) + q)
        x0, free0 = jax.nn.one_hot(t0, m, dtype=P.dtype), jnp.arange(m) == t0
    elif start is not None:
        x0 = jnp.where(start > 0, start, 0.0).astype(P.dtype)
        free0 = x0 > 0
    else:
        x0, free0 = jnp.zeros((m,), P.dtype), jnp.zeros((m,), bool)

    def body(carry):
        x, free, it, _ = carry
        s, lam = _free_solve(P, q, free, simplex)
        feasible = jnp.all(jnp.where(free, s > 0, True))
        # feasible: take s, then free the bound whose multiplier is the most negative
        mult = P @ s + q - lam  # the multipliers of the bounds x_i >= 0
        cand = jnp.where(free, jnp.inf, mult)
        t = jnp.argmin(cand)
        add = cand[t] < -tol
        free_f = free | (add & (jnp.arange(m) == t))
        # infeasible: step from x towards s until a free coordinate hits 0, and bind it
        blocking = free & (s <= 0)
        ratio = jnp.where(blocking, x / jnp.where(blocking, x - s, 1.0), jnp.inf)
        k = jnp.argmin(ratio)
        alpha = jnp.clip(ratio[k], 0.0, 1.0)
        x_i = x + alpha * (s - x)
        free_i = free & (x_i > 0) & (jnp.arange(m) != k)
        x_i = jnp.where(free_i, x_i, 0.0)
        x = jnp.where(feasible, s, x_i)
        free = jnp.where(feasible, free_f, free_i)
        return x, free, it + 1, feasible & ~add

    def cond(carry):
        return (carry[2] < max_iter) & ~carry[3]

    x, *_ = jax.lax.while_loop(cond, body, (x0, free0, jnp.zeros((), jnp.int32), jnp.zeros((), bool)))
    return x


def _guess(P, Q, iters: int = 40):
    """Rough minimisers of ½xᵀPx + qᵀx over x >= 0 for the rows q of Q, all at once: projected
    gradient steps (step 1/|P|, Nesterov's momentum) whose support the exact method starts from,
    so that it needs a few exchanges instead of one per free coordinate (m = 32: 3-5, not 20)."""
    step = 1.0 / jnp.maximum(jnp.max(jnp.sum(jnp.abs(P), axis=1)), jnp.finfo(P.dtype).tiny)

    def body(k, carry):
        x, y = carry
        x_new = jnp.maximum(y - step * (y @ P + Q), 0.0)
        return x_new, x_new + (k / (k + 3.0)) * (x_new - x)

    x, _ = jax.lax.fori_loop(0, iters, body, (jnp.zeros_like(Q), jnp.zeros_like(Q)))
    return x


def nonneg_qp_2(P, Q):
    """argmin_{x >= 0} ½xᵀPx + qᵀx for each row q of Q (shape [k, 2]), P 2 x 2 positive definite,
    in closed form: the minimiser is the first of these that meets the KKT conditions (exactly one
    does when P is positive definite): the unconstrained one -P⁻¹q when both its entries are
    positive; x = (-q₁/P₁₁, 0) when positive with the multiplier P₂₁x₁ + q₂ >= 0; the same with the
    coordinates swapped; else 0 (then q >= 0).  No loop: for two objectives the active-set method
    costs more than the arithmetic."""
    a, b, c = P[0, 0], P[0, 1], P[1, 1]
    q1, q2 = Q[:, 0], Q[:, 1]
    det = a * c - b * b
    inner = jnp.stack([(b * q2 - c * q1) / det, (b * q1 - a * q2) / det], axis=-1)
    x1 = jnp.maximum(-q1 / a, 0.0)
    x2 = jnp.maximum(-q2 / c, 0.0)
    zero = jnp.zeros_like(q1)
    edge1 = jnp.stack([x1, zero], axis=-1)
    edge2 = jnp.stack([zero, x2], axis=-1)
    use_inner = ((inner > 0).all(axis=-1) & (det > 0))[:, None]
    use_1 = ((x1 > 0) & (b * x1 + q2 >= 0))[:, None]
    use_2 = ((x2 > 0) & (b * x2 + q1 >= 0))[:, None]
    return jnp.where(use_inner, inner, jnp.where(use_1, edge1, jnp.where(use_2, edge2, 0.0)))


def project_weights(U, G, norm_eps: float = 1e-4, reg_eps: float = 1e-4):
    """For each row u of U (shape [..., m]): argmin_{v >= u} vᵀGv, with G normalised by its
    trace and regularised (TorchJD's defaults norm_eps = reg_eps = 1e-4).

    Two objectives with reg_eps > 0: in closed form (``nonneg_qp_2``).  Otherwise exact
    (``nonneg_qp``), started from the support of a few projected-gradient steps; where that
    start makes a free set whose columns are dependent (a singular Gramian with reg_eps = 0), the
    solve fails and the rows are solved again from x = 0, which keeps them independent."""
    Gr = regularize(normalize(G, norm_eps), reg_eps)
    flat = U.reshape(-1, U.shape[-1])
    Q = flat @ Gr
    if G.shape[0] == 2 and isinstance(reg_eps, (int, float)) and reg_eps > 0:  # Gr is positive definite
        return (flat + nonneg_qp_2(Gr, Q)).reshape(U.shape)
    warm = jax.vmap(lambda q, x0: nonneg_qp(Gr, q, start=x0))(Q, _guess(Gr, Q))
    x = jax.lax.cond(jnp.all(jnp.isfinite(warm)), lambda: warm,
                     lambda: jax.vmap(lambda q: nonneg_qp(Gr, q))(Q))
    return (flat + x).reshape(U.shape)
