"""BO-REP: Hao, Gong & Liu, Bilevel optimization under unbounded smoothness: a new algorithm and
convergence analysis, ICLR 2024.

For an upper level whose smoothness grows with its gradient (``(L_0, L_1)``-smooth, as recurrent
networks), the upper variable moves by *normalised momentum* and the lower variable is refined
once at the start and then updated only periodically:

* lower: ``refine`` (default: ten times its ``steps``) warm-started steps of the lower level's own
  optimizer on ``G(x_0, ·)`` at the first upper step (initialisation refinement), then the lower level's own ``steps`` on
  ``G(x_t, ·)`` every ``period`` upper steps (periodic updates), held in between;
* hypergradient (Neumann series, Hessian-vector products only):
  ``ĝ = ∇_x F − ∇²_xy G · (1/L) Σ_{q<iters} (I − ∇²_yy G / L)^q ∇_y F``, with ``L`` given or, when 0,
  1.1 × the largest eigenvalue of ``∇²_yy G`` by ``power`` power iterations;
* upper: ``m_t = β m_{t−1} + (1 − β) ĝ`` (``m_{−1} = 0``), and the direction handed to the upper
  optimizer is ``m_t / ‖m_t‖``, so that with ``optimizer = sgd(lr = η)`` (which the pass requires,
  and writes when no optimizer is) every step ``x_{t+1} − x_t = −η m_t / ‖m_t‖`` has norm η exactly.

The last estimate ``ĝ`` is kept in the state (``"hypergradient"``).  On the S008 ridge problem at
λ = 0.5 (``∇²_yy G`` with eigenvalues 2.197 and 5.803), ``L = 6`` and 50 terms give ĝ = −0.1270100
to float32 round-off (the truncation is 0.634^50 < 1e-9).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from . import BILEVEL, cross, hvp, largest_eigenvalue, require, stop, tree_axpy, tree_dot


def neumann_series(H, b, iters: int, L):
    """``(1/L) Σ_{q<iters} (I − H/L)^q b``, the truncated Neumann series of ``H⁻¹ b``."""
    def term(_, c):
        p, v = c
        return tree_axpy(-1.0 / L, H(p), p), tree_axpy(1.0, p, v)

    _, v = jax.lax.fori_loop(0, iters, term, (b, jax.tree.map(jnp.zeros_like, b)))
    return jax.tree.map(lambda a: a / L, v)


@dataclass(frozen=True)
class BORep:
    beta: float = 0.9
    period: int = 1
    refine: int | None = None
    iters: int = 50
    L: float = 0.0
    power: int = 20

    def init(self, problem, y0) -> dict:
        zeros = jax.tree.map(jnp.zeros_like, problem.x0)
        return {"y": y0, "m": zeros, "hypergradient": zeros, "t": jnp.zeros((), jnp.int32)}

    def reported(self, state):
        return state["y"]

    def lower_update(self, problem, x, y, t):
        """The refinement at the first step, the periodic update every ``period`` steps, else ``y``."""
        refine = 10 * problem.steps if self.refine is None else self.refine

        def solve(steps):
            return lambda v: stop(problem.solve(lambda w: problem.lower(x, w), v, steps=steps)[0])

        branch = jnp.where(t == 0, 0, jnp.where(t % self.period == 0, 1, 2))
        return jax.lax.switch(branch, [solve(refine), solve(problem.steps), lambda v: v], y)

    def step(self, problem, x, state):
        x = stop(x)
        y = self.lower_update(problem, x, stop(state["y"]), state["t"])
        (loss, aux), (fx, fy) = jax.value_and_grad(problem.upper, argnums=(0, 1), has_aux=True)(x, y)
        H = hvp(problem, x, y)
        L = self.L if self.L > 0 else 1.1 * jnp.maximum(largest_eigenvalue(H, y, self.power), 1e-12)
        v = neumann_series(H, fy, self.iters, L)
        g = tree_axpy(-1.0, cross(problem, x, y, v), fx)
        m = jax.tree.map(lambda a, b: self.beta * a + (1.0 - self.beta) * b, state["m"], g)
        norm = jnp.sqrt(jnp.maximum(tree_dot(m, m), 1e-30))
        direction = jax.tree.map(lambda a: a / norm, m)
        return loss, aux, direction, {"y": y, "m": m, "hypergradient": g, "t": state["t"] + 1}


@BILEVEL.register("bo_rep", cite="Hao, Gong & Liu, ICLR 2024 (BO-REP)")
def bo_rep(beta: float = 0.9, period: int = 1, refine: int | None = None, iters: int = 50, L: float = 0.0,
           power: int = 20):
    """Normalised momentum upper steps (norm = the sgd lr), Neumann hypergradient, lower level refined
    at the start (refine steps; default ten times its own) and updated every `period` upper steps."""
    require(isinstance(beta, (int, float)) and 0 <= beta < 1, "beta must be in [0, 1)")
    require(isinstance(period, int) and period >= 1, "period must be a whole number >= 1")
    require(refine is None or (isinstance(refine, int) and refine >= 0), "refine must be a whole number >= 0")
    require(isinstance(iters, int) and iters >= 1, "iters must be a whole number >= 1")
    require(isinstance(L, (int, float)) and L >= 0, "L must be a number >= 0 (0: estimated by power iteration)")
    require(isinstance(power, int) and power >= 1, "power must be a whole number >= 1")
    return BORep(float(beta), int(period), refine, int(iters), float(L), int(power))
