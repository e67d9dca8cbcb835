"""What the splitting methods (admm, pdhg) share: the dual terms ``c_i f_i(K_i p_i)`` of a split
objective as linear maps and proxes, and power-iteration estimates of the norms their steps need.

``split_prox`` put the terms handled by a dual variable in ``ProxSplit.dual``: term i reads one
parameter ``p_i`` through ``K_i`` (a matrix known before the run, applied as ``K_i @ p_i``, or as
``p_i @ K_i`` for a matrix p_i written so, or the identity).  Over the parameters as a dict ``u``:

    K u = (K_1 u[p_1], ..., K_m u[p_m])          (a tuple, one array a term; ``apply`` adds each
                                                  term's offset c_i, written f(K @ p + c))
    K^T y = sum_i  K_i^T y_i placed at p_i       (a dict with u's keys; zeros where no term reads)

``norm_sq`` estimates ``||K||^2 = lambda_max(K^T K)`` and ``curvature`` the largest eigenvalue of a
symmetric operator (a Hessian, by Hessian-vector products) by the power method (Golub & Van Loan,
Matrix Computations, 4th ed., sec. 8.2.1), from a fixed start, with a 10% margin: the Rayleigh
quotient approaches the top eigenvalue from below, and the step-size conditions it serves
(``tau sigma ||K||^2 < 1``, ``tau < 2 / L``) need an upper bound.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..prox import ProxApplication

POWER_ITERATIONS = 100
MARGIN = 1.1


def tree_dot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def tree_norm(a):
    return jnp.sqrt(tree_dot(a, a))


class DualTerms:
    """The dual terms of a split, built inside a trace: ``entries[i]`` the prox entry of ``c_i f_i``
    (with ``prox`` and ``prox_conj``), ``apply(u)`` = K u and ``adjoint(y)`` = K^T y."""

    def __init__(self, model, data: dict):
        self.prox = ProxApplication(model.program, model.dims, data)
        self.terms = model.program.split.dual
        self.entries = [self.prox.entry(t) for t in self.terms]
        self.maps = [None if t.linear is None else jnp.asarray(self.prox.ev.eval(t.linear), jnp.float32)
                     for t in self.terms]
        self.offsets = [None if t.offset is None else jnp.asarray(self.prox.ev.eval(t.offset), jnp.float32)
                        for t in self.terms]

    def linear(self, u: dict) -> tuple:
        """K u, without the offsets."""
        return tuple(u[t.param] if K is None else K @ u[t.param] if t.linear_side == "left" else u[t.param] @ K
                     for t, K in zip(self.terms, self.maps))

    def apply(self, u: dict) -> tuple:
        """K u + c: each term's argument (c its offset, 0 where it has none)."""
        return tuple(k if c is None else k + c for k, c in zip(self.linear(u), self.offsets))

    def without_offsets(self, v: tuple) -> tuple:
        return tuple(vi if c is None else vi - c for vi, c in zip(v, self.offsets))

    def adjoint(self, y: tuple, like: dict) -> dict:
        out = {k: jnp.zeros_like(v) for k, v in like.items()}
        for t, K, yi in zip(self.terms, self.maps, y):
            out[t.param] = out[t.param] + (yi if K is None else K.T @ yi if t.linear_side == "left" else yi @ K.T)
        return out

    def zeros(self, u: dict) -> tuple:
        return tuple(jnp.zeros_like(z) for z in self.apply(u))

    def norm_sq(self, u: dict):
        """An upper estimate of ||K||^2 (0 with no dual terms)."""
        if not self.terms:
            return jnp.zeros((), jnp.float32)
        return curvature(lambda v: self.adjoint(self.linear(v), v), u)


def curvature(operator, like: dict):
    """An upper estimate of the largest eigenvalue of a symmetric positive semi-definite ``operator``
    on dicts shaped like ``like``, by the power method (see the module doc)."""
    leaves, tree = jax.tree.flatten(like)
    keys = jax.random.split(jax.random.PRNGKey(0), len(leaves))
    v = jax.tree.unflatten(tree, [jax.random.normal(k, jnp.shape(x), jnp.float32) for k, x in zip(keys, leaves)])

    def body(_, v):
        w = operator(jax.tree.map(lambda a: a / jnp.maximum(tree_norm(v), 1e-30), v))
        return w

    v = jax.lax.fori_loop(0, POWER_ITERATIONS, body, v)
    v = jax.tree.map(lambda a: a / jnp.maximum(tree_norm(v), 1e-30), v)
    return MARGIN * tree_dot(v, operator(v))


def hessian_curvature(f, u: dict):
    """An upper estimate of the largest eigenvalue of the Hessian of ``f`` at ``u`` (its gradient's
    Lipschitz constant where f is a quadratic; a local one otherwise)."""
    grad = jax.grad(f)
    return curvature(lambda v: jax.jvp(grad, (u,), (v,))[1], u)
