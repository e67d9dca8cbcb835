"""Gradient-norm penalty, single loop: G-PBGD of Shen & Chen, On penalty-based bilevel gradient
descent method, ICML 2023 (public PBGD code, ``G-PBGD``).

The bilevel problem (an unconstrained lower level) is replaced by the penalised single-level problem

    min_{x, y} ψ_γ(x, y) = F(x, y) + γ ‖∇_y G(x, y)‖²,

whose solutions approach the bilevel ones as γ grows (the lower optimality condition ∇_y G = 0 as
a penalty).  Each upper step

1. moves ``y`` by ``y_steps`` gradient steps on ``F(x, y)/γ + ‖∇_y G(x, y)‖²`` (its gradient takes one
   Hessian-vector product: ``∇_y F/γ + 2 ∇²_yy G ∇_y G``), the step ``1/(2.2 λ̂²)`` with ``λ̂`` the
   largest eigenvalue of ``∇²_yy G`` from ``power`` power iterations (``‖∇_y G‖²`` has curvature up
   to ``2 λ̂²``), warm-started across upper steps;
2. gives the upper update the direction ``∇_x F(x, y) + γ ∇_x ‖∇_y G(x, y)‖²`` (one more
   Hessian-vector product, ``2 γ ∇²_xy G ∇_y G``).

At the penalised solution ``y_γ`` this is ``dψ_γ/dx``, O(1/γ) from the hypergradient: on the S008
ridge problem at λ = 0.5 it is ``2γ (H y_γ − Aᵀb)ᵀ y_γ`` with ``(A_vᵀA_v + 2γH²) y_γ = A_vᵀb_v +
2γ H Aᵀb``, ``H = AᵀA + λI``.  Unlike ``value_gap`` it needs second derivatives and an
unconstrained lower level; the lower solution reported is ``y``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from . import BILEVEL, cross, hvp, largest_eigenvalue, lower_grad, require, stop, tree_axpy


@dataclass(frozen=True)
class GradNormPenalty:
    gamma: float = 10.0
    y_steps: int = 10
    power: int = 20

    def init(self, problem, y0) -> dict:
        return {"y": y0}

    def reported(self, state):
        return state["y"]

    def penalised_grad(self, problem, x, y):
        """``∇_y (F/γ + ‖∇_y G‖²) = ∇_y F/γ + 2 ∇²_yy G ∇_y G``."""
        fy = jax.grad(lambda v: problem.upper(x, v)[0])(y)
        gy = lower_grad(problem, x)(y)
        return tree_axpy(1.0 / self.gamma, fy, jax.tree.map(lambda a: 2.0 * a, hvp(problem, x, y)(gy)))

    def step(self, problem, x, state):
        x = stop(x)
        y = stop(state["y"])
        lam = largest_eigenvalue(hvp(problem, x, y), y, self.power)
        lr = 1.0 / (2.2 * jnp.maximum(lam, 1e-12) ** 2)
        descend = lambda _, v: tree_axpy(-lr, self.penalised_grad(problem, x, v), v)
        y = jax.lax.fori_loop(0, self.y_steps, descend, y)
        y = stop(y)
        (loss, aux), fx = jax.value_and_grad(lambda x_: problem.upper(x_, y), has_aux=True)(x)
        gy = lower_grad(problem, x)(y)
        g = tree_axpy(2.0 * self.gamma, cross(problem, x, y, gy), fx)  # ∇_x ‖∇_y G‖² = 2 ∇²_xy G ∇_y G
        return loss, aux, g, {"y": y}


@BILEVEL.register("grad_norm_penalty", cite="Shen & Chen, ICML 2023 (G-PBGD)")
def grad_norm_penalty(gamma: float = 10.0, y_steps: int = 10, power: int = 20):
    """G-PBGD: min F + γ‖∇_y G‖² over (x, y); direction ∇_x F + 2γ ∇²_xy G ∇_y G (Hessian-vector products)."""
    require(isinstance(gamma, (int, float)) and gamma > 0, "gamma must be a positive number")
    require(isinstance(y_steps, int) and y_steps >= 1, "y_steps must be a whole number >= 1")
    require(isinstance(power, int) and power >= 1, "power must be a whole number >= 1")
    return GradNormPenalty(float(gamma), int(y_steps), int(power))
