"""Hypergradient methods of bilevel programs: one entry a file, registered under its file stem.

A bilevel program minimises ``φ(x) = F(x, y*(x))`` over the upper parameters ``x``, where
``y*(x) = argmin_y G(x, y)`` is the lower level's solution (``lower NAME { ... }``).  The
hypergradient ``∇φ(x)`` needs ``dy*/dx``; each entry is one way to get it (or a first-order
surrogate of it) and is written ``solve { bilevel = NAME(args) }``.

An entry is a function of its arguments returning a method (a frozen dataclass) with

* ``init(problem, y0) -> state``: the method's running state (a dict of arrays; ``"y"`` is the lower
  solution, warm-started across upper steps), kept by the solver between steps;
* ``step(problem, x, state) -> (loss, aux, grad, state)``: the upper loss and its auxiliary
  output at the current lower solution, the (estimated) hypergradient with respect to ``x``,
  the next state;
* ``reported(state) -> y``: the lower solution reported as ``NAME.p``;
* ``constrained`` (a class attribute): whether it handles a lower level with ``subject to``
  (``g(x, y) <= 0``, possibly coupling the upper ``x``); the pass refuses the others there;
* ``steps_jointly(constrained) -> bool`` (optional): whether it moves (x, y) by one projected step
  of its ``alpha`` and hands x the gradient mapping, so that the pass matches ``alpha`` and the
  upper ``sgd``'s lr;
* ``rows(problem, x, state) -> ((loss, aux), J, state)`` (optional): for several upper objectives
  (``problem.terms``: each one's loss), ``J`` with row i the hypergradient of objective i (a pytree
  like ``x`` with a leading axis), which the direction hands the program's aggregator (Jacobian
  descent through the lower solution; implicit, unroll);
* ``solution(objective, solve, steps, p, v0) -> v`` (optional): a nested lower level's solution
  ``argmin_v objective(p, v)`` by ``solve`` (its own optimizer, ``steps`` steps) from ``v0``, as a
  function of the levels above ``p`` that JAX differentiates (to second order) the way the method
  does: a block nested in another, or with blocks nested in it, takes a method with it (implicit,
  unroll).

``problem`` is a ``Problem`` (below), supplied by the backend (``backend/solvers/hypergradient.py``);
the method never sees the program.  Every derivative is in the solver's unconstrained coordinates.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ...errors import ConfigError
from ...registry import Registry

BILEVEL = Registry("bilevel method", "gradlang.lib.bilevel")


class Problem(Protocol):
    """The bilevel problem at one upper step, as functions of pytrees ``x`` (upper) and ``y`` (lower)."""

    steps: int  # the lower level's own step count
    x0: Any  # the upper parameters at the start (given to ``init``)

    def upper(self, x, y) -> tuple[Any, Any]:
        """``(F(x, y), aux)``: the upper loss and what the solver reports with it."""

    def lower(self, x, y) -> Any:
        """``G(x, y)``: the lower loss (a sum over the top lower blocks, each at its nested blocks'
        solutions)."""

    def terms(self, x, y) -> tuple[Any, Any]:
        """``(l(x, y), (loss, aux))``: each upper objective's loss (several objectives)."""

    def opt_init(self, y) -> Any:
        """A fresh state of the lower level's optimizer at ``y``."""

    def solve(self, fn: Callable, y0, steps: int | None = None, state=None, after=None) -> tuple[Any, Any]:
        """``(y, opt_state)`` after ``steps`` (default: the lower level's) steps of the lower level's
        own optimizer on ``fn(y)`` from ``y0`` (its optimizer state ``state``, fresh when None),
        ``after(y)`` applied after each step when given; differentiable through the loop."""

    constrained: bool  # whether any lower block has a subject to

    def constraints(self, x, y) -> tuple[Any, Any]:
        """``(g, equality)``: the lower constraints ``g(x, y)`` as one vector, ``<= 0`` (``== 0``
        where the static NumPy mask ``equality`` is True)."""


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def settings(method) -> dict:
    """A method's arguments by name (what the pass writes into the IR, defaults included)."""
    return {f.name: getattr(method, f.name) for f in fields(method)}


def tree_dot(a, b):
    return sum(jnp.vdot(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def tree_axpy(alpha, a, b):
    """``alpha * a + b`` leaf by leaf."""
    return jax.tree.map(lambda u, v: alpha * u + v, a, b)


def stop(tree):
    return jax.tree.map(jax.lax.stop_gradient, tree)


def lower_grad(problem: Problem, x):
    """``y -> ∇_y G(x, y)``."""
    return jax.grad(lambda y: problem.lower(x, y))


def hvp(problem: Problem, x, y):
    """``v -> ∇²_yy G(x, y) v``, a Hessian-vector product (forward over reverse)."""
    g = lower_grad(problem, x)
    return lambda v: jax.jvp(g, (y,), (v,))[1]


def cross(problem: Problem, x, y, v):
    """``∇²_xy G(x, y) v = ∇_x <∇_y G(x, y), v>``, one vector-Jacobian product."""
    return jax.grad(lambda x_: tree_dot(lower_grad(problem, x_)(y), v))(x)


def largest_eigenvalue(H, like, iters: int):
    """The largest eigenvalue of the symmetric positive semidefinite operator ``H`` (on pytrees shaped
    like ``like``) by ``iters`` power iterations from the ones vector."""
    def step(_, u):
        w = H(u)
        return jax.tree.map(lambda a: a / jnp.sqrt(jnp.maximum(tree_dot(w, w), 1e-30)), w)

    u = jax.lax.fori_loop(0, iters, step, jax.tree.map(jnp.ones_like, like))
    return tree_dot(u, H(u)) / jnp.maximum(tree_dot(u, u), 1e-30)


def lagrangian(problem: Problem, x, y, lam):
    """``G(x, y) + λᵀ g(x, y)``: the lower objective plus the multipliers times its constraints."""
    g, _ = problem.constraints(x, y)
    return problem.lower(x, y) + jnp.vdot(lam, g)


def project_feasible(problem: Problem, x, y, iters: int, move_x: bool = True):
    """``(x, y)`` moved onto ``C = {(x, y): g(x, y) <= 0, h(x, y) = 0}`` (``y`` alone when ``move_x``
    is False) by ``iters`` Gauss-Newton projection steps on the violated and equality rows ``A``:
    ``w <- w - J_Aᵀ (J_A J_Aᵀ)⁺ g_A``, the Euclidean projection onto the linearised set.  One step is
    exact for affine constraints whose violated set is the active set at the projection (a half
    space, an affine subspace); for curved constraints it is the projection of Gauss-Newton
    feasibility restoration (Nocedal & Wright, Numerical Optimization, 2nd ed., sec. 15.4)."""
    _, equality = problem.constraints(x, y)
    if equality.size == 0 or iters == 0:
        return x, y
    flat, unravel = ravel_pytree((x, y))
    n_x = ravel_pytree(x)[0].shape[0]
    free = jnp.arange(flat.shape[0]) >= (0 if move_x else n_x)

    def g_of(w):
        return problem.constraints(*unravel(w))[0]

    def step(_, w):
        g = g_of(w)
        active = jnp.asarray(equality) | (g > 0)
        J = jax.jacrev(g_of)(w) * active[:, None] * free[None, :]
        r = jnp.where(active, g, 0.0)
        return w - J.T @ (jnp.linalg.pinv(J @ J.T, hermitian=True) @ r)

    return unravel(jax.lax.fori_loop(0, iters, step, flat))


def multipliers(problem: Problem, x, y, tol: float = 1e-4):
    """The lower constraints' multipliers ``μ`` at a (projected) lower solution ``y``: the least
    squares solution of stationarity ``∇_y G + J_yᵀ μ = 0`` over the active rows (``|g| <= tol``
    and the equalities), the inequality ones clipped at zero; zero on inactive rows."""
    g, equality = problem.constraints(x, y)
    if equality.size == 0:
        return g
    gy = ravel_pytree(jax.grad(lambda v: problem.lower(x, v))(y))[0]
    flat, unravel = ravel_pytree(y)
    J = jax.jacrev(lambda w: problem.constraints(x, unravel(w))[0])(flat)
    active = jnp.asarray(equality) | (g >= -tol)
    J = J * active[:, None]
    mu = -jnp.linalg.pinv(J @ J.T, hermitian=True) @ (J @ gy)
    return jnp.where(jnp.asarray(equality), mu, jnp.maximum(mu, 0.0)) * active
