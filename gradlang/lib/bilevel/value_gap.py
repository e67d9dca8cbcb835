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

With γ = 1/σ this is the penalty method of Kwon et al. with one tracking step for ``y``; on the
S008 problems its error shrinks like 1/γ.  ``ŷ`` is the lower solution reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import BILEVEL, require, stop
from .penalty import penalty_gradient


@dataclass(frozen=True)
class ValueGap:
    gamma: float = 10.0
    y_steps: int = 1

    def init(self, problem, y0) -> dict:
        return {"y": y0, "y_gamma": y0, "opt": problem.opt_init(y0)}

    def reported(self, state):
        return state["y"]

    def step(self, problem, x, state):
        x = stop(x)
        # ŷ from the tracked y: with a set of lower solutions the solve moves y onto the set (for a
        # convex quadratic, to its nearest point), so the reported ŷ is the optimistic solution
        y_hat, _ = problem.solve(lambda v: problem.lower(x, v), stop(state["y_gamma"]))
        y, opt = problem.solve(lambda v: problem.upper(x, v)[0] / self.gamma + problem.lower(x, v),
                               stop(state["y_gamma"]), steps=self.y_steps, state=state["opt"])
        y_hat, y = stop(y_hat), stop(y)
        loss, aux, g = penalty_gradient(problem, x, y, y_hat, 1.0 / self.gamma)
        return loss, aux, g, {"y": y_hat, "y_gamma": y, "opt": opt}


@BILEVEL.register("value_gap", cite="Shen & Chen, ICML 2023 (V-PBGD)")
def value_gap(gamma: float = 10.0, y_steps: int = 1):
    """V-PBGD: min F + γ(G - v) over (x, y); direction ∇_x F + γ(∇_x G(x, y) - ∇_x G(x, ŷ))."""
    require(isinstance(gamma, (int, float)) and gamma > 0, "gamma must be a positive number")
    require(isinstance(y_steps, int) and y_steps >= 1, "y_steps must be a whole number >= 1")
    return ValueGap(float(gamma), int(y_steps))
