"""The augmented Lagrangian method (method of multipliers), with the multiplier and penalty updates
of Conn, Gould & Toint's LANCELOT (Nocedal & Wright, Algorithm 17.4) run inside a stream of primal
steps."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from . import CONSTRAINT_METHODS, largest_violation

BIG = float(jnp.finfo(jnp.float32).max)  # finite: the runtime takes a non-finite state for a diverged run


@dataclass(frozen=True)
class AugmentedLagrangian:
    rho: float
    every: int
    grow: float
    shrink: float
    rho_max: float
    feasible: float
    omega: float

    def init(self, shapes):
        return {"multipliers": [jnp.zeros(s, jnp.float32) for s in shapes],
                "rho": jnp.asarray(self.rho, jnp.float32),
                "target": jnp.asarray(BIG, jnp.float32),       # eta_k: the violation an inner solve must reach
                "stationary": jnp.asarray(-1.0, jnp.float32),  # omega_k (set from the first gradient)
                "count": jnp.asarray(0, jnp.int32)}            # primal steps since the last inner solve ended

    def loss(self, gs, kinds, state):
        rho, total = jax.lax.stop_gradient(state["rho"]), 0.0
        for g, k, m in zip(gs, kinds, state["multipliers"]):
            m = jax.lax.stop_gradient(m)
            if k == "eq":
                total = total + jnp.sum(m * g) + 0.5 * rho * jnp.sum(g**2)
            else:  # Rockafellar's form: smooth in g, exact for the inequality's multiplier
                total = total + jnp.sum(jnp.maximum(m + rho * g, 0.0) ** 2 - m**2) / (2.0 * rho)
        return total

    def update(self, state, gs, kinds, stationarity=None):
        """One primal step done, at ``g`` with ``stationarity = ||grad_x L_A||``.

        An inner solve (the primal steps at fixed multipliers and rho) ends when the primal is
        stationary (``stationarity <= omega_k``) or after ``every`` steps.  At its end:

        * the violation reached the target eta_k (or ``feasible``): the multipliers take their
          first-order update (lambda += rho h, mu = max(mu + rho g, 0)) and both targets tighten
          (eta = shrink * violation, omega *= shrink);
        * it did not, although the primal was stationary: the multipliers are not what is wrong,
          rho is too small: rho *= grow (at most ``rho_max``), the multipliers stay;
        * it did not, and the steps ran out before the primal was stationary: the multipliers take
          their update and rho stays.  Growing rho on a violation that only reflects an inexact
          inner solve (an adaptive optimizer's jitter) would amplify that noise into the
          multipliers (they move by rho g) without bound.  The price: where the augmented
          Lagrangian is unbounded below at the starting rho (a non-convex problem, the primal
          never stationary), rho does not grow by itself; write a larger one.

        Nocedal & Wright, Numerical Optimization, 2nd ed., Algorithm 17.4; Conn, Gould & Toint,
        SIAM J. Numer. Anal. 28 (1991); Bertsekas 1982, sec. 2.2 (inexact minimisation)."""
        count = state["count"] + 1
        worst = largest_violation(gs, kinds)
        size = jnp.asarray(jnp.inf if stationarity is None else stationarity, jnp.float32)
        omega = jnp.where(state["stationary"] < 0, self.omega * size, state["stationary"])  # relative to the start
        solved = size <= omega
        end = solved | (count >= self.every)
        reached = worst <= jnp.maximum(state["target"], self.feasible)
        move = end & (reached | ~solved)
        rho = state["rho"]
        new = [m + rho * g if k == "eq" else jnp.maximum(m + rho * g, 0.0)
               for g, k, m in zip(gs, kinds, state["multipliers"])]
        tighten = end & reached
        return {"multipliers": [jnp.where(move, n, m) for n, m in zip(new, state["multipliers"])],
                "rho": jnp.where(end & ~reached & solved, jnp.minimum(rho * self.grow, self.rho_max), rho),
                "target": jnp.where(tighten, self.shrink * worst, state["target"]),
                "stationary": jnp.where(tighten, self.shrink * omega, omega),
                "count": jnp.where(end, 0, count)}

    def multipliers(self, state):
        return state["multipliers"]


@CONSTRAINT_METHODS.register("augmented_lagrangian", cite="Hestenes 1969; Powell 1969; Rockafellar 1973; "
                             "Nocedal & Wright, Numerical Optimization, 2nd ed., 2006, sec. 17.3-17.4; "
                             "Conn, Gould & Toint, SIAM J. Numer. Anal. 1991 (LANCELOT); "
                             "Bertsekas, Constrained Optimization and Lagrange Multiplier Methods, 1982")
def augmented_lagrangian(rho=1.0, every=50, grow=2.0, shrink=0.5, rho_max=1e4, feasible=1e-5, omega=1e-2):
    """L = f + sum(lambda h + rho/2 h^2) + sum (max(mu + rho g, 0)^2 - mu^2) / (2 rho).

    The primal steps minimise L at fixed multipliers and rho (an inner solve) until the primal is
    stationary (||grad L|| <= omega_k, omega_0 = ``omega`` times the first step's ||grad L||) or
    for ``every`` steps; then the multipliers take their first-order update (lambda += rho h,
    mu = max(mu + rho g, 0), so inequality multipliers stay non-negative) unless the violation
    missed its target (``shrink`` times the last reached one, at least ``feasible``) at a
    stationary primal, where rho grows by ``grow`` instead (at most ``rho_max``)."""
    if not (float(rho) > 0 and int(every) >= 1 and float(grow) >= 1 and 0 < float(shrink) <= 1 and float(omega) > 0):
        raise ValueError("rho > 0, every >= 1, grow >= 1, 0 < shrink <= 1 and omega > 0")
    return AugmentedLagrangian(float(rho), int(every), float(grow), float(shrink), float(rho_max), float(feasible),
                               float(omega))
