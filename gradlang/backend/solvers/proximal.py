"""The proximal gradient method (ISTA) with a backtracking line search.

    x_{k+1} = prox_{t_k h}(x_k - t_k grad f(x_k))

for ``minimize f(x) + h(x)`` with f smooth (split_prox's smooth part) and h the prox terms; t_k from
the backtracking of ``_prox_step`` (Beck & Teboulle, SIAM J. Imaging Sci. 2009; Parikh & Boyd,
Proximal Algorithms, 2014, sec. 4.2).  O(1/k) on convex problems, monotone in the objective.
``tol`` stops it when the prox-gradient mapping ``||x_k - x_{k+1}|| / t_k`` has fallen below
``tol`` times its first value (it is zero exactly at a minimiser).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ..build import Model
from ..compile_options import once
from ..prox import ProxApplication
from . import SOLVERS
from ._prox_step import (
    StopsOnTol,
    backtrack,
    compiled_init,
    first_step,
    mapping_norm,
)


class ProxState(NamedTuple):
    u: dict               # the iterate x_k (unconstrained: the prox terms' parameters are real)
    y: dict               # the point the next gradient is taken at (x_k for ISTA; extrapolated for FISTA)
    theta: jnp.ndarray    # FISTA's momentum sequence (1 for ISTA)
    t: jnp.ndarray        # the current step
    first: jnp.ndarray    # the first step's mapping norm (for tol)
    converged: jnp.ndarray


class ProximalSolver(StopsOnTol):
    """ISTA (``accelerated = False``) or FISTA with adaptive restart (``accelerated = True``)."""

    model: Model = eqx.field(static=True)
    tol: float | None = eqx.field(static=True)
    accelerated: bool = eqx.field(static=True, default=False)
    keyed = False  # a full-data, deterministic method: nothing in a step is random

    def init(self, u: dict, data: dict, key=None) -> ProxState:
        return compiled_init(self, u, data, {**once(), **self.compile_options})

    def state_like(self, u: dict, data: dict) -> ProxState:
        """``init``'s structure, shapes and dtypes, placeholder values: what the runtime traces to
        lower the loop ahead (``init`` traces two gradients)."""
        f32 = lambda v: jnp.asarray(v, jnp.float32)
        return ProxState(u, u, f32(1.0), f32(1.0), f32(0.0), jnp.asarray(False))

    def _init(self, u: dict, data: dict) -> ProxState:
        g = jax.grad(self.model.smooth_loss)(u, data)
        t = first_step(lambda p: self.model.smooth_loss(p, data), u, g)
        one = jnp.asarray(1.0, jnp.float32)
        return ProxState(u, u, one, t, jnp.asarray(0.0, jnp.float32), jnp.asarray(False))

    def step(self, state: ProxState, data: dict, t_index, key=None):
        smooth = lambda p: self.model.smooth_loss(p, data)
        prox = ProxApplication(self.model.program, self.model.dims, data)
        f_y, g = jax.value_and_grad(smooth)(state.y)
        x, f_x, t, moved = backtrack(smooth, self.with_projections(prox.apply, data), state.y, f_y, g, state.t)
        y, theta = self.extrapolate(state, x)
        first, converged = state.first, state.converged
        if self.tol is not None:  # the mapping's norm is only needed to stop
            gap = mapping_norm(moved, t)
            first = jnp.where(t_index == 0, gap, state.first)
            converged = converged | (gap <= self.tol * first)
        value = f_x + prox.terms_value(self.model.constrain(x))
        return ProxState(x, y, theta, t, first, converged), {"values": value[None]}

    def with_projections(self, apply, data: dict):
        """The prox step followed by the projections of constraints_to_method (on parameters without
        prox terms, so the composition is the prox of the terms plus the sets' indicators)."""
        plan = self.model.program.constrained
        if plan is None or not plan.projections:
            return apply
        from ..constraints import ConstraintEval

        return lambda u, t: ConstraintEval(self.model, data).project(apply(u, t))

    def extrapolate(self, state: ProxState, x: dict):
        """FISTA's next point with O'Donoghue & Candès' gradient restart (Adaptive restart for
        accelerated gradient schemes, Found. Comput. Math. 2015): momentum resets to zero when the
        step (x - y) points against the progress (x - x_prev), i.e. when (y - x).(x - x_prev) > 0."""
        if not self.accelerated:
            return x, state.theta
        restart = sum(jnp.vdot(state.y[k] - x[k], x[k] - state.u[k]) for k in x) > 0
        theta = jnp.where(restart, 1.0, (1.0 + jnp.sqrt(1.0 + 4.0 * state.theta**2)) / 2.0)
        beta = jnp.where(restart, 0.0, (state.theta - 1.0) / theta)
        y = jax.tree.map(lambda xi, pi: xi + beta * (xi - pi), x, state.u)
        return y, theta

    @property
    def constrained(self) -> bool:
        return bool(self.model.program.constraints)

    def log_extras(self, state: ProxState, data: dict) -> dict:
        """The largest violation of any constraint at log points (``history["violation"]``)."""
        if not self.constrained:
            return {}
        from .constrained import largest

        return {"violation": largest(self.model, state.u, data)}

    def constraint_report(self, state: ProxState, data: dict) -> dict:
        from .constrained import report

        return report(self.model, state.u, data, None)


@SOLVERS.register("proximal", cite="Beck & Teboulle, SIAM J. Imaging Sci. 2009; Parikh & Boyd, Proximal "
                                   "Algorithms, Found. Trends Optim. 2014")
def proximal(model: Model, opt=None, batch: int | None = None, tol: float | None = None) -> ProximalSolver:
    """Proximal gradient (ISTA): x+ = prox_{t h}(x - t grad f(x)), t by backtracking."""
    return ProximalSolver(model, tol, False)
