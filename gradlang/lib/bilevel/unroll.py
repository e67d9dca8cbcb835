"""Unrolled differentiation: the hypergradient through the lower level's own iterations.

The lower solve ``y_T(x) = Φ(Φ(...Φ(y_0, x)..., x), x)`` (``Φ`` one step of the lower level's
optimizer on ``G(x, ·)``) is differentiated by reverse mode through its last ``steps`` iterations,
the earlier ones run without a gradient (truncated back-propagation: Shaban, Cheng, Hatch & Boots,
Truncated back-propagation for bilevel optimization, AISTATS 2019; full unrolling: Maclaurin,
Duvenaud & Adams, ICML 2015; Franceschi et al., ICML 2017):

    ∇φ(x) ≈ d/dx F(x, y_T(x)).

For gradient descent with step η on a strongly convex G from the lower solution, ``dy_T/dx =
-η Σ_{k<T} (I - η ∇²_yy G)^k ∇²_yx G``, which tends to the implicit hypergradient as T grows.
``steps`` defaults to the lower level's own step count (the whole solve unrolled); memory grows
with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax

from . import BILEVEL, require, stop


@dataclass(frozen=True)
class Unroll:
    steps: int | None = None

    def init(self, problem, y0) -> dict:
        return {"y": y0}

    def reported(self, state):
        return state["y"]

    def _start(self, problem, x, state):
        """``(k, y0)``: the iterations differentiated and their start, the tracked y after the
        first ``steps - k`` iterations, run without a gradient."""
        total = problem.steps
        k = total if self.steps is None else self.steps
        y0 = stop(state["y"])
        if k < total:
            y0, _ = problem.solve(lambda v: problem.lower(stop(x), v), y0, steps=total - k)
        return k, stop(y0)

    def step(self, problem, x, state):
        k, y0 = self._start(problem, x, state)

        def through(x_):
            y, _ = problem.solve(lambda v: problem.lower(x_, v), y0, steps=k)
            loss, aux = problem.upper(x_, y)
            return loss, (aux, y)

        (loss, (aux, y)), g = jax.value_and_grad(through, has_aux=True)(x)
        return loss, aux, g, {"y": stop(y)}

    def rows(self, problem, x, state):
        """Several upper objectives: ``(aux, J, state)``, ``J``'s row i ``d/dx l_i(x, y_T(x))``, the
        Jacobian through the unrolled solve (reverse mode, one pass per objective)."""
        k, y0 = self._start(problem, x, state)

        def through(x_):
            y, _ = problem.solve(lambda v: problem.lower(x_, v), y0, steps=k)
            terms, aux = problem.terms(x_, y)
            return terms, (aux, y)

        J, (aux, y) = jax.jacrev(through, has_aux=True)(x)
        return aux, J, {"y": stop(y)}

    def solution(self, objective, solve, steps, p, v0):
        """A nested lower level's solution as its solve's last iterate, differentiable through the
        last ``self.steps`` iterations (all of them by default)."""
        k = steps if self.steps is None else min(self.steps, steps)
        v0 = stop(v0)
        if k < steps:
            v0 = stop(solve(lambda v: objective(stop(p), v), v0, steps - k)[0])
        return solve(lambda v: objective(p, v), v0, k)[0]


@BILEVEL.register("unroll", cite="Maclaurin, Duvenaud & Adams, ICML 2015; Franceschi et al., ICML 2017; "
                  "Shaban et al., AISTATS 2019")
def unroll(steps: int | None = None):
    """Reverse mode through the last `steps` lower iterations (default: all of them)."""
    require(steps is None or (isinstance(steps, int) and steps >= 1), "steps must be a whole number >= 1")
    return Unroll(steps)
