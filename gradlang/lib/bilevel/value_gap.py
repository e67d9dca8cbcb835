"""Value-function-gap penalty, single loop: V-PBGD of Shen & Chen, On penalty-based bilevel
gradient descent method, ICML 2023.

The bilevel problem is replaced by the penalised single-level problem

    min_{x, y} F(x, y) + γ (G(x, y) - v(x)),    v(x) = min_y G(x, y),

whose solutions recover the bilevel ones (for γ of order ε^-1/2) without lower-level strong
convexity: a lower level with a whole set of solutions is fine, the penalty picking the one best
for F.  Each upper step

1. runs the lower level's own solve on ``G(x, ·)`` from the tracked ``y`` to ``ŷ ≈ argmin``, so
   that ``∇v(x) = ∇_x G(x, ŷ)`` (Danskin); with a set of lower solutions ``ŷ`` is then the point of
   the set reached from ``y`` (the nearest, for a convex quadratic), the optimistic solution;
2. moves ``y`` by ``y_steps`` steps (default one: the single-loop method) of the lower level's
   optimizer on ``F(x, y) / γ + G(x, y)`` (the penalised objective over γ), its optimizer state kept
   across upper steps;
3. gives the upper update the direction ``∇_x F(x, y) + γ (∇_x G(x, y) - ∇_x G(x, ŷ))``.

A constrained lower level (``subject to`` in the block, ``g(x, y) <= 0``, possibly coupling the
upper ``x``): ``ŷ`` comes from the lower solve projected onto ``{y: g(x, y) <= 0}`` after each step,
``∇v(x) = ∇_x [G + μᵀg](x, ŷ)`` with ŷ's multipliers ``μ`` (least squares on its active rows), and
``(x, y)`` take one joint projected step of size ``alpha`` on ``F + γ(G − v)`` onto ``{g(x, y) <= 0}``
(S096's ``Proj_{X×Y}``; the joint projection matters when g couples x and y), x along its gradient
mapping ``(x − x⁺)/alpha`` (``optimizer = sgd(lr = alpha)`` is the method exactly).

With γ = 1/σ this is the penalty method of Kwon et al. with one tracking step for ``y``; on the
S008 problems its error shrinks like 1/γ.  ``ŷ`` is the lower solution reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax

from . import BILEVEL, lagrangian, multipliers, project_feasible, require, stop, tree_axpy
from .penalty import penalty_gradient


@dataclass(frozen=True)
class ValueGap:
    gamma: float = 10.0
    y_steps: int = 1
    alpha: float = 0.01
    proj_iters: int = 3

    constrained = True

    def steps_jointly(self, constrained: bool) -> bool:
        """(x, y) take one projected step of size alpha, x its gradient mapping (with lower constraints)."""
        return constrained

    def init(self, problem, y0) -> dict:
        return {"y": y0, "y_gamma": y0, "opt": problem.opt_init(y0)}

    def reported(self, state):
        return state["y"]

    def step(self, problem, x, state):
        if problem.constrained:
            return self.constrained_step(problem, stop(x), state)
        x = stop(x)
        # ŷ from the tracked y: with a set of lower solutions the solve moves y onto the set (for a
        # convex quadratic, to its nearest point), so the reported ŷ is the optimistic solution
        y_hat, _ = problem.solve(lambda v: problem.lower(x, v), stop(state["y_gamma"]))
        y, opt = problem.solve(lambda v: problem.upper(x, v)[0] / self.gamma + problem.lower(x, v),
                               stop(state["y_gamma"]), steps=self.y_steps, state=state["opt"])
        y_hat, y = stop(y_hat), stop(y)
        loss, aux, g = penalty_gradient(problem, x, y, y_hat, 1.0 / self.gamma)
        return loss, aux, g, {"y": y_hat, "y_gamma": y, "opt": opt}

    def constrained_step(self, problem, x, state):
        """One joint projected step on ``F + γ(G − v)`` over ``{(x, y): g(x, y) <= 0}``."""
        def onto_lower_set(v):
            return project_feasible(problem, x, v, 1, move_x=False)[1]  # once a step: the solve repeats it

        y = stop(state["y_gamma"])
        y_hat, _ = problem.solve(lambda v: problem.lower(x, v), y, after=onto_lower_set)
        y_hat = stop(y_hat)
        mu = stop(multipliers(problem, x, y_hat))
        fx, fy = jax.grad(lambda x_, y_: problem.upper(x_, y_)[0], argnums=(0, 1))(x, y)
        gx, gy = jax.grad(problem.lower, argnums=(0, 1))(x, y)
        dv = jax.grad(lambda x_: lagrangian(problem, x_, y_hat, mu))(x)  # ∇v(x), Danskin with multipliers
        d_x = tree_axpy(self.gamma, tree_axpy(-1.0, dv, gx), fx)
        d_y = tree_axpy(self.gamma, gy, fy)
        x_new, y_new = project_feasible(problem, tree_axpy(-self.alpha, d_x, x), tree_axpy(-self.alpha, d_y, y),
                                        self.proj_iters)
        loss, aux = problem.upper(x, y_hat)
        mapping = jax.tree.map(lambda a, b: (a - b) / self.alpha, x, x_new)
        return loss, aux, mapping, {"y": y_hat, "y_gamma": stop(y_new), "opt": state["opt"]}


@BILEVEL.register("value_gap", cite="Shen & Chen, ICML 2023 (V-PBGD)")
def value_gap(gamma: float = 10.0, y_steps: int = 1, alpha: float = 0.01, proj_iters: int = 3):
    """V-PBGD: min F + γ(G - v) over (x, y); direction ∇_x F + γ(∇_x G(x, y) - ∇_x G(x, ŷ)); a
    constrained lower level: joint projected steps of size alpha."""
    require(isinstance(gamma, (int, float)) and gamma > 0, "gamma must be a positive number")
    require(isinstance(y_steps, int) and y_steps >= 1, "y_steps must be a whole number >= 1")
    require(isinstance(alpha, (int, float)) and alpha > 0, "alpha must be a positive number")
    require(isinstance(proj_iters, int) and proj_iters >= 1, "proj_iters must be a whole number >= 1")
    return ValueGap(float(gamma), int(y_steps), float(alpha), int(proj_iters))
