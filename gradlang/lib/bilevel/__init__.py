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
* ``reported(state) -> y``: the lower solution reported as ``NAME.p``.

``problem`` is a ``Problem`` (below), supplied by the backend (``backend/solvers/hypergradient.py``);
the method never sees the program.  Every derivative is in the solver's unconstrained coordinates.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp

from ...errors import ConfigError
from ...registry import Registry

BILEVEL = Registry("bilevel method", "gradlang.lib.bilevel")


class Problem(Protocol):
    """The bilevel problem at one upper step, as functions of pytrees ``x`` (upper) and ``y`` (lower)."""

    steps: int  # the lower level's own step count

    def upper(self, x, y) -> tuple[Any, Any]:
        """``(F(x, y), aux)``: the upper loss and what the solver reports with it."""

    def lower(self, x, y) -> Any:
        """``G(x, y)``: the lower loss (a sum over the lower blocks)."""

    def opt_init(self, y) -> Any:
        """A fresh state of the lower level's optimizer at ``y``."""

    def solve(self, fn: Callable, y0, steps: int | None = None, state=None) -> tuple[Any, Any]:
        """``(y, opt_state)`` after ``steps`` (default: the lower level's) steps of the lower level's
        own optimizer on ``fn(y)`` from ``y0`` (its optimizer state ``state``, fresh when None);
        differentiable through the loop."""


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
