"""The augmented Lagrangian method (method of multipliers)."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from . import CONSTRAINT_METHODS, largest_violation


@dataclass(frozen=True)
class AugmentedLagrangian:
    rho: float
    every: int
    grow: float
    shrink: float
    rho_max: float
    feasible: float

    def init(self, shapes):
        return {"multipliers": [jnp.zeros(s, jnp.float32) for s in shapes],
                "rho": jnp.asarray(self.rho, jnp.float32),
                # finite: the runtime takes a non-finite state for a diverged run
                "last": jnp.asarray(jnp.finfo(jnp.float32).max, jnp.float32),
                "count": jnp.asarray(0, jnp.int32)}

    def loss(self, gs, kinds, state):
        rho, total = jax.lax.stop_gradient(state["rho"]), 0.0
        for g, k, m in zip(gs, kinds, state["multipliers"]):
            m = jax.lax.stop_gradient(m)
            if k == "eq":
                total = total + jnp.sum(m * g) + 0.5 * rho * jnp.sum(g**2)
            else:  # Rockafellar's form: smooth in g, exact for the inequality's multiplier
                total = total + jnp.sum(jnp.maximum(m + rho * g, 0.0) ** 2 - m**2) / (2.0 * rho)
        return total

    def update(self, state, gs, kinds):
        """Every ``every`` steps (once the primal has progressed at the current multipliers):
        lambda += rho h, mu = max(mu + rho g, 0); rho *= grow when the largest violation did not
        fall below ``shrink`` times its value at the last update."""
        rho = state["rho"]
        count = state["count"] + 1
        worst = largest_violation(gs, kinds)
        # feasible to the tolerance: the multipliers are right to rho * feasible, and moving them by
        # round-off would only jolt an adaptive primal optimizer (Adam's steps are scale-free)
        now = (count % self.every == 0) & (worst > self.feasible)
        new = [m + rho * g if k == "eq" else jnp.maximum(m + rho * g, 0.0)
               for g, k, m in zip(gs, kinds, state["multipliers"])]
        stalled = worst > jnp.maximum(self.shrink * state["last"], self.feasible)
        grown = jnp.where(stalled, jnp.minimum(rho * self.grow, self.rho_max), rho)
        return {"multipliers": [jnp.where(now, n, m) for n, m in zip(new, state["multipliers"])],
                "rho": jnp.where(now, grown, rho), "last": jnp.where(now, worst, state["last"]), "count": count}

    def multipliers(self, state):
        return state["multipliers"]


@CONSTRAINT_METHODS.register("augmented_lagrangian", cite="Hestenes 1969; Powell 1969; Rockafellar 1973; "
                             "Nocedal & Wright, Numerical Optimization, 2nd ed., 2006, sec. 17.3-17.4; "
                             "Bertsekas, Constrained Optimization and Lagrange Multiplier Methods, 1982")
def augmented_lagrangian(rho=1.0, every=50, grow=2.0, shrink=0.5, rho_max=1e4, feasible=1e-5):
    """L = f + sum(lambda h + rho/2 h^2) + sum (max(mu + rho g, 0)^2 - mu^2) / (2 rho).

    The primal steps minimise L at fixed multipliers; every ``every`` steps the multipliers take
    their first-order update (lambda += rho h, mu = max(mu + rho g, 0), so inequality multipliers stay
    non-negative) and rho grows by ``grow`` when the largest violation did not shrink below
    ``shrink`` times its last value and is above ``feasible`` (Nocedal & Wright, Framework 17.3:
    once feasible to that tolerance, only the multipliers move; rho stays at most ``rho_max``)."""
    if not (float(rho) > 0 and int(every) >= 1 and float(grow) >= 1 and 0 < float(shrink) <= 1):
        raise ValueError("rho > 0, every >= 1, grow >= 1 and 0 < shrink <= 1")
    return AugmentedLagrangian(float(rho), int(every), float(grow), float(shrink), float(rho_max), float(feasible))
